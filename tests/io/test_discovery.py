"""Folder discovery: patients, studies, series and time points after injection."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pytest

from tests.io.builders_nm import axial_affine, write_nm_spect
from tests.io.builders_series import write_ct_series, write_pet_series
from theranet.errors import DicomReadError
from theranet.image import Image, Quantity, Timing
from theranet.io import discover, write_nifti

INJECTION = datetime(2026, 3, 9, 10, 30)


def _same_patient(ds):
    ds.PatientID = "SYNTH0001"


def _spect_ct_session(root, name, hours):
    start = INJECTION + timedelta(hours=hours)
    (root / name).mkdir(parents=True, exist_ok=True)
    vol = np.ones((4, 5, 6))
    write_nm_spect(
        root / name / "spect.dcm",
        vol,
        axial_affine(),
        values="counts",
        acquisition_start=start,
        injection=INJECTION,
        seed=f"spect-{name}",
        mutate=_same_patient,
    )
    write_ct_series(
        root / name / "ct",
        vol * 40,
        axial_affine((2.4, 2.4, 2.4)),
        seed=f"ct-{name}",
        series_datetime=start - timedelta(minutes=3),
        PatientID="SYNTH0001",
    )


def test_time_points(tmp_path):
    _spect_ct_session(tmp_path, "tp1", 24.0)
    _spect_ct_session(tmp_path, "tp2", 96.5)
    (groups,) = discover(tmp_path)
    assert len(groups.pseudonym) == 12
    assert "SYNTH0001" not in repr(groups)  # pseudonymised
    tps = groups.time_points
    assert [round(tp.hours_after_injection, 3) for tp in tps] == [24.0, 96.5]
    for tp in tps:
        assert {s.kind for s in tp.series} == {"spect", "ct"}
        assert tp.injection == INJECTION
        (ct,) = tp.of_kind("ct")
        assert len(ct.paths) == 4
    assert len(groups.studies) == 4  # each builder series is its own study


def test_two_patients_and_pet(tmp_path):
    _spect_ct_session(tmp_path, "a", 4.0)
    write_pet_series(tmp_path / "pet", np.ones((3, 4, 4)), axial_affine(), PatientID="OTHER")
    groups = discover(tmp_path)
    assert len(groups) == 2
    kinds = sorted(s.kind for g in groups for tp in g.time_points for s in tp.series)
    assert kinds == ["ct", "pet", "spect"]
    pet = next(s for g in groups for tp in g.time_points for s in tp.series if s.kind == "pet")
    assert pet.hours_after_injection == pytest.approx(1.0)  # builder: 09:00 -> 10:00


def test_non_dicom_strict_and_lenient(tmp_path):
    _spect_ct_session(tmp_path, "a", 24.0)
    (tmp_path / "a" / "notes.bin").write_bytes(b"\x00\x01 not dicom")
    with pytest.raises(DicomReadError, match=r"notes\.bin"):
        discover(tmp_path)
    (g,) = discover(tmp_path, strictness="lenient")
    assert any("notes.bin" in s for s in g.skipped)
    assert len(g.time_points) == 1


def test_nifti_with_sidecar(tmp_path):
    img = Image(
        np.ones((2, 2, 2), np.float32),
        np.eye(4),
        Quantity.ACTIVITY_CONCENTRATION,
        timing=Timing(acquisition_start=INJECTION + timedelta(hours=48), injection=INJECTION),
    )
    write_nifti(img, tmp_path / "tp.nii.gz")
    (g,) = discover(tmp_path)
    (tp,) = g.time_points
    assert tp.series[0].kind == "nifti"
    assert tp.series[0].hours_after_injection == pytest.approx(48.0)


def test_nifti_spect_and_ct_are_classed_by_their_sidecar(tmp_path):
    """modality NM + activity concentration -> spect, CT + HU -> ct (one time point),
    a label map -> nifti."""
    t = Timing(acquisition_start=INJECTION + timedelta(hours=24), injection=INJECTION)
    spect = Image(np.ones((2, 2, 2), np.float32), np.eye(4), Quantity.ACTIVITY_CONCENTRATION,
                  timing=t, modality="NM", nuclide="Lu-177")  # fmt: skip
    ct = Image(np.zeros((2, 2, 2), np.float32), np.eye(4), Quantity.HU,
               timing=Timing(acquisition_start=t.acquisition_start), modality="CT")  # fmt: skip
    write_nifti(spect, tmp_path / "spect.nii.gz")
    write_nifti(ct, tmp_path / "ct.nii.gz")
    (g,) = discover(tmp_path)
    (tp,) = g.time_points
    assert sorted(s.kind for s in tp.series) == ["ct", "spect"]
