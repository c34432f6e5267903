"""Single-frame DICOM series (CT, MR, PET): geometry against SimpleITK, refusals of
broken series, and the PET unit, decay-correction and SUV conventions.

All series are synthetic (``tests/io/builders_series.py``); expected values are
computed here from the physics (QIBA SUV formula, ICRP-107 half-lives), not from
the reader's code.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from numpy.testing import assert_allclose, assert_array_equal

from tests.io.builders_series import write_ct_series, write_pet_series
from theranet.errors import (
    DicomReadError,
    GeometryError,
    ImageDataError,
    InconsistentSeriesError,
    MissingFieldError,
    TimingError,
    UnitError,
)
from theranet.image import DecayCorrection, Quantity, affine_from_sitk
from theranet.io.dicom_series import corrected_image_flags, read_series

F18_HALF_LIFE_MIN = 109.77  # ICRP-107 (clinical.md §1.1)
BOTH_MODES = pytest.mark.parametrize("mode", ["strict", "lenient"])


def _rotation(a_deg: float, b_deg: float) -> np.ndarray:
    a, b = math.radians(a_deg), math.radians(b_deg)
    rz = np.array([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, math.cos(b), -math.sin(b)], [0, math.sin(b), math.cos(b)]])
    return rz @ rx


def _affine(*, oblique: bool = False, step_sign: float = 1.0, dz: float = 2.5) -> np.ndarray:
    """Array-order affine: columns slice step, row step (down), column step (along)."""
    r = _rotation(20.0, -10.0) if oblique else np.eye(3)
    aff = np.eye(4)
    # column 0 along +/- the slice normal cross(row cosines, column cosines) = r[:, 2]
    aff[:3, 0] = step_sign * dz * r[:, 2]
    aff[:3, 1] = 0.8 * r[:, 1]
    aff[:3, 2] = 0.7 * r[:, 0]
    aff[:3, 3] = [-100.3, 50.2, -30.1]
    return aff


def _listing(folder: Path) -> list[tuple[str, int]]:
    return sorted((p.name, p.stat().st_size) for p in folder.iterdir())


def _refused(folder: Path, error: type[Exception], *needles: str, **kwargs) -> str:
    """read_series(folder) raises ``error`` whose message holds every needle and a
    fix; the folder is left exactly as it was."""
    before = _listing(folder)
    with pytest.raises(error) as info:
        read_series(folder, **kwargs)
    msg = str(info.value)
    for needle in needles:
        assert needle in msg, (needle, msg)
    assert "Fix:" in msg, msg
    assert _listing(folder) == before
    return msg


def _pet_volume(value: float = 5000.0, shape=(3, 4, 5)) -> np.ndarray:
    return np.full(shape, value)


# ------------------------------------------------------------------ geometry


@pytest.mark.parametrize("step_sign", [1.0, -1.0])
def test_ct_affine_and_values_agree_with_simpleitk(tmp_path, step_sign):
    # Reason: the affine must place every voxel where ITK/GDCM (the reference
    # reader of Slicer and most pipelines) places it, for an oblique orientation,
    # for files stored in reverse slice order, and for a slice step running
    # against the slice normal (the reader must re-sort).
    rng = np.random.default_rng(7)
    vol = rng.integers(-1000, 2000, size=(6, 7, 9)).astype(float)
    write_ct_series(tmp_path, vol, _affine(oblique=True, step_sign=step_sign), order="reverse")
    img = read_series(tmp_path)

    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(tmp_path)))
    ref = reader.Execute()
    # 1e-6 mm: both read the same DS strings; differences are round-off only
    assert_allclose(img.affine, affine_from_sitk(ref), atol=1e-6, rtol=0)
    assert_array_equal(img.data, sitk.GetArrayFromImage(ref).astype(np.float32))
    assert img.quantity is Quantity.HU and img.modality == "CT"
    assert img.shape == (6, 7, 9)
    expected = vol if step_sign > 0 else vol[::-1]
    assert_array_equal(img.data, expected.astype(np.float32))


def test_mr_series_reads_as_intensity_from_a_list_of_files(tmp_path):
    # Reason: MR has no physical unit (INTENSITY) and often no Rescale
    # attributes; a list of files is accepted as well as a folder.
    vol = np.arange(2 * 3 * 4, dtype=float).reshape(2, 3, 4)
    files = write_ct_series(tmp_path, vol, _affine(), modality="MR")
    img = read_series(files[::-1])
    assert img.quantity is Quantity.INTENSITY and img.modality == "MR"
    assert_array_equal(img.data, vol.astype(np.float32))
    assert any("stored values used" in s for s in img.provenance.steps)
    # the source describes the series without patient identifiers
    assert "MR series" in img.provenance.source and "ANON" not in img.provenance.source


def test_read_series_is_reexported_by_theranet_io():
    # Reason: theranet.io.read_image and the CLI reach this reader through the package.
    import theranet.io

    assert theranet.io.read_series is read_series


def test_read_image_dispatches_a_series_folder(tmp_path):
    # Reason: the generic entry point must reach this reader for CT/PT folders.
    import theranet.io

    write_pet_series(tmp_path, _pet_volume(), _affine())
    img = theranet.io.read_image(tmp_path)
    assert img.modality == "PT" and img.quantity is Quantity.ACTIVITY_CONCENTRATION


@BOTH_MODES
def test_slice_gap_is_refused_in_both_modes(tmp_path, mode):
    # Reason: a missing slice changes the geometry (and any volume or dose
    # computed over it); no assumption is safe, so lenient mode refuses too.
    files = write_ct_series(tmp_path, np.zeros((6, 3, 4)), _affine())
    files[3].unlink()
    _refused(
        tmp_path,
        GeometryError,
        "ImagePositionPatient (0020,0032)",
        "slice gap",
        "expected spacing 2.5 mm",
        "found 5 mm",
        "sorted slices 2 and 3",
        strictness=mode,
    )


def test_non_uniform_spacing_is_refused(tmp_path):
    # Reason: a stack whose spacing changes half-way cannot be one affine.
    def shift(k, ds):
        if k >= 3:
            z = float(ds.ImagePositionPatient[2]) + 0.8
            ds.ImagePositionPatient = [*ds.ImagePositionPatient[:2], f"{z:.4f}"]

    write_ct_series(tmp_path, np.zeros((6, 3, 4)), _affine(), per_slice=shift)
    _refused(tmp_path, GeometryError, "non-uniform slice spacing", "found 3.3 mm")


def test_duplicate_positions_are_refused(tmp_path):
    # Reason: two slices at one position (a repeat, a second time frame) make
    # the stack ambiguous.
    def dup(k, ds):
        if k == 2:
            ds.ImagePositionPatient = list(ds_positions[1])

    ds_positions = {}

    def record(k, ds):
        ds_positions[k] = list(ds.ImagePositionPatient)
        dup(k, ds)

    write_ct_series(tmp_path, np.zeros((4, 3, 4)), _affine(), per_slice=record)
    _refused(tmp_path, GeometryError, "ImagePositionPatient (0020,0032)", "duplicate slice")


def test_gantry_tilt_is_refused(tmp_path):
    # Reason: slices stepping off the slice normal need a sheared grid; refuse
    # rather than silently misplace voxels.
    aff = _affine()
    aff[:3, 0] += 0.4 * aff[:3, 2] / np.linalg.norm(aff[:3, 2])  # 9 degrees off the normal
    write_ct_series(tmp_path, np.zeros((4, 3, 4)), aff)
    _refused(tmp_path, GeometryError, "not stacked along the slice normal", "gantry tilt")


def test_missing_orientation_is_refused(tmp_path):
    # Reason: without Image Orientation (Patient) there is no geometry at all.
    write_ct_series(tmp_path, np.zeros((2, 3, 4)), _affine(), ImageOrientationPatient=None)
    _refused(tmp_path, GeometryError, "ImageOrientationPatient (0020,0037)", "absent")


def _set_on_slice(index: int, keyword: str, value: str):
    def edit(k, ds):
        if k == index:
            setattr(ds, keyword, value)

    return edit


def test_two_frames_of_reference_are_refused(tmp_path):
    # Reason: files from two scanner coordinate systems cannot share an affine.
    files = write_ct_series(
        tmp_path,
        np.zeros((3, 3, 4)),
        _affine(),
        per_slice=_set_on_slice(2, "FrameOfReferenceUID", "1.2.3.4"),
    )
    first = str(pydicom.dcmread(files[0], stop_before_pixels=True).FrameOfReferenceUID)
    _refused(tmp_path, InconsistentSeriesError, "FrameOfReferenceUID (0020,0052)", "1.2.3.4", first)


def test_two_series_are_refused(tmp_path):
    # Reason: one folder, one series: mixing series silently would mix volumes.
    write_ct_series(
        tmp_path,
        np.zeros((3, 3, 4)),
        _affine(),
        per_slice=_set_on_slice(1, "SeriesInstanceUID", "1.2.3.5"),
    )
    _refused(tmp_path, InconsistentSeriesError, "SeriesInstanceUID (0020,000E)", "1.2.3.5")


def test_non_dicom_file_is_named(tmp_path):
    # Reason: nothing in a series folder is ignored silently.
    write_ct_series(tmp_path, np.zeros((2, 3, 4)), _affine())
    (tmp_path / "notes.txt").write_text("not DICOM")
    _refused(tmp_path, DicomReadError, "notes.txt", "not a DICOM file")


@pytest.mark.parametrize("where", ["pixels", "header"])
def test_truncated_file_is_named(tmp_path, where):
    # Reason: pydicom reads a truncated file without complaint; the reader must
    # notice (short pixel data, or a header cut before the pixels) and name it.
    files = write_ct_series(tmp_path, np.zeros((3, 3, 4)), _affine())
    raw = files[1].read_bytes()
    files[1].write_bytes(raw[:-7] if where == "pixels" else raw[: len(raw) // 2])
    _refused(tmp_path, DicomReadError, files[1].name, "PixelData (7FE0,0010)")


@BOTH_MODES
def test_nan_voxels_are_refused_in_both_modes(tmp_path, mode):
    # Reason: NaN voxels have no safe replacement; quantification would
    # silently drop them. Float Pixel Data is how NaN reaches a DICOM file.
    vol = np.ones((3, 3, 4), dtype=np.float32)
    vol[1, 2, 3] = np.nan
    write_pet_series(tmp_path, vol, _affine(), float_pixels=True)
    _refused(
        tmp_path,
        ImageDataError,
        "FloatPixelData (7FE0,0008)",
        "1 NaN or infinite",
        "row 2, column 3",
        strictness=mode,
    )


@BOTH_MODES
def test_absent_pet_units_are_refused_unless_given(tmp_path, mode):
    # Reason: no unit can be assumed for PET values (Bq/mL vs counts vs SUV is
    # a factor of 1e6 or more); the units= argument is the escape hatch.
    write_pet_series(tmp_path, _pet_volume(), _affine(), units=None)
    _refused(tmp_path, UnitError, "Units (0054,1001)", "units='BQML'", strictness=mode)
    img = read_series(tmp_path, strictness=mode, units="bqml")
    assert img.quantity is Quantity.ACTIVITY_CONCENTRATION
    assert_allclose(img.data, 5000e-6, rtol=1e-6)
    assert any("from the units argument (header: absent)" in s for s in img.provenance.steps)


def test_missing_rescale_slope_is_an_assumption_only_in_lenient_mode(tmp_path):
    # Reason: Rescale Slope/Intercept are Type 1 for CT; an identity Modality LUT
    # is the natural default but changes values, so it is refused when strict.
    vol = np.full((2, 3, 4), 40.0)
    write_ct_series(
        tmp_path, vol, _affine(), rescale=(1.0, 0.0), RescaleSlope=None, RescaleIntercept=None
    )
    _refused(tmp_path, MissingFieldError, "RescaleSlope (0028,1053)")
    img = read_series(tmp_path, strictness="lenient")
    assert_array_equal(img.data, vol)
    assert any("identity Modality LUT" in a for a in img.provenance.assumptions)


# ------------------------------------------------------------------ PET timing


T_SERIES = datetime(2024, 5, 6, 10, 0, 0)
T_INJ = datetime(2024, 5, 6, 9, 0, 0)


def test_start_uses_series_time_when_not_after_acquisition(tmp_path):
    # Reason (clinical.md §4.2): SeriesTime is the scan start when it precedes
    # every AcquisitionTime (Siemens: bed positions start later).
    acq = [T_SERIES + timedelta(minutes=m) for m in (2, 5, 8)]
    write_pet_series(tmp_path, _pet_volume(), _affine(), acquisition_datetimes=acq)
    img = read_series(tmp_path)
    assert img.timing.decay_correction is DecayCorrection.START
    assert img.timing.acquisition_start == T_SERIES
    assert img.timing.reference_datetime == T_SERIES
    assert any("from SeriesDate/SeriesTime" in s for s in img.provenance.steps)


@pytest.mark.parametrize("ge", [False, True])
def test_start_after_acquisition_uses_earliest_acquisition_or_ge_tag(tmp_path, ge):
    # Reason (clinical.md §4.2): a SeriesTime after the earliest AcquisitionTime
    # means the series was re-created; the GE private post-injection DateTime
    # (0009,100D) is then the reference when present, else the earliest
    # AcquisitionTime.
    series = T_SERIES + timedelta(minutes=40)
    acq = [T_SERIES + timedelta(minutes=m) for m in (6, 3, 9)]
    ge_time = T_SERIES + timedelta(minutes=1)
    write_pet_series(
        tmp_path,
        _pet_volume(),
        _affine(),
        series_datetime=series,
        acquisition_datetimes=acq,
        ge_post_injection=ge_time if ge else None,
    )
    img = read_series(tmp_path)
    expected = ge_time if ge else T_SERIES + timedelta(minutes=3)
    assert img.timing.acquisition_start == expected
    word = "GE private" if ge else "earliest AcquisitionDate/AcquisitionTime"
    assert any(word in s for s in img.provenance.steps)


def test_admin_refers_to_injection(tmp_path):
    # Reason: ADMIN values are already decay-corrected to the injection.
    write_pet_series(tmp_path, _pet_volume(), _affine(), decay_correction="ADMIN")
    img = read_series(tmp_path)
    assert img.timing.decay_correction is DecayCorrection.ADMIN
    assert img.timing.reference_datetime == T_INJ
    assert img.values_reference_datetime() == T_INJ


def test_none_with_one_acquisition_time_keeps_measured_values(tmp_path):
    # Reason: uncorrected values refer to the frame (start + duration) they were
    # measured over; nothing is changed.
    write_pet_series(
        tmp_path, _pet_volume(), _affine(), decay_correction="NONE", frame_duration_ms=120000
    )
    img = read_series(tmp_path)
    assert img.timing.decay_correction is DecayCorrection.NONE
    assert img.timing.acquisition_start == T_SERIES
    assert img.timing.frame_duration_h == pytest.approx(2 / 60)
    assert_allclose(img.data, 5000e-6, rtol=1e-6)


@pytest.mark.parametrize("equal_durations", [True, False])
def test_none_with_per_slice_times_is_brought_to_the_earliest_frame(tmp_path, equal_durations):
    # Reason: bed positions of an uncorrected series start at different times;
    # one Image must refer to one frame, so every slice is decay-corrected to a
    # frame starting at the earliest acquisition (exact for frame-averaged
    # values: factor e^{λΔt} g(T0)/g(Tk), g(T) = (1 - e^{-λT})/(λT)).
    minutes = [0.0, 3.0, 6.0]
    durations_ms = [120000, 120000, 120000] if equal_durations else [120000, 60000, 180000]
    acq = [T_SERIES + timedelta(minutes=m) for m in minutes]

    def durations(k, ds):
        ds.ActualFrameDuration = durations_ms[k]

    write_pet_series(
        tmp_path,
        _pet_volume(1000.0),
        _affine(),
        decay_correction="NONE",
        acquisition_datetimes=acq,
        per_slice=durations,
    )
    img = read_series(tmp_path)
    lam = math.log(2) / F18_HALF_LIFE_MIN  # per min

    def g(t_min):
        return (1 - math.exp(-lam * t_min)) / (lam * t_min)

    t = [d / 60000 for d in durations_ms]
    expected = [
        1000e-6 * math.exp(lam * m) * g(t[0]) / g(tk) for m, tk in zip(minutes, t, strict=True)
    ]
    # 1e-5: float32 storage of the values, int16 quantisation is exact here
    assert_allclose(img.data[:, 0, 0], expected, rtol=1e-5)
    assert img.timing.acquisition_start == T_SERIES
    assert img.timing.frame_duration_h == pytest.approx(2 / 60)
    assert any("decay-corrected with the ICRP-107 half-life" in s for s in img.provenance.steps)


def test_none_with_per_slice_times_needs_the_nuclide(tmp_path):
    # Reason: per-slice decay correction needs a half-life; the header one is
    # never used alone (clinical.md §1.1), so an unknown nuclide is refused.
    # Strict reading refuses an unknown nuclide for any emission image (as the
    # NM reader does); lenient reading gets as far as the per-slice correction.
    acq = [T_SERIES + timedelta(minutes=m) for m in (0, 3, 6)]
    write_pet_series(
        tmp_path,
        _pet_volume(),
        _affine(),
        decay_correction="NONE",
        acquisition_datetimes=acq,
        nuclide_code=None,
    )
    _refused(tmp_path, MissingFieldError, "RadionuclideCodeSequence (0054,0300)", "--nuclide")
    _refused(tmp_path, MissingFieldError, "nuclide", "nuclide='F-18'", strictness="lenient")
    assert read_series(tmp_path, nuclide="18F").nuclide == "F-18"


def test_total_dose_in_bq_for_pet_image_storage(tmp_path):
    # Reason: Radionuclide Total Dose is in Bq in the PET Image IOD (MBq in
    # NM/Enhanced PET); 370e6 Bq is 370 MBq.
    write_pet_series(tmp_path, _pet_volume(), _affine(), total_dose=370e6)
    img = read_series(tmp_path)
    assert img.timing.administered_activity_mbq == pytest.approx(370.0)
    assert img.timing.injection == T_INJ
    assert img.nuclide == "F-18" and img.tracer == "Fluorodeoxyglucose"
    assert img.patient.weight_kg == 70.0 and img.patient.height_cm == pytest.approx(175.0)
    assert img.patient.sex == "M"


def test_arguments_override_the_header_and_are_recorded(tmp_path):
    # Reason: explicit values beat the header, and the report must say so.
    write_pet_series(tmp_path, _pet_volume(), _affine())
    inj = datetime(2024, 5, 6, 9, 10)
    img = read_series(
        tmp_path, injection=inj, administered_activity_mbq=350.0, patient_weight_kg=72.0
    )
    assert img.timing.injection == inj and img.timing.injection_source == "injection argument"
    assert img.timing.administered_activity_mbq == 350.0
    assert img.patient.weight_kg == 72.0
    steps = "\n".join(img.provenance.steps)
    assert "from the injection argument (header: 2024-05-06T09:00:00)" in steps
    assert "350 MBq from the administered_activity_mbq argument (header: 370 MBq)" in steps
    assert "72 kg from the patient_weight_kg argument (header: 70 kg)" in steps


def test_missing_injection_time_strict_and_lenient(tmp_path):
    # Reason: without the injection time no SUV or dose exists: refused when
    # strict with the CLI fix; lenient reads the image and records why.
    write_pet_series(tmp_path, _pet_volume(), _affine(), injection_datetime=None)
    _refused(
        tmp_path,
        TimingError,
        "RadiopharmaceuticalStartDateTime (0018,1078)",
        "--injection-datetime",
    )
    img = read_series(tmp_path, strictness="lenient")
    assert img.timing.injection is None
    assert any("RadiopharmaceuticalStartDateTime" in a for a in img.provenance.assumptions)
    assert read_series(tmp_path, injection=T_INJ).timing.injection == T_INJ


def test_midnight_crossing_takes_the_previous_day(tmp_path):
    # Reason: Radiopharmaceutical Start Time (TM) has no date; 23:30 with a
    # series at 00:30 on the next day is the previous evening. The day is a
    # guess: refused when strict, taken (and recorded) when lenient.
    write_pet_series(
        tmp_path,
        _pet_volume(),
        _affine(),
        series_datetime=datetime(2024, 5, 6, 0, 30),
        injection_datetime=datetime(2024, 5, 5, 23, 30),
        injection_time_only=True,
    )
    with pytest.raises(TimingError, match=r"RadiopharmaceuticalStartTime \(0018,1072\)"):
        read_series(tmp_path)
    img = read_series(tmp_path, strictness="lenient")
    assert img.timing.injection == datetime(2024, 5, 5, 23, 30)
    assert "midnight" in img.timing.injection_source
    assert any("midnight" in a for a in img.provenance.assumptions)
    assert any("injection date taken from SeriesDate" in a for a in img.provenance.assumptions)


def test_suvbw_of_a_uniform_bqml_series(tmp_path):
    # Reason: end-to-end SUV convention (QIBA): SUVbw = C * W / (A_inj decayed
    # to the START reference), with C in Bq/mL, W in g, A in Bq; F-18
    # half-life 109.77 min (ICRP-107); START reference 60 min after injection.
    write_pet_series(tmp_path, _pet_volume(5000.0), _affine(), weight_kg=70.0, total_dose=370e6)
    suv = read_series(tmp_path).to_suv("bw")
    a_ref_bq = 370e6 * 2 ** (-60 / F18_HALF_LIFE_MIN)
    expected = 5000.0 * 70_000.0 / a_ref_bq
    assert suv.quantity is Quantity.SUVBW
    assert_allclose(suv.data, expected, rtol=1e-4)


# ------------------------------------------------------------------ PET units


def test_cnts_with_philips_factor_is_activity_concentration(tmp_path):
    # Reason: Philips CNTS series carry (7053,1009); rescaled counts x factor is
    # Bq/mL (cornerstone calculate-suv), and the path taken is recorded.
    write_pet_series(
        tmp_path, _pet_volume(1000.0), _affine(), units="CNTS", philips_activity_scale=2.5
    )
    img = read_series(tmp_path)
    assert img.quantity is Quantity.ACTIVITY_CONCENTRATION
    assert_allclose(img.data, 2500e-6, rtol=1e-6)
    assert any("Philips Activity Concentration Scale Factor" in s for s in img.provenance.steps)


def test_cnts_without_factor_is_counts_and_gml_is_suv(tmp_path):
    # Reason: counts stay counts (calibrate later); GML is SUVbw as written.
    write_pet_series(tmp_path / "c", _pet_volume(1000.0), _affine(), units="CNTS")
    counts = read_series(tmp_path / "c")
    assert counts.quantity is Quantity.COUNTS
    assert_allclose(counts.data, 1000.0, rtol=1e-6)
    assert counts.timing.frame_duration_h == pytest.approx(3 / 60)
    write_pet_series(tmp_path / "g", _pet_volume(3.5), _affine(), units="GML")
    suv = read_series(tmp_path / "g")
    assert suv.quantity is Quantity.SUVBW
    assert_allclose(suv.data, 3.5, rtol=1e-6)


def test_corrected_image_lacking_attn_is_recorded(tmp_path):
    # Reason: without ATTN/DECY an SUV is meaningless; the reader keeps the flags
    # (for the later SUV refusal) and notes the gap.
    write_pet_series(tmp_path, _pet_volume(), _affine(), corrected_image=("DECY", "SCAT"))
    img = read_series(tmp_path)
    assert corrected_image_flags(img) == ("DECY", "SCAT")
    assert any("lacks ATTN" in a for a in img.provenance.assumptions)


def test_header_half_life_differing_from_icrp107_is_noted(tmp_path):
    # Reason: the ICRP-107 half-life is always used; a header that differs by
    # more than 1 % is reported.
    write_pet_series(tmp_path, _pet_volume(), _affine(), half_life_s=7000.0)
    img = read_series(tmp_path)
    assert any("ICRP-107" in a for a in img.provenance.assumptions)


@BOTH_MODES
def test_absent_decay_correction_is_refused_unless_given(tmp_path, mode):
    # Reason: START, ADMIN and NONE put the values at different instants; none
    # can be assumed, but the caller may state it.
    write_pet_series(tmp_path, _pet_volume(), _affine(), decay_correction=None)
    _refused(
        tmp_path, TimingError, "DecayCorrection (0054,1102)", "decay_correction=", strictness=mode
    )
    img = read_series(tmp_path, strictness=mode, decay_correction="start")
    assert img.timing.decay_correction is DecayCorrection.START
    assert any("from the decay_correction argument" in s for s in img.provenance.steps)


def test_admin_with_a_different_injection_argument_keeps_the_header_reference(tmp_path):
    # Reason: the scanner decay-corrected to the header's injection time; a
    # corrected injection time must not silently move the values' reference.
    write_pet_series(tmp_path, _pet_volume(), _affine(), decay_correction="ADMIN")
    true_injection = T_INJ + timedelta(minutes=7)
    img = read_series(tmp_path, injection=true_injection)
    assert img.timing.injection == true_injection
    assert img.timing.decay_correction is DecayCorrection.REFERENCE
    assert img.values_reference_datetime() == T_INJ


def test_aware_injection_argument_needs_lenient_mode(tmp_path):
    # Reason: DICOM times are local wall-clock times; dropping a UTC offset is an
    # assumption about the scanner clock.
    from datetime import timezone

    write_pet_series(tmp_path, _pet_volume(), _affine())
    aware = T_INJ.replace(tzinfo=timezone(timedelta(hours=2)))
    _refused(tmp_path, TimingError, "injection", "naive datetime", injection=aware)
    img = read_series(tmp_path, injection=aware, strictness="lenient")
    assert img.timing.injection == T_INJ
    assert any("UTC offset dropped" in a for a in img.provenance.assumptions)


def test_pet_arguments_on_ct_are_ignored_and_recorded(tmp_path):
    # Reason: read_image may pass one set of options to every series of a study;
    # on CT they mean nothing, and the provenance says they were not used.
    write_ct_series(tmp_path, np.zeros((2, 3, 4)), _affine())
    img = read_series(tmp_path, nuclide="Lu-177", patient_weight_kg=80.0)
    assert img.nuclide is None and img.patient.weight_kg == 80.0
    assert any("nuclide ignored" in s for s in img.provenance.steps)


def test_hidden_and_json_files_are_skipped_on_record_and_subfolders_refused(tmp_path):
    # Reason: the folder rule matches theranet.io.read_image (hidden files and
    # JSON sidecars are not part of a DICOM series), but the skip is recorded;
    # a subfolder may hold another series and is refused.
    write_ct_series(tmp_path, np.zeros((2, 3, 4)), _affine())
    (tmp_path / ".DS_Store").write_bytes(b"\0\1")
    (tmp_path / "series.json").write_text("{}")
    img = read_series(tmp_path)
    assert any(".DS_Store, series.json" in s for s in img.provenance.steps)
    (tmp_path / "more").mkdir()
    _refused(tmp_path, DicomReadError, "subfolder", "more")


# ---------------------------------------- Acquisition DateTime with a UTC offset


def _acquisition_datetime_only(value: str, tz: str | None):
    def edit(_k, ds):
        for kw in ("SeriesDate", "SeriesTime", "AcquisitionDate", "AcquisitionTime"):
            if kw in ds:
                delattr(ds, kw)
        ds.AcquisitionDateTime = value
        if tz is not None:
            ds.TimezoneOffsetFromUTC = tz

    return edit


def test_acquisition_datetime_offset_is_converted_to_the_series_timezone(tmp_path):
    # 09:00 UTC is 10:00 at the scanner's +0100, one hour after the 09:00 (local)
    # injection; dropping the offset would give 0 h.
    write_pet_series(
        tmp_path,
        _pet_volume(),
        _affine(),
        per_slice=_acquisition_datetime_only("20240506090000+0000", "+0100"),
    )
    img = read_series(tmp_path)
    assert img.timing.acquisition_start == T_SERIES
    assert img.timing.acquisition_start.tzinfo is None
    assert img.timing.hours_after_injection() == pytest.approx(1.0)
    hits = [s for s in img.provenance.steps if "converted to local time" in s]
    assert hits == [
        "AcquisitionDateTime (0008,002A) 2024-05-06T09:00:00+00:00 converted to local time "
        "2024-05-06T10:00:00 with TimezoneOffsetFromUTC (0008,0201) +0100 "
        "(and 2 more file(s) likewise)"
    ]
    assert img.provenance.assumptions == ()


def test_acquisition_datetime_offset_without_timezone_is_dropped_and_noted_once(tmp_path):
    write_pet_series(
        tmp_path,
        _pet_volume(),
        _affine(),
        per_slice=_acquisition_datetime_only("20240506100000+0200", None),
    )
    img = read_series(tmp_path)
    assert img.timing.acquisition_start == T_SERIES  # the wall-clock time kept
    assert img.provenance.assumptions == (
        "AcquisitionDateTime (0008,002A): UTC offset 2:00:00 dropped; taken as scanner local time",
    )
