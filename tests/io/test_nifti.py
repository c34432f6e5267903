"""NIfTI + JSON sidecar: round trip, agreement with nibabel, atomic writes, errors."""

from __future__ import annotations

import json
import math
from datetime import datetime

import nibabel as nib
import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from theranet.errors import DicomReadError, MissingFieldError, UnitError
from theranet.image import DecayCorrection, Image, Labels, PatientInfo, Provenance, Quantity, Timing
from theranet.io import nifti
from theranet.io.nifti import read_labels, read_nifti, sidecar_path, write_nifti


def _affine():
    a = math.radians(12.0)
    aff = np.eye(4)
    aff[:3, :3] = np.array(
        [[math.cos(a), 0, -math.sin(a)], [0, 1, 0], [math.sin(a), 0, math.cos(a)]]
    ) @ np.diag([4.0, 2.5, 3.0])
    aff[:3, 3] = [-101.0, 37.5, 250.0]
    return aff


def _image():
    rng = np.random.default_rng(0)
    return Image(
        rng.uniform(0, 2, (5, 6, 7)).astype(np.float32),
        _affine(),
        Quantity.ACTIVITY_CONCENTRATION,
        modality="NM",
        nuclide="Lu-177",
        tracer="177Lu-DOTATATE",
        timing=Timing(
            acquisition_start=datetime(2026, 1, 5, 9, 30),
            frame_duration_h=0.5,
            injection=datetime(2026, 1, 4, 9, 0),
            administered_activity_mbq=7400.0,
            decay_correction=DecayCorrection.START,
            injection_source="test",
        ),
        patient=PatientInfo(weight_kg=72.5, height_cm=171.0, sex="F"),
        calibration_cps_per_mbq=9.3,
        provenance=Provenance("synthetic", ("step one",), ("assumed x",)),
        corrections=frozenset({"ATTN", "SCAT", "DECY"}),
    )


def test_round_trip(tmp_path):
    img = _image()
    path = write_nifti(img, tmp_path / "spect.nii.gz")
    back = read_nifti(path)
    assert_array_equal(back.data, img.data)
    assert_allclose(back.affine, img.affine, atol=1e-5)  # NIfTI stores float32 sform
    for field in (
        "quantity",
        "modality",
        "nuclide",
        "tracer",
        "timing",
        "patient",
        "calibration_cps_per_mbq",
        "corrections",
    ):
        assert getattr(back, field) == getattr(img, field), field
    assert back.provenance.steps == img.provenance.steps
    assert back.provenance.assumptions == img.provenance.assumptions


def test_affine_agrees_with_nibabel(tmp_path):
    # nibabel maps NIfTI index (i, j, k) to RAS; our array is (k, j, i) and LPS.
    img = _image()
    path = write_nifti(img, tmp_path / "a.nii.gz")
    nimg = nib.load(path)
    back = read_nifti(path)
    rng = np.random.default_rng(1)
    for _ in range(10):
        ijk = rng.uniform(0, 5, 3)
        ras = nimg.affine @ np.array([*ijk, 1.0])
        lps = back.index_to_lps(ijk[::-1])
        assert_allclose(lps, [-ras[0], -ras[1], ras[2]], atol=1e-6)
    assert nimg.shape == img.shape[::-1]
    assert_array_equal(np.asarray(nimg.dataobj), np.transpose(img.data, (2, 1, 0)))


def test_external_nifti_needs_quantity(tmp_path):
    data = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    ras = np.diag([-2.0, 2.0, 3.0, 1.0])
    nib.save(nib.Nifti1Image(data, ras), tmp_path / "ext.nii.gz")
    with pytest.raises(MissingFieldError, match="sidecar") as exc:
        read_nifti(tmp_path / "ext.nii.gz")
    assert "quantity=" in str(exc.value)
    img = read_nifti(tmp_path / "ext.nii.gz", quantity="hu")
    assert img.quantity is Quantity.HU
    assert img.shape == (4, 3, 2)
    assert img.provenance.assumptions


def test_sidecar_unit_conversion_and_bad_unit(tmp_path):
    path = write_nifti(_image(), tmp_path / "s.nii.gz")
    side = sidecar_path(path)
    meta = json.loads(side.read_text())
    meta["unit"] = "Bq/mL"
    side.write_text(json.dumps(meta))
    back = read_nifti(path)
    assert_allclose(back.data, _image().data * 1e-6, rtol=1e-6)
    meta["unit"] = "mCi/mL"
    side.write_text(json.dumps(meta))
    with pytest.raises(UnitError, match="mCi/mL"):
        read_nifti(path)
    del meta["unit"]
    side.write_text(json.dumps(meta))
    with pytest.raises(UnitError, match="unit"):
        read_nifti(path)


def test_nan_refused(tmp_path):
    d = np.ones((2, 2, 2), np.float32)
    d[0, 1, 1] = np.nan
    nib.save(nib.Nifti1Image(d, np.eye(4)), tmp_path / "n.nii")
    with pytest.raises(Exception, match="non-finite"):
        read_nifti(tmp_path / "n.nii", quantity="activity_concentration")


def test_corrupt_file(tmp_path):
    p = tmp_path / "bad.nii.gz"
    p.write_bytes(b"not a nifti at all")
    with pytest.raises(DicomReadError, match="NIfTI"):
        read_nifti(p, quantity="hu")


def test_atomic_write_leaves_nothing(tmp_path, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(nib, "save", boom)
    with pytest.raises(RuntimeError):
        write_nifti(_image(), tmp_path / "x.nii.gz")
    assert list(tmp_path.iterdir()) == []


def test_atomic_write_keeps_old_file(tmp_path, monkeypatch):
    path = write_nifti(_image(), tmp_path / "x.nii.gz")
    before = path.read_bytes()
    monkeypatch.setattr(nifti.json, "dumps", lambda *a, **k: (_ for _ in ()).throw(OSError()))
    with pytest.raises(OSError):
        write_nifti(_image().replace(tracer="other"), path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.json", "x.nii.gz"]


def test_labels_round_trip(tmp_path):
    d = np.zeros((4, 5, 6), np.int16)
    d[1:3, 2:4, 1:5] = 2
    d[3, 0, 0] = 5
    labels = Labels.from_array(d, _affine(), {2: "liver", 5: "lesion 1"})
    path = write_nifti(labels, tmp_path / "labels.nii.gz")
    back = read_labels(path)
    assert back.names == {2: "liver", 5: "lesion 1"}
    assert_array_equal(back.image.data, d)
    # without a sidecar, names are required
    nib.save(nib.Nifti1Image(np.transpose(d, (2, 1, 0)), np.eye(4)), tmp_path / "raw.nii.gz")
    with pytest.raises(MissingFieldError, match="names"):
        read_labels(tmp_path / "raw.nii.gz")
    assert read_labels(tmp_path / "raw.nii.gz", {2: "liver", 5: "x"}).mask("x").sum() == 1


def test_written_files_have_ordinary_permissions(tmp_path):
    import os
    import stat

    path = write_nifti(_image(), tmp_path / "p.nii.gz")
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask


def _without_decay_correction(path):
    side = sidecar_path(path)
    meta = json.loads(side.read_text())
    del meta["timing"]["decay_correction"]
    side.write_text(json.dumps(meta))


def test_missing_decay_correction_of_a_decaying_quantity(tmp_path):
    path = write_nifti(_image(), tmp_path / "spect.nii.gz")  # START in the image
    _without_decay_correction(path)
    with pytest.raises(MissingFieldError, match=r"timing\.decay_correction") as exc:
        read_nifti(path)
    assert "spect.json" in str(exc.value) and "strictness='lenient'" in str(exc.value)
    img = read_nifti(path, strictness="lenient")
    assert img.timing.decay_correction is DecayCorrection.NONE
    assert any("decay correction assumed NONE" in a for a in img.provenance.assumptions)


def test_decay_correction_is_always_written_and_not_needed_for_dose(tmp_path):
    for dc in DecayCorrection:
        timing = Timing(decay_correction=dc, reference=datetime(2026, 1, 5, 9, 30))
        path = write_nifti(_image().replace(timing=timing), tmp_path / f"{dc.value}.nii.gz")
        meta = json.loads(sidecar_path(path).read_text())
        assert meta["timing"]["decay_correction"] == dc.value
        assert read_nifti(path).timing.decay_correction is dc
    dose = Image(np.ones((2, 3, 4), np.float32), _affine(), Quantity.DOSE)
    path = write_nifti(dose, tmp_path / "dose.nii.gz")
    _without_decay_correction(path)
    assert read_nifti(path).quantity is Quantity.DOSE  # a dose does not decay
