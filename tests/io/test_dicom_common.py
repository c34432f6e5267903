"""The shared DICOM administration and patient code (``theranet.io._dicom_common``).

Both DICOM readers (NM and single-frame series) read the injection time, the
administered activity, the nuclide, the tracer and the patient's body data
through :func:`administration` and :func:`patient_info`; these tests pin the
rules once, and check that the two readers record the same header situation in
the same words.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence

from tests.io.builders_nm import LU177_HALF_LIFE_S, axial_affine, write_nm_spect
from tests.io.builders_series import write_pet_series
from theranet.errors import Assumptions, MissingFieldError, TimingError, UnitError
from theranet.io._dicom_common import (
    INJECTION_ARGUMENT,
    NM_SOP_CLASS,
    PET_SOP_CLASS,
    administration,
    naive_local,
    patient_info,
    radiopharmaceutical_info,
)
from theranet.io.dicom_series import read_series
from theranet.io.nm import read_nm_planar, read_nm_spect

SCAN = datetime(2024, 5, 6, 10, 0, 0)
INJ = datetime(2024, 5, 6, 9, 0, 0)
LU177_CODE = ("SCT", "447553000", "^177^Lutetium")
BOTH_MODES = pytest.mark.parametrize("mode", ["strict", "lenient"])
# the malformed DT below is malformed on purpose
pytestmark = pytest.mark.filterwarnings("ignore:Invalid value for VR DT:UserWarning")


def _header(
    *,
    sop: str = NM_SOP_CLASS,
    dt: str | None = "20240506090000",
    tm: str | None = None,
    dose: str | None = "7400",
    code: tuple[str, str, str] | None = LU177_CODE,
    tracer: str | None = "Lu-177-DOTATATE",
    tz: str | None = None,
    series_date: str | None = "20240506",
    **top: str,
) -> Dataset:
    """A header with one Radiopharmaceutical Information item (None omits a value)."""
    ds = Dataset()
    ds.SOPClassUID = sop
    if series_date is not None:
        ds.SeriesDate = series_date
    if tz is not None:
        ds.TimezoneOffsetFromUTC = tz
    for kw, v in top.items():
        setattr(ds, kw, v)
    item = Dataset()
    if dt is not None:
        item.RadiopharmaceuticalStartDateTime = dt
    if tm is not None:
        item.RadiopharmaceuticalStartTime = tm
    if dose is not None:
        item.RadionuclideTotalDose = dose
    if tracer is not None:
        item.Radiopharmaceutical = tracer
    if code is not None:
        c = Dataset()
        c.CodingSchemeDesignator, c.CodeValue, c.CodeMeaning = code
        item.RadionuclideCodeSequence = DicomSequence([c])
    ds.RadiopharmaceuticalInformationSequence = DicomSequence([item])
    return ds


def _admin(ds: Dataset, mode: str = "strict", **kwargs):
    a = Assumptions(mode)
    steps: list[str] = []
    out = administration(ds, SCAN, a, steps, source="test header", **kwargs)
    return out, steps, a.records


# ------------------------------------------- header injection vs the argument


INCONSISTENT = {
    "DT and TM disagree": {"dt": "20240506090000", "tm": "083000"},
    "after the scan": {"dt": "20240506110000"},
    "malformed DT": {"dt": "2024-05-06 09:00"},
    "TM without a date": {"dt": None, "tm": "090000", "series_date": None},
}


@pytest.mark.parametrize("header", INCONSISTENT.values(), ids=INCONSISTENT.keys())
def test_unusable_header_injection_raises_without_an_override(header):
    with pytest.raises(TimingError):
        radiopharmaceutical_info(_header(**header), SCAN, Assumptions("strict"))


@pytest.mark.parametrize("header", INCONSISTENT.values(), ids=INCONSISTENT.keys())
@BOTH_MODES
def test_override_of_an_unusable_header_injection_is_noted_not_raised(header, mode):
    arg = INJ + timedelta(minutes=5)
    a = Assumptions(mode)
    info = radiopharmaceutical_info(_header(**header), SCAN, a, injection_override=arg)
    assert info.injection == arg
    assert info.injection_source == INJECTION_ARGUMENT
    assert info.header_injection is None
    (note,) = a.records
    assert note.startswith("header value unusable (")
    assert note.endswith("; the injection argument is used")
    # the rest of the item is still read
    assert info.total_dose_mbq == 7400.0 and info.nuclide == "Lu-177"


@pytest.mark.parametrize("header", INCONSISTENT.values(), ids=INCONSISTENT.keys())
def test_administration_records_the_override_of_an_unusable_header(header):
    arg = INJ + timedelta(minutes=5)
    admin, steps, records = _admin(_header(**header), injection=arg)
    assert admin.injection == arg and admin.injection_source == INJECTION_ARGUMENT
    assert admin.header_injection is None
    assert (
        f"injection {arg.isoformat()} from the injection argument (header: absent or unusable)"
        in (steps)
    )
    assert any(r.startswith("header value unusable") for r in records)


def test_override_of_a_usable_header_injection_keeps_it_and_notes_the_difference():
    arg = INJ + timedelta(minutes=7)
    admin, steps, records = _admin(_header(), injection=arg)
    assert admin.injection == arg
    assert admin.header_injection == INJ  # a scanner corrects ADMIN values to this
    assert steps[0] == (
        f"injection {arg.isoformat()} from the injection argument (header: {INJ.isoformat()})"
    )
    assert records == (
        f"injection {arg.isoformat()} from the argument overrides the header "
        f"{INJ.isoformat()} (RadiopharmaceuticalStartDateTime (0018,1078))",
    )


@BOTH_MODES
def test_override_of_a_time_only_header_notes_it_unusable(mode):
    # a Start Time without a date gives no injection day: next to an injection
    # argument the header value is unusable (noted), never dated from the scan day
    ds = _header(dt=None, tm="233000", series_date="20240506")
    scan = datetime(2024, 5, 6, 0, 30)
    a = Assumptions(mode)
    arg = datetime(2024, 5, 5, 23, 40)
    info = radiopharmaceutical_info(ds, scan, a, injection_override=arg)
    assert info.injection == arg
    assert info.header_injection is None
    (note,) = a.records
    assert note.startswith(
        "header value unusable (RadiopharmaceuticalStartTime (0018,1072) without "
        "RadiopharmaceuticalStartDateTime (0018,1078): has no date"
    )


@BOTH_MODES
def test_an_injection_argument_after_the_scan_is_refused(mode):
    with pytest.raises(TimingError, match="injection: is after the acquisition start"):
        _admin(_header(), mode, injection=SCAN + timedelta(minutes=1))


def test_an_injection_argument_that_is_not_a_datetime_is_refused():
    with pytest.raises(TimingError, match="injection: must be a datetime"):
        _admin(_header(), injection="2024-05-06 09:00")


def test_unusable_total_dose_is_noted_when_the_activity_is_given():
    ds = _header(sop="1.2.3.4")  # Total Dose unit undefined for this SOP Class
    with pytest.raises(MissingFieldError, match="RadionuclideTotalDose"):
        _admin(ds)
    admin, steps, records = _admin(ds, administered_activity_mbq=7000.0)
    assert admin.activity_mbq == 7000.0
    assert (
        "administered activity 7000 MBq from the administered_activity_mbq argument "
        "(header: absent or unusable)"
    ) in steps
    assert any(r.startswith("header value unusable") for r in records)
    with pytest.raises(TimingError, match="administered_activity_mbq"):
        _admin(_header(), administered_activity_mbq=-1.0)


def test_total_dose_units_follow_the_sop_class():
    nm, nm_steps, _ = _admin(_header(sop=NM_SOP_CLASS, dose="7400"))
    pet, pet_steps, _ = _admin(_header(sop=PET_SOP_CLASS, dose="7400000000"))
    assert nm.activity_mbq == pytest.approx(pet.activity_mbq) == 7400.0
    assert any("(in MBq for this SOP Class)" in s for s in nm_steps)
    assert any("(in Bq for this SOP Class)" in s for s in pet_steps)


# ------------------------------------------------------------------ time zones


def test_aware_header_injection_with_timezone_offset_is_converted():
    ds = _header(dt="20240506070000+0000", tz="+0200")
    admin, steps, records = _admin(ds)
    assert admin.injection == INJ and admin.injection.tzinfo is None
    assert any("converted to local time 2024-05-06T09:00:00" in s for s in steps)
    assert any("TimezoneOffsetFromUTC (0008,0201) +0200" in s for s in steps)
    assert records == ()


def test_header_injection_after_the_scan_once_made_local_is_unusable():
    # 09:30 at UTC-5 is 14:30 at the scanner's UTC+0: after the 10:00 scan
    ds = _header(dt="20240506093000-0500", tz="+0000")
    with pytest.raises(TimingError, match="injection is after the acquisition start"):
        _admin(ds)
    admin, _, records = _admin(ds, injection=INJ)
    assert admin.injection == INJ and admin.header_injection is None
    assert any(r.startswith("header value unusable") for r in records)


@BOTH_MODES
def test_aware_header_injection_without_timezone_offset_keeps_the_wall_clock(mode):
    admin, _, records = _admin(_header(dt="20240506090000+0100"), mode)
    assert admin.injection == INJ and admin.injection.tzinfo is None
    assert any("UTC offset 1:00:00 dropped" in r for r in records)


def test_aware_injection_argument_with_timezone_offset_is_converted():
    aware = datetime(2024, 5, 6, 7, 0, tzinfo=UTC)
    admin, steps, records = _admin(_header(tz="+0200"), injection=aware)
    assert admin.injection == INJ and admin.injection.tzinfo is None
    assert admin.injection_source == INJECTION_ARGUMENT
    assert any(s.startswith("injection 2024-05-06T07:00:00+00:00 converted") for s in steps)
    assert records == ()


def test_aware_injection_argument_without_timezone_offset_needs_lenient_mode():
    aware = INJ.replace(tzinfo=timezone(timedelta(hours=2)))
    with pytest.raises(TimingError, match="naive datetime"):
        _admin(_header(), injection=aware)
    admin, _, records = _admin(_header(), "lenient", injection=aware)
    assert admin.injection == INJ
    assert any("UTC offset dropped" in r for r in records)


def test_malformed_timezone_offset_is_noted_and_not_used():
    a = Assumptions("lenient")
    ds = _header(tz="CET")
    out = naive_local(INJ.replace(tzinfo=UTC), ds, "injection", a, ask=True)
    assert out == INJ
    assert any("TimezoneOffsetFromUTC (0008,0201) 'CET'" in r for r in a.records)
    assert naive_local(None, ds, "x", a) is None
    assert naive_local(INJ, ds, "x", a) is INJ


# --------------------------------------------------------------------- nuclide


@pytest.mark.parametrize("sop", [NM_SOP_CLASS, PET_SOP_CLASS], ids=["NM", "PT"])
def test_missing_nuclide_is_refused_when_strict(sop):
    with pytest.raises(MissingFieldError) as info:
        _admin(_header(sop=sop, code=None))
    msg = str(info.value)
    assert "RadionuclideCodeSequence (0054,0300)" in msg and "--nuclide" in msg


@pytest.mark.parametrize("sop", [NM_SOP_CLASS, PET_SOP_CLASS], ids=["NM", "PT"])
def test_missing_nuclide_is_recorded_when_lenient(sop):
    admin, steps, records = _admin(_header(sop=sop, code=None), "lenient")
    assert admin.nuclide is None
    assert "nuclide unknown (RadionuclideCodeSequence (0054,0300) absent or not recognised)" in (
        steps
    )
    assert records == (
        "RadionuclideCodeSequence (0054,0300): absent or not recognised, so the nuclide is "
        "unknown; nuclide left unknown; decay correction will be refused",
    )


def test_nuclide_argument_overrides_and_non_emission_needs_none():
    admin, steps, records = _admin(_header(), nuclide="18F")
    assert admin.nuclide == "F-18"
    assert "nuclide F-18 from the nuclide argument (header code: Lu-177)" in steps
    assert any("nuclide F-18 from the argument overrides the header Lu-177" in r for r in records)
    empty = Dataset()
    empty.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2"  # CT
    ct, ct_steps, ct_records = _admin(empty, emission=False)
    assert (ct.nuclide, ct.injection, ct.activity_mbq) == (None, None, None)
    assert ct_steps == [] and ct_records == ()


def test_missing_nuclide_in_the_readers(tmp_path):
    nm = write_nm_spect(tmp_path / "s.dcm", np.ones((3, 4, 5)), axial_affine(), nuclide_code=False)
    with pytest.raises(MissingFieldError, match=r"RadionuclideCodeSequence \(0054,0300\)"):
        read_nm_spect(nm)
    assert read_nm_spect(nm, strictness="lenient").nuclide is None
    write_pet_series(tmp_path / "pt", np.full((3, 4, 5), 5000.0), _pet_affine(), nuclide_code=None)
    with pytest.raises(MissingFieldError, match=r"RadionuclideCodeSequence \(0054,0300\)"):
        read_series(tmp_path / "pt")
    assert read_series(tmp_path / "pt", strictness="lenient").nuclide is None
    assert read_series(tmp_path / "pt", nuclide="F-18").nuclide == "F-18"


# --------------------------------------------------------------------- patient


def _patient(mode: str = "strict", weight_kg: float | None = None, **top):
    ds = Dataset()
    for kw, v in top.items():
        setattr(ds, kw, v)
    a = Assumptions(mode)
    steps: list[str] = []
    return patient_info(ds, a, steps, "test header", weight_kg=weight_kg), steps, a.records


@pytest.mark.parametrize("size", ["171", "-1.7", "3.5"])
def test_patient_size_out_of_range_strict_and_lenient(size):
    with pytest.raises(UnitError, match=r"PatientSize \(0010,1020\).*Patient's Size is in metres"):
        _patient(PatientSize=size)
    p, _, records = _patient("lenient", PatientSize=size)
    assert p.height_cm is None
    assert any("PatientSize (0010,1020)" in r and "height left unknown" in r for r in records)


def test_patient_size_in_metres_and_zero():
    assert _patient(PatientSize="1.71")[0].height_cm == pytest.approx(171.0)
    p, _, records = _patient(PatientSize="0")
    assert p.height_cm is None and records == ()


@pytest.mark.parametrize(
    ("weight", "expected", "noted"),
    [("72.5", 72.5, False), ("0", None, False), ("700", 700.0, False), ("701", None, True)],
)
def test_patient_weight_plausibility(weight, expected, noted):
    p, steps, records = _patient(PatientWeight=weight)
    assert p.weight_kg == expected
    assert any("implausible" in r for r in records) is noted
    if expected is None:
        assert steps == ["patient weight unknown (PatientWeight (0010,1030) absent or unusable)"]
    else:
        assert steps == [f"patient weight {expected:g} kg from PatientWeight (0010,1030)"]


def test_patient_weight_argument_and_sex():
    p, steps, records = _patient(weight_kg=80, PatientWeight="72.5", PatientSex="F")
    assert p.weight_kg == 80.0 and p.sex == "F"
    assert steps == ["patient weight 80 kg from the patient_weight_kg argument (header: 72.5 kg)"]
    assert records == (
        "patient weight 80 kg from the argument overrides the header PatientWeight (0010,1030) "
        "72.5 kg",
    )
    assert _patient(PatientSex="O")[0].sex is None
    for bad in (0, -3.0, float("nan"), True):
        with pytest.raises(MissingFieldError, match="patient_weight_kg"):
            _patient(weight_kg=bad)


def test_nm_readers_take_a_patient_weight(tmp_path):
    path = write_nm_spect(tmp_path / "s.dcm", np.ones((3, 4, 5)), axial_affine())
    img = read_nm_spect(path, patient_weight_kg=80.0)
    assert img.patient.weight_kg == 80.0
    assert (
        "patient weight 80 kg from the patient_weight_kg argument (header: 72.5 kg)"
        in img.provenance.steps
    )

    def size_in_cm(ds):
        ds.PatientSize = "171"

    bad = write_nm_spect(tmp_path / "b.dcm", np.ones((3, 4, 5)), axial_affine(), mutate=size_in_cm)
    with pytest.raises(UnitError, match="PatientSize"):
        read_nm_spect(bad)
    assert read_nm_spect(bad, strictness="lenient").patient.height_cm is None


def test_nm_planar_takes_a_patient_weight(tmp_path):
    from tests.io.builders_nm import write_nm_planar

    img = np.ones((8, 4))
    study = read_nm_planar(write_nm_planar(tmp_path / "wb.dcm", img, img), patient_weight_kg=66.0)
    assert study.patient.weight_kg == 66.0
    assert any("66 kg from the patient_weight_kg argument" in s for s in study.provenance.steps)


# ------------------------------------- one header situation, one wording


def _pet_affine() -> np.ndarray:
    aff = np.eye(4)
    aff[:3, 0] = [0.0, 0.0, 2.5]
    aff[:3, 1] = [0.0, 0.8, 0.0]
    aff[:3, 2] = [0.7, 0.0, 0.0]
    return aff


_ADMIN_PREFIXES = (
    "injection",
    "RadiopharmaceuticalStartDateTime",  # its conversion to local time
    "administered activity",
    "nuclide",
    "patient weight",
)


def _admin_record(provenance, source: str) -> tuple[list[str], list[str]]:
    """The administration/patient steps and all assumptions, with the source
    (file name or series description) and the Total Dose unit (Bq in PET, MBq
    in NM, by definition of the IODs) replaced by placeholders."""

    def norm(text: str) -> str:
        text = text.replace(source, "<source>")
        return re.sub(r"\(in M?Bq for this SOP Class\)", "(in <unit> for this SOP Class)", text)

    # the readers read the patient and the administration in different orders
    steps = sorted(norm(s) for s in provenance.steps if s.startswith(_ADMIN_PREFIXES))
    return steps, sorted(norm(a) for a in provenance.assumptions)


def _both_readers(
    tmp_path: Path,
    edit: Callable[[Dataset], None] | None = None,
    mode: str = "strict",
    **kwargs,
) -> tuple[tuple[list[str], list[str]], tuple[list[str], list[str]]]:
    """Read the same administration and patient header as NM SPECT and as a
    PET series; return both readers' records."""
    vol = np.full((3, 4, 5), 5000.0)
    nm_path = write_nm_spect(
        tmp_path / "spect.dcm",
        vol,
        axial_affine(),
        acquisition_start=SCAN,
        injection=INJ,
        total_dose_mbq=370.0,
        mutate=edit,
    )
    write_pet_series(
        tmp_path / "pt",
        vol,
        _pet_affine(),
        series_datetime=SCAN,
        injection_datetime=INJ,
        total_dose=370e6,
        half_life_s=LU177_HALF_LIFE_S,
        nuclide_code=LU177_CODE,
        radiopharmaceutical="Lu-177-DOTATATE",
        weight_kg=72.5,
        size_m=1.71,
        sex="F",
        per_slice=(lambda _k, ds: edit(ds)) if edit is not None else None,
    )
    nm = read_nm_spect(nm_path, strictness=mode, **kwargs)
    pt = read_series(tmp_path / "pt", strictness=mode, **kwargs)
    assert nm.timing.injection == pt.timing.injection
    assert nm.timing.injection_source == pt.timing.injection_source
    assert nm.timing.administered_activity_mbq == pytest.approx(pt.timing.administered_activity_mbq)
    assert (nm.nuclide, nm.tracer, nm.patient) == (pt.nuclide, pt.tracer, pt.patient)
    return (
        _admin_record(nm.provenance, nm_path.name),
        _admin_record(pt.provenance, pt.provenance.source),
    )


def _late_injection(ds):
    item = ds.RadiopharmaceuticalInformationSequence[0]
    item.RadiopharmaceuticalStartDateTime = "20240506110000"
    if "RadiopharmaceuticalStartTime" in item:
        item.RadiopharmaceuticalStartTime = "110000"


def _aware_injection(ds):
    item = ds.RadiopharmaceuticalInformationSequence[0]
    item.RadiopharmaceuticalStartDateTime = "20240506070000+0000"
    if "RadiopharmaceuticalStartTime" in item:
        del item.RadiopharmaceuticalStartTime
    ds.TimezoneOffsetFromUTC = "+0200"


def _no_nuclide(ds):
    del ds.RadiopharmaceuticalInformationSequence[0].RadionuclideCodeSequence


SITUATIONS = {
    "header only": (None, "strict", {}),
    "arguments override the header": (
        None,
        "strict",
        {
            "injection": INJ + timedelta(minutes=7),
            "administered_activity_mbq": 350.0,
            "nuclide": "177Lu",
            "patient_weight_kg": 80.0,
        },
    ),
    "argument overrides an injection after the scan": (
        _late_injection,
        "strict",
        {"injection": INJ},
    ),
    "aware header injection with a UTC offset": (_aware_injection, "strict", {}),
    "no nuclide, lenient": (_no_nuclide, "lenient", {}),
}


@pytest.mark.parametrize(("edit", "mode", "kwargs"), SITUATIONS.values(), ids=SITUATIONS.keys())
def test_both_readers_record_the_same_header_situation_in_the_same_words(
    tmp_path, edit, mode, kwargs
):
    (nm_steps, nm_assumptions), (pt_steps, pt_assumptions) = _both_readers(
        tmp_path, edit, mode, **kwargs
    )
    assert nm_steps == pt_steps
    assert nm_assumptions == pt_assumptions
    assert len(nm_steps) >= 4  # injection, activity, nuclide, weight


def test_same_words_for_an_aware_header_injection(tmp_path):
    (nm_steps, _), (pt_steps, _) = _both_readers(tmp_path, _aware_injection)
    expected = (
        "RadiopharmaceuticalStartDateTime (0018,1078) 2024-05-06T07:00:00+00:00 converted to "
        "local time 2024-05-06T09:00:00 with TimezoneOffsetFromUTC (0008,0201) +0200"
    )
    assert expected in nm_steps and expected in pt_steps


def test_same_words_for_an_overridden_late_injection(tmp_path):
    (nm_steps, nm_assumptions), _ = _both_readers(tmp_path, _late_injection, injection=INJ)
    assert (
        f"injection {INJ.isoformat()} from the injection argument (header: absent or unusable)"
    ) in nm_steps
    (note,) = nm_assumptions
    assert note.startswith(
        "header value unusable (RadiopharmaceuticalStartDateTime (0018,1078): injection is "
        "after the acquisition start 2024-05-06T10:00:00"
    )


# ------------------------------- Start Time without a date (the injection day)


def test_start_time_without_a_date_is_refused_when_strict():
    ds = _header(dt=None, tm="090000", series_date="20240506")
    with pytest.raises(TimingError) as info:
        radiopharmaceutical_info(ds, SCAN, Assumptions("strict"))
    msg = str(info.value)
    assert "RadiopharmaceuticalStartTime (0018,1072)" in msg
    assert "RadiopharmaceuticalStartDateTime (0018,1078)" in msg
    assert "'090000'" in msg and "--injection-datetime" in msg
    # the fix the message names works
    admin, _, _ = _admin(ds, injection=INJ)
    assert admin.injection == INJ and admin.injection_source == INJECTION_ARGUMENT


def test_start_time_without_a_date_takes_the_series_date_when_lenient():
    ds = _header(dt=None, tm="090000", series_date="20240506")
    admin, _, records = _admin(ds, "lenient")
    assert admin.injection == INJ
    assert "SeriesDate (0008,0021)" in admin.injection_source
    assert records == (
        "RadiopharmaceuticalStartTime (0018,1072) without RadiopharmaceuticalStartDateTime "
        "(0018,1078): has no date, so the injection day is unknown; injection date taken from "
        "SeriesDate (0008,0021) 20240506",
    )


@BOTH_MODES
def test_midnight_rule_is_refused_when_strict_and_recorded_when_lenient(mode):
    # 23:30 on the series date would be after the 00:30 scan: the previous day
    ds = _header(dt=None, tm="233000", series_date="20240506")
    scan = datetime(2024, 5, 6, 0, 30)
    a = Assumptions(mode)
    if mode == "strict":
        with pytest.raises(TimingError, match=r"RadiopharmaceuticalStartTime \(0018,1072\)"):
            radiopharmaceutical_info(ds, scan, a)
        return
    info = radiopharmaceutical_info(ds, scan, a)
    assert info.injection == datetime(2024, 5, 5, 23, 30)
    assert "midnight crossing: previous day" in info.injection_source
    date_note, midnight_note = a.records
    assert "injection date taken from SeriesDate (0008,0021) 20240506" in date_note
    assert midnight_note.startswith(
        "RadiopharmaceuticalStartTime (0018,1072): is later than the acquisition start "
        "2024-05-06T00:30:00"
    )
    assert midnight_note.endswith("the previous day was taken (midnight crossing)")


def test_nm_24h_time_point_with_a_start_time_only_is_not_read_as_hours(tmp_path):
    """The reviewer's case: injection the day before the scan, header with only the
    Start Time. Strict refuses; lenient dates it on the scan day and says so."""
    injection = datetime(2024, 5, 5, 9, 0)
    scan = datetime(2024, 5, 6, 9, 30)  # 24.5 h after injection

    def time_only(ds):
        item = ds.RadiopharmaceuticalInformationSequence[0]
        del item.RadiopharmaceuticalStartDateTime
        item.RadiopharmaceuticalStartTime = "090000"

    path = write_nm_spect(
        tmp_path / "s.dcm",
        np.full((3, 4, 5), 5000.0),
        axial_affine(),
        acquisition_start=scan,
        injection=injection,
        mutate=time_only,
    )
    with pytest.raises(TimingError, match="has no date"):
        read_nm_spect(path)
    assert read_nm_spect(path, injection=injection).timing.hours_after_injection() == 24.5
    lenient = read_nm_spect(path, strictness="lenient")
    assert lenient.timing.hours_after_injection() == 0.5  # the guess, recorded
    assert any("injection date taken from" in a for a in lenient.provenance.assumptions)
