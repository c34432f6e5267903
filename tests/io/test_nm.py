"""NM reader: reconstructed SPECT geometry and values cascade, timing, errors, planar views."""

from __future__ import annotations

import math
from datetime import datetime

import numpy as np
import pydicom
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from pydicom.tag import Tag

from tests.io.builders_nm import (
    DEFAULT_ACQUISITION_START,
    DEFAULT_INJECTION,
    ascending,
    axial_affine,
    write_nm_planar,
    write_nm_spect,
)
from theranet.errors import (
    CalibrationError,
    DicomReadError,
    GeometryError,
    ImageDataError,
    MissingFieldError,
    TimingError,
    UnitError,
)
from theranet.image import DecayCorrection, Quantity
from theranet.io.nm import (
    SPECT_DURATION_PLAUSIBLE_S,
    PlanarStudy,
    read_nm_planar,
    read_nm_spect,
)
from theranet.nuclides import Nuclide

SHAPE = (6, 5, 7)


def _levels(shape=SHAPE, seed=0):
    """Integer levels 0..60000 (exactly representable after slope * level)."""
    return np.random.default_rng(seed).integers(0, 60000, shape).astype(np.float64)


def _step(img, prefix):
    hits = [s for s in img.provenance.steps if s.startswith(prefix)]
    assert hits, img.provenance.steps
    return hits[0]


def _oblique_affine():
    a, b = math.radians(17.0), math.radians(-8.0)
    rz = np.array([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, math.cos(b), -math.sin(b)], [0, math.sin(b), math.cos(b)]])
    rot = rx @ rz
    row_cos, col_cos = rot[:, 0], rot[:, 1]
    normal = np.cross(row_cos, col_cos)
    aff = np.eye(4)
    aff[:3, 0] = normal * 3.3
    aff[:3, 1] = col_cos * 4.1
    aff[:3, 2] = row_cos * 3.9
    aff[:3, 3] = [-211.25, 33.5, -87.125]
    return aff


# ---------------------------------------------------------------- geometry


@pytest.mark.parametrize(
    ("affine", "sign"),
    [
        (axial_affine(), +1),
        (axial_affine(slice_direction=-1), -1),
        (_oblique_affine(), +1),
    ],
    ids=["axial", "negative-spacing", "oblique"],
)
def test_geometry_round_trip(tmp_path, affine, sign):
    slope = 4.0
    vol = _levels() * slope
    path = write_nm_spect(tmp_path / "spect.dcm", vol, affine, slope=slope, spacing_sign=sign)
    ds = pydicom.dcmread(path)
    assert np.sign(float(ds.SpacingBetweenSlices)) == sign
    img = read_nm_spect(path)
    assert img.shape == SHAPE
    # the reader returns slices ascending along the normal (like the series reader)
    expected_affine, expected_vol = ascending(affine, vol)
    assert_allclose(img.affine, expected_affine, atol=1e-6, rtol=0)
    assert_allclose(img.data, expected_vol * 1e-6, rtol=1e-6)
    assert img.modality == "NM"
    assert "DetectorInformationSequence (0054,0022)" in _step(img, "geometry:")


def test_negative_spacing_with_reversed_storage(tmp_path):
    """Slices along +z written with a negative step: the frames are stored from the
    top; the reader puts them back in ascending order, so the input affine and
    volume come back and the same LPS position holds the same value."""
    affine = axial_affine()
    vol = _levels() * 2.0
    path = write_nm_spect(tmp_path / "s.dcm", vol, affine, slope=2.0, spacing_sign=-1)
    assert float(pydicom.dcmread(path).SpacingBetweenSlices) < 0
    img = read_nm_spect(path)
    assert_allclose(img.affine, affine, atol=1e-6, rtol=0)
    assert_allclose(img.data, vol * 1e-6, rtol=1e-6)
    assert "slices reversed" in _step(img, "slices reversed")
    k, j, i = 1, 3, 4
    lps = affine[:3, :3] @ [k, j, i] + affine[:3, 3]
    idx = np.rint(img.lps_to_index(lps)).astype(int)
    assert img.data[tuple(idx)] == pytest.approx(vol[k, j, i] * 1e-6, rel=1e-6)


def test_frames_are_ordered_by_slice_vector(tmp_path):
    vol = _levels() * 1.0
    perm = np.array([3, 0, 5, 1, 4, 2])

    def shuffle(ds):
        frames = np.frombuffer(ds.PixelData, "<u2").reshape(SHAPE)
        ds.PixelData = np.ascontiguousarray(frames[perm]).tobytes()
        ds.SliceVector = [int(p) + 1 for p in perm]

    path = write_nm_spect(tmp_path / "s.dcm", vol, axial_affine(), slope=1.0, mutate=shuffle)
    assert_allclose(read_nm_spect(path).data, vol * 1e-6, rtol=1e-6)


def test_geometry_from_top_level_is_recorded(tmp_path):
    path = write_nm_spect(tmp_path / "s.dcm", _levels(), axial_affine(), geometry_in="top")
    img = read_nm_spect(path)
    assert_allclose(img.affine, axial_affine(), atol=1e-6)
    assert "top level" in _step(img, "geometry:")
    assert any("top level" in a for a in img.provenance.assumptions)


def test_missing_spacing_between_slices(tmp_path):
    def drop(ds):
        del ds.SpacingBetweenSlices

    path = write_nm_spect(tmp_path / "s.dcm", _levels(), axial_affine(), mutate=drop)
    with pytest.raises(GeometryError, match=r"SpacingBetweenSlices \(0018,0088\)"):
        read_nm_spect(path)
    img = read_nm_spect(path, strictness="lenient")
    assert_allclose(img.affine, axial_affine(), atol=1e-6)
    assert any("SliceThickness" in a for a in img.provenance.assumptions)


def test_missing_position_is_a_geometry_error(tmp_path):
    def drop(ds):
        del ds.DetectorInformationSequence[0].ImagePositionPatient

    path = write_nm_spect(tmp_path / "s.dcm", _levels(), axial_affine(), mutate=drop)
    with pytest.raises(GeometryError, match="ImagePositionPatient"):
        read_nm_spect(path, strictness="lenient")


def test_several_energy_windows_are_refused(tmp_path):
    n = SHAPE[0]
    vol = np.concatenate([_levels(), _levels(seed=1)])

    def two_windows(ds):
        ds.FrameIncrementPointer = [Tag("EnergyWindowVector"), Tag("SliceVector")]
        ds.EnergyWindowVector = [1] * n + [2] * n
        ds.SliceVector = list(range(1, n + 1)) * 2
        ds.NumberOfSlices = n

    path = write_nm_spect(
        tmp_path / "s.dcm",
        vol,
        axial_affine(),
        windows=(("peak", 187.2, 228.8), ("scatter", 166.4, 187.2)),
        mutate=two_windows,
    )
    with pytest.raises(DicomReadError, match="several energy windows"):
        read_nm_spect(path, strictness="lenient")


def test_single_window_recon_with_scatter_windows_listed(tmp_path):
    """A recon that lists its TEW windows is still one volume."""
    windows = (("peak", 187.2, 228.8), ("lower", 166.4, 187.2), ("upper", 228.8, 249.6))
    path = write_nm_spect(tmp_path / "s.dcm", _levels(), axial_affine(), windows=windows)
    img = read_nm_spect(path)
    assert "lower" in _step(img, "energy windows:")


# ------------------------------------------------------------------- values


def test_rwvm_bq_per_ml(tmp_path):
    vol = np.full(SHAPE, 2.5e5)
    path = write_nm_spect(tmp_path / "s.dcm", vol, axial_affine(), slope=5.0)
    img = read_nm_spect(path)
    assert img.quantity is Quantity.ACTIVITY_CONCENTRATION
    assert img.unit == "MBq/mL"
    assert_allclose(img.data, 0.25, rtol=1e-7)
    assert _step(img, "values:").startswith("values: RWVM Bq/ml")


@pytest.mark.parametrize(("unit", "to_mbq"), [("kBq/mL", 1e-3), ("MBq/ml", 1.0)])
def test_rwvm_scaled_units(tmp_path, unit, to_mbq):
    vol = _levels() * 0.5
    path = write_nm_spect(tmp_path / "s.dcm", vol, axial_affine(), units=unit, slope=0.5)
    img = read_nm_spect(path)
    assert img.quantity is Quantity.ACTIVITY_CONCENTRATION
    assert_allclose(img.data, vol * to_mbq, rtol=1e-6)
    assert f"RWVM {unit}" in _step(img, "values:")


def test_rwvm_counts(tmp_path):
    vol = _levels() * 3.0
    path = write_nm_spect(tmp_path / "s.dcm", vol, axial_affine(), units="{counts}", slope=3.0)
    img = read_nm_spect(path)
    assert img.quantity is Quantity.COUNTS
    assert img.unit == "counts"
    assert_allclose(img.data, vol, rtol=1e-6)
    assert _step(img, "values:").startswith("values: RWVM {counts}")


def test_rescale_with_units_bqml(tmp_path):
    vol = _levels() * 7.0 + 100.0
    path = write_nm_spect(
        tmp_path / "s.dcm",
        vol,
        axial_affine(),
        values="rescale_bqml",
        slope=7.0,
        intercept=100.0,
    )
    img = read_nm_spect(path)
    assert img.quantity is Quantity.ACTIVITY_CONCENTRATION
    assert_allclose(img.data, vol * 1e-6, rtol=1e-6)
    assert "Units (0054,1001) BQML" in _step(img, "values:")


def test_ge_private_bqml(tmp_path):
    vol = _levels() * 2.0
    path = write_nm_spect(tmp_path / "s.dcm", vol, axial_affine(), values="ge_private", slope=2.0)
    img = read_nm_spect(path)
    assert img.quantity is Quantity.ACTIVITY_CONCENTRATION
    assert_allclose(img.data, vol * 1e-6, rtol=1e-6)
    assert "GE private (0057,1003) BQML" in _step(img, "values:")


def test_counts_without_calibration(tmp_path):
    vol = np.rint(_levels() / 10)
    path = write_nm_spect(tmp_path / "s.dcm", vol, axial_affine(), values="counts", decay=None)
    img = read_nm_spect(path)
    assert img.quantity is Quantity.COUNTS
    assert_array_equal(img.data, vol)
    assert _step(img, "values:").startswith("values: counts")
    assert img.timing.decay_correction is DecayCorrection.NONE
    assert img.timing.acquisition_start == DEFAULT_ACQUISITION_START
    assert img.timing.frame_duration_h == pytest.approx(60 * 20 / 3600)


def test_counts_with_calibration_is_analytic(tmp_path):
    counts = 1234.0
    vol = np.full(SHAPE, counts)
    frame_ms, per_rot, n_rot = 25000, 32, 2  # T = 2 * 32 * 25 s = 1600 s
    cf = 9.5  # cps/MBq
    spacing = (4.42, 4.8, 5.1)

    def units_cnts(ds):  # values stated to be counts (calibrating unlabelled values is refused)
        ds.Units = "CNTS"

    path = write_nm_spect(
        tmp_path / "s.dcm",
        vol,
        axial_affine(spacing),
        values="counts",
        frame_duration_ms=frame_ms,
        frames_per_rotation=per_rot,
        n_rotations=n_rot,
        mutate=units_cnts,
    )
    img = read_nm_spect(path, calibration_cps_per_mbq=cf)
    t_s = n_rot * per_rot * frame_ms / 1000.0
    v_ml = spacing[0] * spacing[1] * spacing[2] / 1000.0
    expected = counts / (t_s * cf * v_ml)
    assert img.quantity is Quantity.ACTIVITY_CONCENTRATION
    assert_allclose(img.data, expected, rtol=1e-6)
    assert img.calibration_cps_per_mbq == cf
    assert img.timing.frame_duration_h == pytest.approx(t_s / 3600)
    assert _step(img, "values:").startswith("values: counts")
    assert any(s.startswith("calibrated: 9.5 cps/MBq") for s in img.provenance.steps)


@pytest.mark.parametrize("cf", [-3.0, 0.0, math.nan, math.inf])
@pytest.mark.parametrize("mode", ["strict", "lenient"])
def test_bad_calibration_is_refused(tmp_path, cf, mode):
    path = write_nm_spect(tmp_path / "s.dcm", _levels(), axial_affine(), values="counts")
    with pytest.raises(CalibrationError, match="calibration_cps_per_mbq"):
        read_nm_spect(path, strictness=mode, calibration_cps_per_mbq=cf)


def test_calibration_given_for_a_bqml_file(tmp_path):
    path = write_nm_spect(tmp_path / "s.dcm", _levels() * 2.0, axial_affine(), slope=2.0)
    with pytest.raises(CalibrationError, match="already stores activity concentration"):
        read_nm_spect(path, calibration_cps_per_mbq=10.0)
    img = read_nm_spect(path, strictness="lenient", calibration_cps_per_mbq=10.0)
    assert img.calibration_cps_per_mbq is None
    assert any("ignored" in a for a in img.provenance.assumptions)


@pytest.mark.parametrize("mode", ["strict", "lenient"])
def test_nan_voxels_are_refused(tmp_path, mode):
    vol = np.ones(SHAPE, np.float32)
    vol[2, 1, 3] = np.nan
    path = write_nm_spect(tmp_path / "s.dcm", vol, axial_affine(), float_pixels=True)
    with pytest.raises(ImageDataError, match=r"non-finite .*index \(2, 1, 3\)"):
        read_nm_spect(path, strictness=mode)


def test_float_pixels_read(tmp_path):
    vol = np.random.default_rng(3).uniform(0, 50, SHAPE).astype(np.float32)
    path = write_nm_spect(tmp_path / "s.dcm", vol, axial_affine(), float_pixels=True)
    img = read_nm_spect(path)
    assert img.quantity is Quantity.COUNTS
    assert_array_equal(img.data, vol)


# ------------------------------------------------------------------- timing


def test_header_timing_and_administration(tmp_path):
    path = write_nm_spect(tmp_path / "s.dcm", _levels(), axial_affine())
    img = read_nm_spect(path)
    t = img.timing
    assert t.injection == DEFAULT_INJECTION
    assert "(0018,1078)" in t.injection_source
    assert t.administered_activity_mbq == 7400.0  # NM: Radionuclide Total Dose in MBq
    assert t.decay_correction is DecayCorrection.START
    assert t.reference_datetime == DEFAULT_ACQUISITION_START
    assert img.nuclide == "Lu-177"
    assert img.tracer == "Lu-177-DOTATATE"
    assert img.patient.weight_kg == 72.5
    assert img.patient.height_cm == pytest.approx(171.0)
    assert img.provenance.assumptions == ()


def test_missing_injection_time(tmp_path):
    path = write_nm_spect(tmp_path / "s.dcm", _levels(), axial_affine(), injection=None)
    with pytest.raises(TimingError) as info:
        read_nm_spect(path)
    msg = str(info.value)
    assert "RadiopharmaceuticalStartDateTime (0018,1078)" in msg
    assert "--injection-datetime" in msg
    img = read_nm_spect(path, strictness="lenient")
    assert img.timing.injection is None
    assert any("RadiopharmaceuticalStartDateTime" in a for a in img.provenance.assumptions)


def test_arguments_override_the_header(tmp_path):
    path = write_nm_spect(tmp_path / "s.dcm", _levels(), axial_affine(), injection=None)
    inj = datetime(2026, 3, 9, 11, 0)
    img = read_nm_spect(path, injection=inj, administered_activity_mbq=7000.0, nuclide="177Lu")
    assert img.timing.injection == inj
    # same wording as the series reader (shared theranet.io._dicom_common.administration)
    assert img.timing.injection_source == "injection argument"
    assert img.timing.administered_activity_mbq == 7000.0
    assert img.nuclide == "Lu-177"
    assert any("7000 MBq from the argument" in a for a in img.provenance.assumptions)


def test_argument_overrides_an_inconsistent_header_injection(tmp_path):
    late = DEFAULT_ACQUISITION_START.replace(hour=23)  # after the scan
    path = write_nm_spect(tmp_path / "s.dcm", _levels(), axial_affine(), injection=late)
    with pytest.raises(TimingError, match="after the acquisition start"):
        read_nm_spect(path)
    img = read_nm_spect(path, injection=DEFAULT_INJECTION)
    assert img.timing.injection == DEFAULT_INJECTION
    assert any("header value unusable" in a for a in img.provenance.assumptions)


def test_decy_without_decay_correction_attribute(tmp_path):
    path = write_nm_spect(
        tmp_path / "s.dcm", _levels(), axial_affine(), decay=None, corrected_image=["DECY", "ATTN"]
    )
    with pytest.raises(TimingError, match=r"DecayCorrection \(0054,1102\)"):
        read_nm_spect(path)
    img = read_nm_spect(path, strictness="lenient")
    assert img.timing.decay_correction is DecayCorrection.START
    assert any("START" in a for a in img.provenance.assumptions)


def test_decay_correction_admin(tmp_path):
    path = write_nm_spect(tmp_path / "s.dcm", _levels(), axial_affine(), decay="ADMIN")
    img = read_nm_spect(path)
    assert img.timing.decay_correction is DecayCorrection.ADMIN
    assert img.timing.reference_datetime == DEFAULT_INJECTION


def test_series_time_fallback_is_recorded(tmp_path):
    path = write_nm_spect(tmp_path / "s.dcm", _levels(), axial_affine(), acquisition_start=None)
    img = read_nm_spect(path)
    assert img.timing.acquisition_start == DEFAULT_ACQUISITION_START
    assert any("SeriesDate" in a for a in img.provenance.assumptions)


# ------------------------------------------------------------ file errors


def test_truncated_file(tmp_path):
    path = write_nm_spect(tmp_path / "s.dcm", _levels(), axial_affine())
    raw = path.read_bytes()
    cut = tmp_path / "cut.dcm"
    cut.write_bytes(raw[: len(raw) - 200])
    with pytest.raises(DicomReadError):
        read_nm_spect(cut, strictness="lenient")
    cut.write_bytes(raw[:700])
    with pytest.raises(DicomReadError):
        read_nm_spect(cut, strictness="lenient")


def test_not_dicom(tmp_path):
    p = tmp_path / "x.dcm"
    p.write_bytes(b"not dicom at all" * 20)
    with pytest.raises(DicomReadError):
        read_nm_spect(p)


def test_planar_object_is_refused_by_the_spect_reader(tmp_path):
    img = np.ones((8, 4))
    path = write_nm_planar(tmp_path / "wb.dcm", img, img)
    with pytest.raises(DicomReadError, match="read_nm_planar") as info:
        read_nm_spect(path)
    assert "WHOLE BODY" in str(info.value)


def test_spect_object_is_refused_by_the_planar_reader(tmp_path):
    path = write_nm_spect(tmp_path / "s.dcm", _levels(), axial_affine())
    with pytest.raises(DicomReadError, match="read_nm_spect"):
        read_nm_planar(path)


# ------------------------------------------------------------------- planar


def _planar_pair(rows=12, cols=9):
    """Anterior/posterior counts in the anterior orientation with a hot spot at
    column 2 (towards the patient's right)."""
    ant = np.full((rows, cols), 5.0)
    post = np.full((rows, cols), 3.0)
    ant[4, 2] = 500.0
    post[4, 2] = 200.0
    return ant, post


def test_planar_views_and_orientation(tmp_path):
    ant, post = _planar_pair()
    path = write_nm_planar(tmp_path / "wb.dcm", ant, post)
    # the posterior head stores the hot spot mirrored
    ds = pydicom.dcmread(path)
    stored = ds.pixel_array
    assert stored[1][4, ant.shape[1] - 1 - 2] == 200
    study = read_nm_planar(path)
    assert isinstance(study, PlanarStudy)
    assert study.anterior.shape == (1, *ant.shape)
    assert_array_equal(study.view("anterior"), ant)
    assert_array_equal(study.view("posterior", "Lu177_208keV"), post)
    assert np.unravel_index(np.argmax(study.posterior[0]), post.shape) == (4, 2)
    assert study.pixel_spacing_mm == (2.4, 2.4)
    assert study.energy_window_names == ("Lu177_208keV",)
    assert study.image_type == "WHOLE BODY"
    assert study.anterior_detector == 1
    assert study.timing.acquisition_start == DEFAULT_ACQUISITION_START
    assert study.timing.frame_duration_h == pytest.approx(0.25)
    assert study.timing.injection == DEFAULT_INJECTION
    assert study.timing.administered_activity_mbq == 7400.0
    assert study.nuclide == "Lu-177"
    assert study.scan_velocity_mm_s == 2.5
    assert not study.anterior.flags.writeable


def test_planar_views_from_codes_in_any_detector_order(tmp_path):
    ant, post = _planar_pair()
    windows = (("peak", 187.2, 228.8), ("scatter", 166.4, 187.2))
    path = write_nm_planar(
        tmp_path / "wb.dcm",
        np.stack([ant, ant / 5]),
        np.stack([post, post / 3]),
        windows=windows,
        views=("POSTERIOR", "ANTERIOR"),
        detector_order=(2, 1),
        image_type=("ORIGINAL", "PRIMARY", "STATIC", "EMISSION"),
    )
    study = read_nm_planar(path)
    assert study.anterior_detector == 2
    assert study.energy_window_names == ("peak", "scatter")
    assert_array_equal(study.view("anterior", "scatter"), ant / 5)
    assert_array_equal(study.view("posterior", 0), post)


def test_planar_ambiguous_views(tmp_path):
    ant, post = _planar_pair()
    path = write_nm_planar(tmp_path / "wb.dcm", ant, post, views=(None, None))
    with pytest.raises(GeometryError, match=r"ViewCodeSequence \(0054,0220\)"):
        read_nm_planar(path)
    study = read_nm_planar(path, strictness="lenient")
    assert_array_equal(study.view("anterior"), ant)
    assert_array_equal(study.view("posterior"), post)
    assert any("detector 1 assumed anterior" in a for a in study.provenance.assumptions)
    explicit = read_nm_planar(path, anterior_detector=2)
    assert explicit.anterior_detector == 2
    assert_array_equal(explicit.view("anterior"), post[:, ::-1])


def test_planar_same_view_twice_is_refused(tmp_path):
    ant, post = _planar_pair()
    path = write_nm_planar(tmp_path / "wb.dcm", ant, post, views=("ANTERIOR", "ANTERIOR"))
    with pytest.raises(GeometryError, match="same view"):
        read_nm_planar(path, strictness="lenient")


def test_single_gate_recon_gated_tomo(tmp_path):
    n = SHAPE[0]

    def gated(ds):
        ds.FrameIncrementPointer = [Tag("TimeSlotVector"), Tag("SliceVector")]
        ds.TimeSlotVector = [1] * n

    vol = _levels() * 2.0
    path = write_nm_spect(
        tmp_path / "g.dcm",
        vol,
        axial_affine(),
        slope=2.0,
        image_type=("ORIGINAL", "PRIMARY", "RECON GATED TOMO", "EMISSION"),
        mutate=gated,
    )
    img = read_nm_spect(path)
    assert_allclose(img.data, vol * 1e-6, rtol=1e-6)
    assert "RECON GATED TOMO" in img.provenance.steps[0]


# ------------------------------------------ strictness: units, duration, ADMIN


def _cnts(ds):
    ds.Units = "CNTS"


def test_admin_with_a_differing_injection_argument_keeps_the_header_reference(tmp_path):
    """The scanner decay-corrected to the header injection (09:00); an injection
    argument of 08:00 must not relabel the values as corrected to 08:00."""
    header_inj = datetime(2026, 3, 10, 9, 0)
    arg_inj = datetime(2026, 3, 10, 8, 0)
    vol = np.full(SHAPE, 6.0e5)  # Bq/mL, decay-corrected to 09:00 by the scanner
    path = write_nm_spect(
        tmp_path / "s.dcm", vol, axial_affine(), slope=10.0, decay="ADMIN", injection=header_inj
    )
    img = read_nm_spect(path, injection=arg_inj)
    assert img.timing.injection == arg_inj
    assert img.timing.decay_correction is DecayCorrection.REFERENCE
    assert img.timing.reference_datetime == header_inj
    assert any("header injection time 2026-03-10T09:00:00" in s for s in img.provenance.steps)
    # at 09:00 the values are as stored; at 08:00 (the argument) one hour more activity
    assert_allclose(img.decay_correct_to(header_inj).data, 0.6, rtol=1e-6)
    up = 2.0 ** (1.0 / Nuclide("Lu-177").half_life_h)
    assert_allclose(img.decay_correct_to(arg_inj).data, 0.6 * up, rtol=1e-6)
    # without the argument (or with the same time) the state stays ADMIN
    assert read_nm_spect(path).timing.decay_correction is DecayCorrection.ADMIN
    same = read_nm_spect(path, injection=header_inj)
    assert same.timing.decay_correction is DecayCorrection.ADMIN


def _no_rotation(ds):
    _cnts(ds)
    del ds.RotationInformationSequence
    ds.ActualFrameDuration = 30000  # time per projection


def _incomplete_rotation(ds):
    _cnts(ds)
    del ds.RotationInformationSequence[0].NumberOfFramesInRotation
    ds.ActualFrameDuration = 30000


@pytest.mark.parametrize("mutate", [_no_rotation, _incomplete_rotation], ids=["absent", "partial"])
def test_top_level_frame_duration_as_the_acquisition_needs_lenient_mode(tmp_path, mutate):
    path = write_nm_spect(
        tmp_path / "s.dcm", np.full(SHAPE, 100.0), axial_affine(), values="counts", mutate=mutate
    )
    with pytest.raises(TimingError) as info:
        read_nm_spect(path, calibration_cps_per_mbq=10.0)
    msg = str(info.value)
    assert "RotationInformationSequence (0054,0052)" in msg
    assert "ActualFrameDuration 30000 ms" in msg and "strictness='lenient'" in msg
    img = read_nm_spect(path, strictness="lenient", calibration_cps_per_mbq=10.0)
    assert img.timing.frame_duration_h == pytest.approx(30.0 / 3600)
    assumptions = " | ".join(img.provenance.assumptions)
    assert "top-level ActualFrameDuration (0018,1242) 30000 ms" in assumptions
    assert "outside the plausible" in assumptions  # 30 s is also implausible


@pytest.mark.parametrize(
    ("frame_ms", "frames", "total_s"),
    [(20, 60, 1.2), (120000, 120, 14400.0)],  # rotation item in s by mistake; 4 h
    ids=["seconds-not-ms", "too-long"],
)
def test_implausible_acquisition_duration_is_refused_when_strict(
    tmp_path, frame_ms, frames, total_s
):
    lo, hi = SPECT_DURATION_PLAUSIBLE_S
    assert (lo, hi) == (60.0, 7200.0)
    path = write_nm_spect(
        tmp_path / "s.dcm",
        np.full(SHAPE, 100.0),
        axial_affine(),
        values="counts",
        frame_duration_ms=frame_ms,
        frames_per_rotation=frames,
        mutate=_cnts,
    )
    with pytest.raises(TimingError, match=r"ActualFrameDuration \(0018,1242\)") as info:
        read_nm_spect(path, calibration_cps_per_mbq=10.0)
    assert f"{total_s:g} s" in str(info.value) and "60 s to 7200 s" in str(info.value)
    img = read_nm_spect(path, strictness="lenient", calibration_cps_per_mbq=10.0)
    assert img.timing.frame_duration_h == pytest.approx(total_s / 3600)
    assert any(f"{total_s:g} s used as it is" in a for a in img.provenance.assumptions)


@pytest.mark.parametrize("unit", ["{SUVbw}g/ml", "mBq/mL"])
def test_rwvm_unit_not_understood_is_refused_when_strict(tmp_path, unit):
    path = write_nm_spect(tmp_path / "s.dcm", _levels(), axial_affine(), units=unit, slope=1.0)
    for kwargs in ({}, {"calibration_cps_per_mbq": 10.0}):
        with pytest.raises(UnitError) as info:
            read_nm_spect(path, **kwargs)
        msg = str(info.value)
        assert "MeasurementUnitsCodeSequence (0040,08EA)" in msg and unit in msg
    img = read_nm_spect(path, strictness="lenient")
    assert img.quantity is Quantity.COUNTS
    assert any(f"mapping item(s) in ['{unit}'] ignored" in a for a in img.provenance.assumptions)


def test_calibrating_values_without_any_unit_needs_lenient_mode(tmp_path):
    path = write_nm_spect(
        tmp_path / "s.dcm", np.full(SHAPE, 100.0), axial_affine(), values="counts"
    )
    assert read_nm_spect(path).quantity is Quantity.COUNTS  # no calibration: no dose
    with pytest.raises(UnitError, match=r"Units \(0054,1001\): absent") as info:
        read_nm_spect(path, calibration_cps_per_mbq=10.0)
    assert "CNTS" in str(info.value)
    img = read_nm_spect(path, strictness="lenient", calibration_cps_per_mbq=10.0)
    assert img.quantity is Quantity.ACTIVITY_CONCENTRATION
    assert any("taken as counts for the calibration" in a for a in img.provenance.assumptions)


@pytest.mark.parametrize("values", ["rescale_bqml", "ge_private"])
def test_bqml_without_rescale_slope_is_refused_when_strict(tmp_path, values):
    vol = _levels() * 1.0

    def drop(ds):
        del ds.RescaleSlope

    path = write_nm_spect(
        tmp_path / "s.dcm", vol, axial_affine(), values=values, slope=1.0, mutate=drop
    )
    with pytest.raises(MissingFieldError, match=r"RescaleSlope \(0028,1053\): absent") as info:
        read_nm_spect(path)
    assert "BQML" in str(info.value)
    img = read_nm_spect(path, strictness="lenient")
    assert_allclose(img.data, vol * 1e-6, rtol=1e-6)
    assert any("Rescale Slope 1 assumed" in a for a in img.provenance.assumptions)
