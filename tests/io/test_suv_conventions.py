"""SUV and DICOM decay-correction conventions, one test per rule (clinical.md §4.1, §4.2).

Every expected SUV is computed here by hand from the header values written by
the synthetic builders (``tests/io/builders_series.py``, ``builders_nm.py``):

    SUV = C * N / A_ref,   A_ref = A_inj * 2^(-Δt / T½)            (§4.2, QIBA)

with C in Bq/mL, N the normaliser in g (body weight, lean or ideal body mass)
or cm^2 (body surface area), A_inj in Bq and Δt the decay time that the DICOM
convention (START / ADMIN / NONE) prescribes. Half-lives are ICRP Publication
107 (2008) values, as tabulated in clinical.md §1.1: 68Ga 67.71 min, 18F
109.77 min.

Tolerance (unless a test states otherwise): ``rtol = 1e-5``. The builders store
uniform slices exactly (int16 with Rescale Slope = slice maximum / 30000, the
slope written with 16 significant digits), times to the microsecond, and the
reader returns float32 (relative rounding 6e-8); 1e-5 leaves margin for
float32 and is still 100 times smaller than the smallest convention effect
tested (one minute of 68Ga decay changes SUV by 1 %).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pydicom
import pytest
from numpy.testing import assert_allclose
from pydicom.dataset import Dataset

from tests.io.builders_nm import axial_affine, write_nm_spect
from tests.io.builders_series import ENHANCED_PET_SOP, F18_CODE, PET_SOP, write_pet_series
from theranet.errors import (
    InconsistentSeriesError,
    MissingFieldError,
    QuantityError,
    TimingError,
)
from theranet.image import (
    DECAY_FACTOR_INCONSISTENT,
    DecayCorrection,
    Image,
    PatientInfo,
    Quantity,
    Timing,
    bsa_dubois_m2,
    ibw_sugawara_kg,
)
from theranet.io.dicom_series import read_series
from theranet.io.nm import read_nm_spect

# ICRP Publication 107 (2008) half-lives, clinical.md §1.1.
GA68_HALF_LIFE_MIN = 67.71
F18_HALF_LIFE_MIN = 109.77
GA68_CODE = ("SCT", "35337001", "^68^Gallium")
GA68_HALF_LIFE_S = GA68_HALF_LIFE_MIN * 60.0

RTOL = 1e-5  # see the module docstring
T_INJ = datetime(2024, 5, 6, 9, 0, 0)
T_SERIES = datetime(2024, 5, 6, 10, 0, 0)
WEIGHT_KG = 70.0
DOSE_BQ = 150e6  # 150 MBq of 68Ga-DOTATATE, written in Bq (PET Image Storage)
C_BQ_ML = 8000.0
# array-order affine: slices 2.5 mm along +z (the slice normal), rows along +y,
# columns along +x, so the reader keeps the builder's slice order
AFFINE = np.array([[0, 0, 2.0, 0], [0, 2.0, 0, 0], [2.5, 0, 0, 0], [0, 0, 0, 1.0]])
SHAPE = (3, 4, 5)


def a_ref_bq(dose_bq: float, decay_min: float, half_life_min: float) -> float:
    """Administered activity decayed to the values' reference time (§4.2)."""
    return dose_bq * 2.0 ** (-decay_min / half_life_min)


def suv_by_hand(c_bq_ml, mass_g, dose_bq, decay_min, half_life_min):
    """SUV = C * N / A_ref (§4.1, QIBA), C in Bq/mL, N in g (or cm^2), A in Bq."""
    return np.asarray(c_bq_ml) * mass_g / a_ref_bq(dose_bq, decay_min, half_life_min)


def minutes(a: datetime, b: datetime) -> float:
    return (b - a).total_seconds() / 60.0


def write_ga68(folder: Path, volume=None, **kwargs) -> list[Path]:
    """A 68Ga PET series (PET Image Storage, Units BQML, START unless overridden)."""
    options = {
        "series_datetime": T_SERIES,
        "injection_datetime": T_INJ,
        "total_dose": DOSE_BQ,
        "half_life_s": GA68_HALF_LIFE_S,
        "nuclide_code": GA68_CODE,
        "radiopharmaceutical": "Ga-68-DOTATATE",
        "weight_kg": WEIGHT_KG,
        "size_m": 1.75,
        "sex": "M",
    }
    options.update(kwargs)
    vol = np.full(SHAPE, C_BQ_ML) if volume is None else volume
    return write_pet_series(folder, vol, AFFINE, **options)


def per_slice_volume(values_bq_ml) -> np.ndarray:
    """A volume whose slice k is uniform at ``values_bq_ml[k]``."""
    return np.asarray(values_bq_ml, dtype=np.float64)[:, None, None] * np.ones(SHAPE)


def set_item(keyword: str, value: str) -> Callable[[int, Dataset], None]:
    """per_slice callback setting an attribute of the Radiopharmaceutical Information item."""

    def edit(k, ds):
        setattr(ds.RadiopharmaceuticalInformationSequence[0], keyword, value)

    return edit


def add_philips(offset: int, values) -> Callable[[int, Dataset], None]:
    """per_slice callback writing a Philips PET private factor (7053,10xx) per slice."""

    def edit(k, ds):
        block = ds.private_block(0x7053, "Philips PET Private Group", create=True)
        block.add_new(offset, "DS", f"{values[k]:.10g}")

    return edit


# ------------------------------------------------------------------ START


def test_start_uses_series_time_when_it_is_not_after_the_earliest_acquisition(tmp_path):
    # §4.2: START values refer to SeriesDate/SeriesTime when it is <= the earliest
    # AcquisitionDate/Time (normal, unprocessed series; bed positions start later).
    # Decay time 60 min (series 10:00, injection 09:00), not 62 min (first bed).
    acq = [T_SERIES + timedelta(minutes=m) for m in (2, 5, 8)]
    write_ga68(tmp_path, acquisition_datetimes=acq)
    suv = read_series(tmp_path).to_suv("bw")
    expected = suv_by_hand(C_BQ_ML, WEIGHT_KG * 1000, DOSE_BQ, 60.0, GA68_HALF_LIFE_MIN)
    assert suv.quantity is Quantity.SUVBW
    assert_allclose(suv.data, expected, rtol=RTOL)
    # the earliest acquisition (62 min) would give a 2 % larger SUV: the rule matters
    wrong = suv_by_hand(C_BQ_ML, WEIGHT_KG * 1000, DOSE_BQ, 62.0, GA68_HALF_LIFE_MIN)
    assert abs(wrong / expected - 1) > 100 * RTOL


def test_start_series_recreated_after_the_scan_uses_the_earliest_acquisition(tmp_path):
    # §4.2: SeriesTime after the earliest AcquisitionTime means the series was
    # re-created (post-processing); without the GE private tag the earliest
    # acquisition is the reference: 10:03 -> decay time 63 min.
    acq = [T_SERIES + timedelta(minutes=m) for m in (6, 3, 9)]
    write_ga68(tmp_path, series_datetime=T_SERIES + timedelta(hours=2), acquisition_datetimes=acq)
    img = read_series(tmp_path)
    assert img.timing.acquisition_start == T_SERIES + timedelta(minutes=3)
    expected = suv_by_hand(C_BQ_ML, WEIGHT_KG * 1000, DOSE_BQ, 63.0, GA68_HALF_LIFE_MIN)
    assert_allclose(img.to_suv().data, expected, rtol=RTOL)


def test_start_series_recreated_after_the_scan_uses_the_ge_post_injection_datetime(tmp_path):
    # §4.2: ... but when the GE private post-injection DateTime (0009,100D),
    # creator GEMS_PETD_01, is present it is the reference: 10:01:30 -> 61.5 min.
    acq = [T_SERIES + timedelta(minutes=m) for m in (6, 3, 9)]
    ge = T_SERIES + timedelta(minutes=1, seconds=30)
    write_ga68(
        tmp_path,
        series_datetime=T_SERIES + timedelta(hours=2),
        acquisition_datetimes=acq,
        ge_post_injection=ge,
    )
    img = read_series(tmp_path)
    assert img.timing.acquisition_start == ge
    expected = suv_by_hand(C_BQ_ML, WEIGHT_KG * 1000, DOSE_BQ, 61.5, GA68_HALF_LIFE_MIN)
    assert_allclose(img.to_suv().data, expected, rtol=RTOL)


def test_start_ge_tag_is_ignored_when_series_time_is_not_after_acquisition(tmp_path):
    # §4.2: the GE tag is only consulted when SeriesTime > earliest AcquisitionTime.
    write_ga68(tmp_path, ge_post_injection=T_SERIES + timedelta(minutes=10))
    expected = suv_by_hand(C_BQ_ML, WEIGHT_KG * 1000, DOSE_BQ, 60.0, GA68_HALF_LIFE_MIN)
    assert_allclose(read_series(tmp_path).to_suv().data, expected, rtol=RTOL)


# ------------------------------------------------------------------ ADMIN


def test_admin_values_need_no_decay(tmp_path):
    # §4.2: ADMIN values are already decay-corrected to the injection: decay
    # time 0, A_ref = A_inj, SUV = C * W / A_inj whatever the scan time.
    write_ga68(tmp_path, decay_correction="ADMIN")
    img = read_series(tmp_path)
    assert img.timing.decay_correction is DecayCorrection.ADMIN
    expected = C_BQ_ML * WEIGHT_KG * 1000 / DOSE_BQ
    assert_allclose(img.to_suv().data, expected, rtol=RTOL)


# ------------------------------------------------------------------ NONE


def test_none_decay_time_per_slice_from_each_acquisition_time_and_frame(tmp_path):
    # §4.2 NONE: decay time per slice = AcquisitionDateTime(slice) - t_inj, and
    # the decay during the frame is corrected with DF = λT / (1 - e^{-λT}): the
    # value of slice k is the mean activity over [t_k, t_k + T_k], i.e.
    # A(t_k) (1 - e^{-λT_k}) / (λT_k). Three beds, different starts, durations
    # and values; CorrectedImage without DECY (nothing decay-corrected).
    starts_min = [0.0, 3.0, 7.5]
    durations_ms = [120000, 60000, 180000]
    values = [8000.0, 12000.0, 5000.0]
    acq = [T_SERIES + timedelta(minutes=m) for m in starts_min]

    def durations(k, ds):
        ds.ActualFrameDuration = durations_ms[k]

    write_ga68(
        tmp_path,
        per_slice_volume(values),
        decay_correction="NONE",
        acquisition_datetimes=acq,
        corrected_image=("ATTN", "SCAT", "DTIM", "RAN", "NORM"),
        per_slice=durations,
    )
    suv = read_series(tmp_path).to_suv("bw")
    lam_per_min = math.log(2) / GA68_HALF_LIFE_MIN
    expected = []
    for c, t0, dur_ms in zip(values, starts_min, durations_ms, strict=True):
        t_frame_min = dur_ms / 60000.0
        df = lam_per_min * t_frame_min / -math.expm1(-lam_per_min * t_frame_min)
        decay_min = minutes(T_INJ, T_SERIES) + t0
        expected.append(
            df * suv_by_hand(c, WEIGHT_KG * 1000, DOSE_BQ, decay_min, GA68_HALF_LIFE_MIN)
        )
    assert_allclose(suv.data[:, 0, 0], expected, rtol=RTOL)
    assert_allclose(suv.data, np.asarray(expected)[:, None, None] * np.ones(SHAPE), rtol=RTOL)


# ----------------------------------------------------- Radionuclide Total Dose


def test_total_dose_is_bq_in_pet_and_mbq_in_nm_by_sop_class(tmp_path):
    # §4.2 / DICOM PS3.3 C.8.9.1 (PET Image: Bq), C.8.4.10 (NM: MBq): the SOP
    # Class decides the unit, never the magnitude. The same number 150 in
    # Radionuclide Total Dose is 150 Bq in PET Image Storage and 150 MBq in NM
    # Image Storage: with the same concentration, weight, nuclide and times the
    # SUVs differ by exactly 1e6 (rtol 1e-5: float32 values).
    number = 150.0
    write_ga68(tmp_path / "pet", total_dose=number)
    pet = read_series(tmp_path / "pet")

    def as_ga68(ds):
        code = ds.RadiopharmaceuticalInformationSequence[0].RadionuclideCodeSequence[0]
        code.CodingSchemeDesignator, code.CodeValue, code.CodeMeaning = GA68_CODE
        ds.RadiopharmaceuticalInformationSequence[0].RadionuclideHalfLife = GA68_HALF_LIFE_S
        ds.PatientWeight, ds.PatientSize, ds.PatientSex = WEIGHT_KG, 1.75, "M"

    nm_file = write_nm_spect(
        tmp_path / "nm.dcm",
        np.full(SHAPE, C_BQ_ML),
        axial_affine(),
        values="rescale_bqml",
        acquisition_start=T_SERIES,
        injection=T_INJ,
        total_dose_mbq=number,
        mutate=as_ga68,
    )
    nm = read_nm_spect(nm_file)
    assert pet.timing.administered_activity_mbq == pytest.approx(number * 1e-6, rel=1e-12)
    assert nm.timing.administered_activity_mbq == pytest.approx(number, rel=1e-12)
    suv_pet, suv_nm = pet.to_suv().data, nm.to_suv().data
    mass_g = WEIGHT_KG * 1000
    pet_bq, nm_bq = number, number * 1e6
    assert_allclose(
        suv_pet, suv_by_hand(C_BQ_ML, mass_g, pet_bq, 60.0, GA68_HALF_LIFE_MIN), rtol=RTOL
    )
    assert_allclose(
        suv_nm, suv_by_hand(C_BQ_ML, mass_g, nm_bq, 60.0, GA68_HALF_LIFE_MIN), rtol=RTOL
    )
    assert_allclose(suv_pet / suv_nm, 1e6, rtol=RTOL)


@pytest.mark.parametrize(("sop", "to_bq"), [(PET_SOP, 1.0), (ENHANCED_PET_SOP, 1e6)])
def test_total_dose_unit_follows_pet_and_enhanced_pet_sop_classes(tmp_path, sop, to_bq):
    # DICOM PS3.3: Bq in PET Image Storage, MBq in the Enhanced PET Isotope
    # module (Enhanced PET Image Storage). A value of 150 is read accordingly.
    write_ga68(tmp_path, total_dose=150.0, sop_class=sop)
    suv = read_series(tmp_path).to_suv()
    expected = suv_by_hand(C_BQ_ML, WEIGHT_KG * 1000, 150.0 * to_bq, 60.0, GA68_HALF_LIFE_MIN)
    assert_allclose(suv.data, expected, rtol=RTOL)


# ------------------------------------------------------------- injection time


@pytest.mark.parametrize("only_tm", [False, True], ids=["start-datetime", "series-date+tm"])
def test_injection_from_start_datetime_or_series_date_plus_tm_across_midnight(tmp_path, only_tm):
    # §4.2: RadiopharmaceuticalStartDateTime (DT) when present, else SeriesDate
    # + RadiopharmaceuticalStartTime (TM), taking the previous day when that
    # would be after the scan (midnight rule). Injection 23:30 on 5 May, scan
    # 00:45 on 6 May: decay time 75 min either way (18F, 370 MBq).
    inj = datetime(2024, 5, 5, 23, 30)
    scan = datetime(2024, 5, 6, 0, 45)
    write_pet_series(
        tmp_path,
        np.full(SHAPE, C_BQ_ML),
        AFFINE,
        series_datetime=scan,
        injection_datetime=inj,
        injection_time_only=only_tm,
        total_dose=370e6,
        nuclide_code=F18_CODE,
        half_life_s=F18_HALF_LIFE_MIN * 60,
        weight_kg=WEIGHT_KG,
    )
    if only_tm:  # the injection day is a guess: strict refuses, lenient records it
        with pytest.raises(TimingError, match="has no date"):
            read_series(tmp_path)
    img = read_series(tmp_path, strictness="lenient" if only_tm else "strict")
    assert img.timing.injection == inj
    assert ("midnight" in img.timing.injection_source) is only_tm
    assert bool(img.provenance.assumptions) is only_tm
    expected = suv_by_hand(C_BQ_ML, WEIGHT_KG * 1000, 370e6, 75.0, F18_HALF_LIFE_MIN)
    assert_allclose(img.to_suv().data, expected, rtol=RTOL)


@pytest.mark.parametrize(
    ("tm", "agree"),
    [
        ("083000", False),  # 30 min apart
        ("090030", False),  # 30 s apart, both to the second
        ("090000.4", True),  # within the 1 s precision
        ("0900", True),  # TM to the minute: 09:00:00 of the DT is within it
    ],
)
def test_start_datetime_and_start_time_disagreeing_is_refused(tmp_path, tm, agree):
    # §4.2: "If both DT and TM are present and disagree, refuse." They agree
    # when they differ by less than one unit of the coarser precision.
    write_ga68(tmp_path, per_slice=set_item("RadiopharmaceuticalStartTime", tm))
    if agree:
        assert read_series(tmp_path).timing.injection == T_INJ
        return
    with pytest.raises(TimingError, match="disagrees with RadiopharmaceuticalStartDateTime"):
        read_series(tmp_path)
    # the fix the message names works
    img = read_series(tmp_path, injection=T_INJ)
    assert any("header value unusable" in a for a in img.provenance.assumptions)


def test_negative_decay_time_is_refused(tmp_path):
    # §4.2: decay_time = t_scan - t_inj must be >= 0, else error: an injection
    # DT after the scan is refused by the reader, and to_suv refuses an image
    # whose injection follows its acquisition start.
    write_ga68(tmp_path, injection_datetime=T_SERIES + timedelta(minutes=5))
    with pytest.raises(TimingError, match="after the acquisition start"):
        read_series(tmp_path)
    img = Image(
        np.full((1, 1, 1), C_BQ_ML * 1e-6, np.float32),
        np.eye(4),
        Quantity.ACTIVITY_CONCENTRATION,
        nuclide="Ga-68",
        patient=PatientInfo(weight_kg=WEIGHT_KG),
        timing=Timing(
            acquisition_start=T_SERIES,
            injection=T_SERIES + timedelta(minutes=5),
            administered_activity_mbq=150.0,
            decay_correction=DecayCorrection.START,
        ),
    )
    with pytest.raises(TimingError, match="decay time would be negative"):
        img.to_suv()


# -------------------------------------------------- Decay Factor consistency


def _decay_factor_series(folder: Path, relative_error: float, *, half_life_min=GA68_HALF_LIFE_MIN):
    """START series whose slice k has Frame Reference Time FRT_k (ms) and Decay
    Factor 2^(FRT_k / T½) x (1 + relative_error)."""
    frt_ms = [90000.0, 95000.0, 100000.0]

    def edit(k, ds):
        ds.FrameReferenceTime = f"{frt_ms[k]:.10g}"
        df = 2.0 ** (frt_ms[k] / 60000.0 / half_life_min) * (1.0 + relative_error)
        ds.DecayFactor = f"{df:.12g}"

    write_ga68(folder, per_slice=edit)


@pytest.mark.parametrize("relative_error", [0.0, 9e-4, -9e-4])
def test_decay_factor_consistent_with_frame_reference_time_is_accepted(tmp_path, relative_error):
    # §4.2: DecayFactor ~= 2^(FrameReferenceTime / T½) to a relative 1e-3
    # confirms the reference time and half-life; SUV as for START (60 min).
    _decay_factor_series(tmp_path, relative_error)
    img = read_series(tmp_path)
    assert any("consistent on all 3 slices" in s for s in img.provenance.steps)
    expected = suv_by_hand(C_BQ_ML, WEIGHT_KG * 1000, DOSE_BQ, 60.0, GA68_HALF_LIFE_MIN)
    assert_allclose(img.to_suv().data, expected, rtol=RTOL)


@pytest.mark.parametrize(
    ("relative_error", "half_life_min"),
    [(1.1e-3, GA68_HALF_LIFE_MIN), (-1.1e-3, GA68_HALF_LIFE_MIN), (0.0, F18_HALF_LIFE_MIN)],
    ids=["+1.1e-3", "-1.1e-3", "18F-half-life-in-a-68Ga-series"],
)
def test_decay_factor_inconsistent_refuses_suv(tmp_path, relative_error, half_life_min):
    # §4.2 DECAY_FACTOR_INCONSISTENT: beyond 1e-3 (or computed with another
    # nuclide's half-life) the series is refused when strict; read leniently
    # the values are kept and SUV is refused.
    _decay_factor_series(tmp_path, relative_error, half_life_min=half_life_min)
    with pytest.raises(TimingError, match=DECAY_FACTOR_INCONSISTENT):
        read_series(tmp_path)
    img = read_series(tmp_path, strictness="lenient")
    assert any(DECAY_FACTOR_INCONSISTENT in a for a in img.provenance.assumptions)
    with pytest.raises(TimingError, match=DECAY_FACTOR_INCONSISTENT):
        img.to_suv()


# ------------------------------------------------------- units and rescaling


def test_rescale_slope_is_applied_per_slice_before_suv(tmp_path):
    # §4.1: Rescale Slope/Intercept per slice before SUV scaling. The builder
    # writes one slope per slice (slice maximum / 30000); the slices differ.
    values = [3000.0, 45000.0, 700.0]
    paths = write_ga68(tmp_path, per_slice_volume(values))
    slopes = {float(pydicom.dcmread(p).RescaleSlope) for p in paths}
    assert len(slopes) == 3
    suv = read_series(tmp_path).to_suv()
    expected = suv_by_hand(values, WEIGHT_KG * 1000, DOSE_BQ, 60.0, GA68_HALF_LIFE_MIN)
    assert_allclose(suv.data[:, 0, 0], expected, rtol=RTOL)


def test_cnts_with_philips_activity_factor_per_slice_gives_suv(tmp_path):
    # §4.1 / cornerstone: CNTS x Philips Activity Concentration Scale Factor
    # (7053,1009) is Bq/mL, then SUV as for BQML; the factor is per slice.
    counts = [1000.0, 1000.0, 1000.0]
    factors = [2.5, 2.6, 2.7]
    write_ga68(tmp_path, per_slice_volume(counts), units="CNTS", per_slice=add_philips(9, factors))
    suv = read_series(tmp_path).to_suv()
    conc = np.multiply(counts, factors)
    expected = suv_by_hand(conc, WEIGHT_KG * 1000, DOSE_BQ, 60.0, GA68_HALF_LIFE_MIN)
    assert_allclose(suv.data[:, 0, 0], expected, rtol=RTOL)


def test_cnts_with_only_the_philips_suv_factor_is_suvbw(tmp_path):
    # §4.1 / cornerstone: CNTS with only the Philips SUV Scale Factor
    # (7053,1000): rescaled counts x factor = SUVbw as the scanner computed it.
    counts = [1000.0, 2000.0, 4000.0]
    factors = [1.5e-3, 1.5e-3, 1.5e-3]
    write_ga68(tmp_path, per_slice_volume(counts), units="CNTS", per_slice=add_philips(0, factors))
    img = read_series(tmp_path)
    assert img.quantity is Quantity.SUVBW
    assert_allclose(img.data[:, 0, 0], np.multiply(counts, factors), rtol=RTOL)


def test_cnts_without_philips_factors_and_gml_give_no_suv_computation(tmp_path):
    # §4.1: CNTS needs (7053,1000) or (7053,1009) for SUV: plain counts are
    # refused by to_suv; GML is already SUVbw and is not converted again.
    write_ga68(tmp_path / "c", units="CNTS")
    counts = read_series(tmp_path / "c")
    assert counts.quantity is Quantity.COUNTS
    with pytest.raises(QuantityError, match="activity concentration"):
        counts.to_suv()
    write_ga68(tmp_path / "g", np.full(SHAPE, 4.2), units="GML")
    gml = read_series(tmp_path / "g")
    assert gml.quantity is Quantity.SUVBW
    assert_allclose(gml.data, 4.2, rtol=RTOL)
    with pytest.raises(QuantityError):
        gml.to_suv()


@pytest.mark.parametrize(
    ("keyword", "value"),
    [
        ("PatientWeight", "71"),
        ("Units", "CNTS"),
        ("DecayCorrection", "ADMIN"),
        ("SeriesTime", "100500"),
        ("CorrectedImage", ["ATTN"]),
    ],
)
def test_series_level_metadata_must_agree_between_instances(tmp_path, keyword, value):
    # §4.1 (cornerstone): every instance shares units, weight, dose, half-life,
    # decay correction and series date/time; one differing slice is refused.
    def edit(k, ds):
        if k == 1:
            setattr(ds, keyword, value)

    write_ga68(tmp_path, per_slice=edit)
    with pytest.raises(InconsistentSeriesError, match=keyword):
        read_series(tmp_path)


def test_total_dose_differing_between_instances_is_refused(tmp_path):
    def edit(k, ds):
        if k == 2:
            ds.RadiopharmaceuticalInformationSequence[0].RadionuclideTotalDose = "151000000"

    write_ga68(tmp_path, per_slice=edit)
    with pytest.raises(InconsistentSeriesError, match="RadionuclideTotalDose"):
        read_series(tmp_path)


# ------------------------------------------------------- Corrected Image


@pytest.mark.parametrize(
    ("flags", "lacking"),
    [
        (("DECY", "SCAT"), "ATTN"),
        (("ATTN", "SCAT"), "DECY"),
        (None, "ATTN and DECY"),
    ],
    ids=["no-ATTN", "no-DECY", "absent"],
)
def test_corrected_image_without_attn_or_decy_refuses_suv(tmp_path, flags, lacking):
    # §4.1 / §4.2: CorrectedImage (0028,0051) must contain ATTN and DECY for SUV
    # of scanner-decay-corrected (START) values; the reader still reads them.
    write_ga68(tmp_path, corrected_image=flags)
    img = read_series(tmp_path)
    assert any("lacks" in a for a in img.provenance.assumptions)
    with pytest.raises(QuantityError, match=f"lacks {lacking}"):
        img.to_suv()


def test_uncorrected_none_series_needs_attn_but_not_decy(tmp_path):
    # §4.2 NONE: the values carry no scanner decay correction (no DECY) and are
    # decay-corrected from the acquisition times here; ATTN is still required.
    write_ga68(tmp_path / "a", decay_correction="NONE", corrected_image=("ATTN",))
    img = read_series(tmp_path / "a")
    lam = math.log(2) / GA68_HALF_LIFE_MIN
    df = lam * 3.0 / -math.expm1(-lam * 3.0)  # 3-min frame (builder default)
    expected = df * suv_by_hand(C_BQ_ML, WEIGHT_KG * 1000, DOSE_BQ, 60.0, GA68_HALF_LIFE_MIN)
    assert_allclose(img.to_suv().data, expected, rtol=RTOL)
    write_ga68(tmp_path / "b", decay_correction="NONE", corrected_image=("SCAT",))
    with pytest.raises(QuantityError, match="lacks ATTN"):
        read_series(tmp_path / "b").to_suv()


# ------------------------------------------------------- patient body data


@pytest.mark.parametrize("weight", [None, 0.0], ids=["absent", "zero"])
def test_missing_weight_is_refused_with_the_weight_kg_option(tmp_path, weight):
    # §4.1: SUV needs W. Patient's Weight absent (or 0, the usual "unknown") ->
    # a MissingFieldError that says what to supply: --weight-kg (CLI) or
    # patient_weight_kg (Python), which then gives the hand-computed SUV.
    write_ga68(tmp_path, weight_kg=weight)
    with pytest.raises(MissingFieldError) as info:
        read_series(tmp_path).to_suv()
    msg = str(info.value)
    assert "patient.weight_kg" in msg and "--weight-kg" in msg
    assert "patient_weight_kg=" in msg and "Fix:" in msg
    suv = read_series(tmp_path, patient_weight_kg=82.0).to_suv()
    expected = suv_by_hand(C_BQ_ML, 82.0 * 1000, DOSE_BQ, 60.0, GA68_HALF_LIFE_MIN)
    assert_allclose(suv.data, expected, rtol=RTOL)


@pytest.mark.parametrize(
    ("kind", "size_m", "sex", "needles"),
    [
        ("lbm", None, "M", ("--height-cm", "--sex")),
        ("lbm", 1.75, None, ("--height-cm", "--sex")),
        ("ibw", None, "F", ("--height-cm", "--sex")),
        ("bsa", None, "F", ("--height-cm",)),
    ],
)
def test_missing_height_or_sex_is_refused_for_sul_bsa_and_ibw(tmp_path, kind, size_m, sex, needles):
    # §4.1: SUL and SUVibw need height and sex; SUVbsa needs height. The error
    # names the field and the options that supply it.
    write_ga68(tmp_path, size_m=size_m, sex=sex)
    img = read_series(tmp_path)
    with pytest.raises(MissingFieldError) as info:
        img.to_suv(kind)
    msg = str(info.value)
    assert "patient.height_cm" in msg and "PatientInfo(" in msg
    for needle in needles:
        assert needle in msg
    assert img.to_suv("bw").quantity is Quantity.SUVBW  # SUVbw needs neither


def test_sul_defaults_to_janmahasatian_and_names_the_formula(tmp_path):
    # §4.1: Janmahasatian (2005) is the default SUL: male LBM = 9270 W / (6680 +
    # 216 BMI), BMI = W / H^2 (H in m). 70 kg, 1.75 m: BMI 22.857, LBM 55.857 kg.
    write_ga68(tmp_path)
    sul = read_series(tmp_path).to_suv("lbm")
    bmi = 70.0 / 1.75**2
    lbm_kg = 9270.0 * 70.0 / (6680.0 + 216.0 * bmi)
    assert lbm_kg == pytest.approx(55.857, abs=1e-3)
    assert sul.quantity is Quantity.SUL
    expected = suv_by_hand(C_BQ_ML, lbm_kg * 1000, DOSE_BQ, 60.0, GA68_HALF_LIFE_MIN)
    assert_allclose(sul.data, expected, rtol=RTOL)
    assert any("SUL (janmahasatian)" in s for s in sul.provenance.steps)


@pytest.mark.parametrize(
    ("sex", "a", "b", "bmi_peak"), [("M", 1.10, 128, 42.97), ("F", 1.07, 148, 36.15)]
)
def test_james128_sul_refused_beyond_the_peak_weight(tmp_path, sex, a, b, bmi_peak):
    # §4.1: James-128 LBM = a W - b (W/H)^2 (H in cm) peaks at W* = a H^2 / (2b),
    # i.e. BMI* = a 1e4 / (2b) = 42.97 kg/m^2 (male), 36.15 (female); beyond it
    # James-SUL is refused (Janmahasatian remains available). Below: by hand.
    h_m = 1.70
    assert a * 1e4 / (2 * b) == pytest.approx(bmi_peak, abs=0.01)
    w_ok = (bmi_peak - 0.5) * h_m**2
    write_ga68(tmp_path / "ok", weight_kg=w_ok, size_m=h_m, sex=sex)
    sul = read_series(tmp_path / "ok").to_suv("lbm", lbm_formula="james128")
    lbm_kg = a * w_ok - b * (w_ok / (h_m * 100)) ** 2
    expected = suv_by_hand(C_BQ_ML, lbm_kg * 1000, DOSE_BQ, 60.0, GA68_HALF_LIFE_MIN)
    assert_allclose(sul.data, expected, rtol=RTOL)
    assert any("SUL (james128)" in s for s in sul.provenance.steps)
    w_bad = (bmi_peak + 0.5) * h_m**2
    write_ga68(tmp_path / "bad", weight_kg=w_bad, size_m=h_m, sex=sex)
    heavy = read_series(tmp_path / "bad")
    with pytest.raises(MissingFieldError, match="James-128 validity limit"):
        heavy.to_suv("lbm", lbm_formula="james128")
    assert heavy.to_suv("lbm").quantity is Quantity.SUL


def test_suvbsa_uses_the_dubois_body_surface_area(tmp_path):
    # §4.1: SUVbsa [cm^2/mL] = C * BSA / A_ref, DuBois & DuBois (1916):
    # BSA = 0.007184 W^0.425 H^0.725 m^2 (W kg, H cm). 70 kg, 175 cm: 1.8481 m^2
    # (DuBois; the commonly quoted ~1.85 m^2 for this build).
    bsa_m2 = 0.007184 * 70.0**0.425 * 175.0**0.725
    assert bsa_m2 == pytest.approx(1.848, abs=1e-3)
    assert bsa_dubois_m2(70.0, 175.0) == pytest.approx(bsa_m2, rel=1e-12)
    write_ga68(tmp_path)
    suv = read_series(tmp_path).to_suv("bsa")
    assert suv.quantity is Quantity.SUVBSA and suv.unit == "cm2/mL"
    expected = suv_by_hand(C_BQ_ML, bsa_m2 * 1e4, DOSE_BQ, 60.0, GA68_HALF_LIFE_MIN)
    assert_allclose(suv.data, expected, rtol=RTOL)


def test_suvibw_uses_sugawara_with_a_configurable_cap(tmp_path):
    # §4.1: Sugawara (1999) IBW male = 48.0 + 1.06 (H - 152), female = 45.5 +
    # 0.91 (H - 152) kg (H cm): 175 cm male -> 72.38 kg, 160 cm female -> 52.78 kg.
    # Default unclamped (MITK) with a recorded warning when IBW > W; ibw_cap=True
    # caps it at W (Slicer).
    assert ibw_sugawara_kg(175.0, "M") == pytest.approx(72.38, abs=1e-9)
    assert ibw_sugawara_kg(160.0, "F") == pytest.approx(52.78, abs=1e-9)
    write_ga68(tmp_path, weight_kg=WEIGHT_KG)  # 70 kg < IBW 72.38 kg
    img = read_series(tmp_path)
    suv = img.to_suv("ibw")
    assert suv.quantity is Quantity.SUVIBW
    expected = suv_by_hand(C_BQ_ML, 72.38e3, DOSE_BQ, 60.0, GA68_HALF_LIFE_MIN)
    assert_allclose(suv.data, expected, rtol=RTOL)
    assert any("exceeds the body weight" in a for a in suv.provenance.assumptions)
    capped = img.to_suv("ibw", ibw_cap=True)
    expected_capped = suv_by_hand(C_BQ_ML, WEIGHT_KG * 1000, DOSE_BQ, 60.0, GA68_HALF_LIFE_MIN)
    assert_allclose(capped.data, expected_capped, rtol=RTOL)


def test_suvibw_below_152_cm_is_extrapolated_and_recorded(tmp_path):
    # §4.1: below 152 cm the Sugawara formula is extrapolated: female 145 cm ->
    # 45.5 + 0.91 (-7) = 39.13 kg, recorded; a height giving IBW <= 0 is refused.
    write_ga68(tmp_path, weight_kg=50.0, size_m=1.45, sex="F")
    suv = read_series(tmp_path).to_suv("ibw")
    expected = suv_by_hand(C_BQ_ML, 39.13e3, DOSE_BQ, 60.0, GA68_HALF_LIFE_MIN)
    assert_allclose(suv.data, expected, rtol=RTOL)
    assert any("extrapolated" in a for a in suv.provenance.assumptions)
    with pytest.raises(MissingFieldError, match="non-positive Sugawara"):
        ibw_sugawara_kg(100.0, "M")  # 48 + 1.06 (-52) = -7.12 kg


@pytest.mark.parametrize(("hours", "flagged"), [(11.5, False), (12.5, True)])
def test_implausibly_long_injection_to_scan_interval_is_flagged(tmp_path, hours, flagged):
    # §4.2: "flag implausibly long intervals (e.g. > 12 h for 18F)": recorded,
    # not refused (other nuclides: the same 12 h / 109.77 min = 6.56 half-lives).
    inj = T_SERIES - timedelta(hours=hours)
    write_pet_series(
        tmp_path,
        np.full(SHAPE, C_BQ_ML),
        AFFINE,
        series_datetime=T_SERIES,
        injection_datetime=inj,
        total_dose=370e6,
        weight_kg=WEIGHT_KG,
    )
    img = read_series(tmp_path)
    assert any("implausibly long" in a for a in img.provenance.assumptions) is flagged
    expected = suv_by_hand(C_BQ_ML, WEIGHT_KG * 1000, 370e6, hours * 60, F18_HALF_LIFE_MIN)
    assert_allclose(img.to_suv().data, expected, rtol=RTOL)


def test_start_datetime_with_a_date_only_takes_the_time_of_day_from_start_time(tmp_path):
    # DICOM DT may stop at the date; the injection is then that date + the
    # Start Time (TM), not midnight. Without a TM the header is refused.
    write_ga68(tmp_path / "a", per_slice=set_item("RadiopharmaceuticalStartDateTime", "20240506"))
    img = read_series(tmp_path / "a")
    assert img.timing.injection == T_INJ
    expected = suv_by_hand(C_BQ_ML, WEIGHT_KG * 1000, DOSE_BQ, 60.0, GA68_HALF_LIFE_MIN)
    assert_allclose(img.to_suv().data, expected, rtol=RTOL)

    def date_only(k, ds):
        item = ds.RadiopharmaceuticalInformationSequence[0]
        item.RadiopharmaceuticalStartDateTime = "20240506"
        del item.RadiopharmaceuticalStartTime

    write_ga68(tmp_path / "b", per_slice=date_only)
    with pytest.raises(TimingError, match="no time of day"):
        read_series(tmp_path / "b")
