"""Vendor-like DICOM export of the digital patient: dciodvfy, read-back, determinism."""

from __future__ import annotations

import shutil
import subprocess
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pydicom
import pytest

from theranet.image import DecayCorrection, Image, Quantity, Timing
from theranet.io import read_nm_planar, read_nm_spect, read_series
from theranet.nuclides import Nuclide
from theranet.phantom.dicom_export import (
    DicomContext,
    deterministic_uid,
    write_ct_series,
    write_nm_planar,
    write_nm_spect,
    write_pet_series,
)

SHAPE = (6, 8, 10)
SCAN = datetime(2026, 1, 13, 10, 0, 0)
INJ = datetime(2026, 1, 12, 9, 30, 0)
ACTIVITY_MBQ = 7400.0
SPECT_S = 1200.0
CF = 10.0  # cps/MBq


def _affine(spacing=(4.0, 3.0, 2.5), origin=(-12.5, -10.5, 30.0)) -> np.ndarray:
    """Axial, slices ascending along z (the order the readers give back)."""
    a = np.eye(4)
    a[:3, 0] = [0.0, 0.0, spacing[0]]
    a[:3, 1] = [0.0, spacing[1], 0.0]
    a[:3, 2] = [spacing[2], 0.0, 0.0]
    a[:3, 3] = origin
    return a


def _values(lo: float, hi: float) -> np.ndarray:
    n = int(np.prod(SHAPE))
    return (lo + (hi - lo) * np.arange(n) / (n - 1)).reshape(SHAPE)[:, :, ::-1].copy()


def _ctx(seed: int = 7) -> DicomContext:
    return DicomContext(seed, tracer="177Lu-DOTATATE", study_datetime=SCAN)


def _activity_image() -> Image:
    return Image(
        _values(0.0, 0.5).astype(np.float32),  # MBq/mL
        _affine(),
        Quantity.ACTIVITY_CONCENTRATION,
        modality="NM",
        nuclide="Lu-177",
        timing=Timing(
            acquisition_start=SCAN,
            frame_duration_h=SPECT_S / 3600.0,
            injection=INJ,
            administered_activity_mbq=ACTIVITY_MBQ,
        ),
    )


def _write_all(folder: Path, seed: int = 7) -> dict[str, list[Path]]:
    ctx = _ctx(seed)
    ct = Image(_values(-1000.0, 1500.0).round(), _affine(), Quantity.HU, modality="CT")
    img = _activity_image()
    folder.mkdir(parents=True, exist_ok=True)
    for sub in ("ct", "pt"):
        (folder / sub).mkdir(exist_ok=True)
    spect_kw = dict(
        tracer="177Lu-DOTATATE",
        acquisition_datetime=SCAN,
        frame_duration_s=SPECT_S,
        injection_datetime=INJ,
        administered_activity_mbq=ACTIVITY_MBQ,
        energy_windows=None,
    )
    ant = np.arange(5 * 4, dtype=float).reshape(5, 4) * 100
    post = ant[::-1] + 7
    pet = img.replace(
        tracer="68Ga-DOTATATE",
        nuclide="Ga-68",
        timing=Timing(acquisition_start=SCAN, frame_duration_h=0.05),
    )
    return {
        "ct": write_ct_series(folder / "ct", ct, ctx, series_number=1, acquisition_datetime=SCAN),
        "rwvm": [write_nm_spect(folder / "spect_rwvm.dcm", img, ctx, variant="rwvm", **spect_kw)],
        "counts": [
            write_nm_spect(
                folder / "spect_counts.dcm",
                img,
                ctx,
                variant="counts",
                calibration_cps_per_mbq=CF,
                series_number=5,
                **spect_kw,
            )
        ],
        "pt": write_pet_series(
            folder / "pt",
            pet,
            ctx,
            tracer="68Ga-DOTATATE",
            series_datetime=SCAN,
            injection_datetime=SCAN - timedelta(hours=1),
            administered_activity_mbq=150.0,
            frame_duration_s=180.0,
        ),
        "planar": [
            write_nm_planar(
                folder / "wb.dcm",
                ant,
                post,
                ctx,
                pixel_mm=(2.4, 2.4),
                acquisition_datetime=SCAN,
                frame_duration_s=900.0,
                injection_datetime=INJ,
                administered_activity_mbq=ACTIVITY_MBQ,
            )
        ],
    }


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> dict[str, list[Path]]:
    return _write_all(tmp_path_factory.mktemp("export"))


@pytest.mark.parametrize("kind", ["ct", "rwvm", "counts", "pt", "planar"])
def test_dciodvfy_has_no_errors(written, kind):
    exe = shutil.which("dciodvfy")
    if exe is None:
        pytest.skip("dciodvfy not installed: apt-get install dicom3tools")
    for path in written[kind][:2]:
        out = subprocess.run([exe, "-new", str(path)], capture_output=True, text=True, timeout=60)
        report = out.stdout + out.stderr
        errors = [ln for ln in report.splitlines() if ln.startswith("Error")]
        assert not errors, f"{path.name}:\n{report}"


def test_ct_reads_back(written):
    img = read_series(written["ct"][0].parent)
    assert img.quantity is Quantity.HU
    np.testing.assert_allclose(img.affine, _affine(), atol=1e-6, rtol=0)
    np.testing.assert_array_equal(img.data, _values(-1000.0, 1500.0).round())


def test_spect_rwvm_reads_back_in_mbq_per_ml(written):
    img = read_nm_spect(written["rwvm"][0])
    truth = _activity_image()
    assert img.quantity is Quantity.ACTIVITY_CONCENTRATION
    np.testing.assert_allclose(img.affine, truth.affine, atol=1e-6, rtol=0)
    step = 0.5 / 65535  # one stored level, MBq/mL
    np.testing.assert_allclose(img.data, truth.data, atol=0.51 * step + 1e-7, rtol=1e-6)
    t = img.timing
    assert t.acquisition_start == SCAN
    assert t.frame_duration_h == pytest.approx(SPECT_S / 3600.0)
    assert t.injection == INJ
    assert t.administered_activity_mbq == pytest.approx(ACTIVITY_MBQ)
    assert t.decay_correction is DecayCorrection.NONE
    assert img.nuclide == "Lu-177"
    assert img.patient.weight_kg == pytest.approx(70.0)
    assert img.patient.height_cm == pytest.approx(170.0)
    ds = pydicom.dcmread(written["rwvm"][0])
    assert "DECY" not in ds.CorrectedImage
    unit = ds.RealWorldValueMappingSequence[0].MeasurementUnitsCodeSequence[0]
    assert (unit.CodeValue, unit.CodingSchemeDesignator) == ("Bq/mL", "UCUM")
    assert float(ds.SpacingBetweenSlices) > 0
    rp_item = ds.RadiopharmaceuticalInformationSequence[0]
    assert rp_item.RadionuclideCodeSequence[0].CodeValue == "447553000"
    assert rp_item.RadiopharmaceuticalCodeSequence[0].CodeValue == "781259000"


def test_spect_counts_need_the_calibration(written):
    path = written["counts"][0]
    counts = read_nm_spect(path)
    assert counts.quantity is Quantity.COUNTS
    assert not pydicom.dcmread(path).dir("calib")  # the calibration is not in the file
    img = read_nm_spect(path, calibration_cps_per_mbq=CF)
    truth = _activity_image()
    # one count in MBq/mL
    step = 1.0 / (CF * truth.voxel_volume_ml * SPECT_S)
    np.testing.assert_allclose(img.data, truth.data, atol=0.51 * step + 1e-6, rtol=1e-6)
    np.testing.assert_allclose(img.affine, truth.affine, atol=1e-6, rtol=0)


def test_spect_of_a_decay_corrected_image_stores_the_measured_values(tmp_path):
    truth = _activity_image()
    corrected = truth.decay_correct_to(SCAN)  # activity at the start
    path = write_nm_spect(
        tmp_path / "s.dcm",
        corrected,
        _ctx(),
        acquisition_datetime=SCAN,
        frame_duration_s=SPECT_S,
        injection_datetime=INJ,
        administered_activity_mbq=ACTIVITY_MBQ,
    )
    img = read_nm_spect(path)
    np.testing.assert_allclose(img.data, truth.data, atol=1e-5, rtol=1e-5)


def test_spect_reversed_slices_keep_positive_spacing(tmp_path):
    truth = _activity_image()
    a = truth.affine.copy()
    a[:3, 3] += (SHAPE[0] - 1) * a[:3, 0]
    a[:3, 0] *= -1
    rev = truth.replace(data=truth.data[::-1], affine=a)
    path = write_nm_spect(
        tmp_path / "r.dcm",
        rev,
        _ctx(),
        acquisition_datetime=SCAN,
        frame_duration_s=SPECT_S,
        injection_datetime=INJ,
        administered_activity_mbq=ACTIVITY_MBQ,
    )
    assert float(pydicom.dcmread(path).SpacingBetweenSlices) > 0
    img = read_nm_spect(path)
    np.testing.assert_allclose(img.affine, truth.affine, atol=1e-6, rtol=0)
    np.testing.assert_allclose(img.data, truth.data, atol=1e-5)


def test_pet_reads_back_decay_corrected_to_the_series_start(written):
    img = read_series(written["pt"][0].parent)
    truth = _activity_image().replace(
        nuclide="Ga-68", timing=Timing(acquisition_start=SCAN, frame_duration_h=0.05)
    )
    expected = truth.decay_correct_to(SCAN).data  # NONE over 180 s -> START
    assert img.quantity is Quantity.ACTIVITY_CONCENTRATION
    np.testing.assert_allclose(img.affine, truth.affine, atol=1e-6, rtol=0)
    np.testing.assert_allclose(img.data, expected, atol=expected.max() / 32767 + 1e-7)
    assert float(expected.max()) > float(truth.data.max())  # it was converted
    t = img.timing
    assert t.decay_correction is DecayCorrection.START
    assert t.acquisition_start == SCAN
    assert t.injection == SCAN - timedelta(hours=1)
    assert t.administered_activity_mbq == pytest.approx(150.0)
    assert img.nuclide == "Ga-68"
    ds = pydicom.dcmread(written["pt"][0])
    assert float(ds.RadiopharmaceuticalInformationSequence[0].RadionuclideTotalDose) == 150e6
    assert float(ds.RadiopharmaceuticalInformationSequence[0].RadionuclideHalfLife) == (
        pytest.approx(Nuclide("Ga-68").half_life_h * 3600, rel=1e-9)
    )


def test_planar_reads_back(written):
    study = read_nm_planar(written["planar"][0])
    ant = np.arange(5 * 4, dtype=float).reshape(5, 4) * 100
    np.testing.assert_array_equal(study.anterior[0], ant)
    np.testing.assert_array_equal(study.posterior[0], ant[::-1] + 7)
    assert study.pixel_spacing_mm == (2.4, 2.4)
    assert study.image_type == "WHOLE BODY"
    assert study.timing.acquisition_start == SCAN
    assert study.timing.frame_duration_h == pytest.approx(0.25)
    assert study.timing.injection == INJ
    assert study.timing.administered_activity_mbq == pytest.approx(ACTIVITY_MBQ)
    assert study.nuclide == "Lu-177"


def _files(d: dict[str, list[Path]]) -> list[Path]:
    return [p for kind in sorted(d) for p in d[kind]]


def test_same_seed_gives_identical_bytes(tmp_path):
    a = _write_all(tmp_path / "a", seed=7)
    b = _write_all(tmp_path / "b", seed=7)
    for pa, pb in zip(_files(a), _files(b), strict=True):
        assert pa.name == pb.name
        assert pa.read_bytes() == pb.read_bytes(), pa.name
    assert not list(tmp_path.rglob(".*"))  # no temporary file left behind


def test_different_seed_gives_different_uids(tmp_path):
    a = _write_all(tmp_path / "a", seed=7)
    b = _write_all(tmp_path / "b", seed=8)
    uids_a, uids_b = set(), set()
    for uids, files in ((uids_a, _files(a)), (uids_b, _files(b))):
        for p in files:
            ds = pydicom.dcmread(p, stop_before_pixels=True)
            uids |= {ds.SOPInstanceUID, ds.SeriesInstanceUID, ds.StudyInstanceUID}
            uids.add(ds.FrameOfReferenceUID)
    assert not uids_a & uids_b
    ds = pydicom.dcmread(a["ct"][0], stop_before_pixels=True)
    assert (str(ds.PatientName), ds.PatientID) == ("THERANET^PHANTOM", "PHANTOM-0007")
    assert all(u.startswith("2.25.") for u in uids_a)
    sops = [pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID for p in _files(a)]
    assert len(set(sops)) == len(sops)


def test_uid_is_deterministic_and_valid():
    u = deterministic_uid("x", 1)
    assert u == deterministic_uid("x", 1) != deterministic_uid("x1")
    assert len(u) <= 64 and u.replace(".", "").isdigit()


def test_timezone_aware_datetime_is_refused(tmp_path):
    from datetime import UTC

    from theranet.errors import TimingError

    with pytest.raises(TimingError):
        write_nm_spect(
            tmp_path / "x.dcm",
            _activity_image(),
            _ctx(),
            acquisition_datetime=SCAN.replace(tzinfo=UTC),
            frame_duration_s=SPECT_S,
            injection_datetime=INJ,
            administered_activity_mbq=ACTIVITY_MBQ,
        )
    assert not list(tmp_path.iterdir())
