"""Shared DICOM reading helpers: safe file reading, date/time parsing, the
Radiopharmaceutical Information Sequence and radionuclide codes.

Conventions (see the DICOM standard PS3.3):

* Radionuclide Total Dose (0018,1074) is in **Bq** in the classic PET Image IOD
  and in **MBq** in the NM Image IOD and the Enhanced PET IOD; we branch on the
  SOP Class, never on the magnitude.
* Radiopharmaceutical Start DateTime (0018,1078) is preferred; Start Time
  (0018,1072) alone has no date, so the injection day is unknown: it is refused
  when strict. When lenient it is combined with the Series (or Study/Acquisition)
  Date, taking the previous day when that would place the injection after the
  scan (midnight crossing), and both assumptions are recorded. When both are present
  they must agree to one unit of the coarser precision (1 s, 1 min or 1 h),
  else the header is refused; a Start DateTime with a date only takes its time
  of day from Start Time. An injection after the scan is refused, and an
  interval longer than 12 h for 18F (the same number of half-lives for other
  nuclides) is recorded (clinical.md §4.2).
* DICOM times are local wall-clock times. An aware datetime (a DT with an
  offset, or an aware ``injection=`` argument) is converted to the header's
  Timezone Offset From UTC (0008,0201) when present; otherwise its offset is
  dropped, which is an assumption (lenient mode) for an argument and a recorded
  note for a header value (:func:`naive_local`).
* :func:`administration` and :func:`patient_info` are the one implementation of
  the administration (injection, activity, nuclide, tracer) and the patient
  body data for every DICOM reader (NM and single-frame series), so that both
  take the same paths and record them in the same words.
"""

from __future__ import annotations

import logging
import math
import numbers
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import TypeVar

import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from theranet.errors import (
    Assumptions,
    DicomReadError,
    InconsistentSeriesError,
    MissingFieldError,
    Strictness,
    TimingError,
    UnitError,
)
from theranet.image import PatientInfo

logger = logging.getLogger(__name__)

__all__ = [
    "ENHANCED_PET_SOP_CLASS",
    "INJECTION_ARGUMENT",
    "NM_SOP_CLASS",
    "PET_SOP_CLASS",
    "Administration",
    "RadiopharmaceuticalInfo",
    "administration",
    "check_half_life",
    "dicom_datetime",
    "naive_local",
    "nuclide_from_code",
    "parse_da",
    "parse_dt",
    "parse_tm",
    "patient_info",
    "pixel_array",
    "radiopharmaceutical_info",
    "read_dataset",
    "same_value",
    "tag_name",
]

PET_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.128"
ENHANCED_PET_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.130"
LEGACY_ENHANCED_PET_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.128.1"
NM_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.20"
CT_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.2"
MR_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.4"

# Radionuclide Total Dose units by SOP Class (PS3.3 C.8.4.10.1.7, C.8.9.2, C.8.22.4).
_TOTAL_DOSE_UNIT_TO_MBQ = {
    PET_SOP_CLASS: 1e-6,  # Bq
    NM_SOP_CLASS: 1.0,  # MBq
    ENHANCED_PET_SOP_CLASS: 1.0,  # MBq
    LEGACY_ENHANCED_PET_SOP_CLASS: 1.0,  # MBq (Enhanced PET Isotope module)
}

# SNOMED CT (SCT) codes of radionuclides, CID 18 / CID 4020 (pydicom concept dictionary);
# SNOMED-RT (SRT) aliases seen in older files.
_NUCLIDE_CODES = {
    ("SCT", "447553000"): "Lu-177",
    ("SCT", "14691008"): "Y-90",
    ("SCT", "1368003"): "I-131",
    ("SCT", "56609000"): "In-111",
    ("SCT", "21572004"): "I-123",
    ("SCT", "35337001"): "Ga-68",
    ("SCT", "72454006"): "Tc-99m",
    ("SCT", "77004003"): "F-18",
    ("SRT", "C-111A1"): "F-18",
}

_ELEMENTS = {
    "lutetium": "Lu",
    "yttrium": "Y",
    "iodine": "I",
    "indium": "In",
    "gallium": "Ga",
    "technetium": "Tc",
    "fluorine": "F",
    "copper": "Cu",
    "carbon": "C",
}


def tag_name(keyword: str) -> str:
    """``"Units (0054,1001)"`` for a DICOM keyword, for error messages."""
    tag = pydicom.datadict.tag_for_keyword(keyword)
    if tag is None:
        return keyword
    return f"{keyword} ({tag >> 16:04X},{tag & 0xFFFF:04X})"


def read_dataset(path: str | Path, *, stop_before_pixels: bool = False) -> Dataset:
    """Read one DICOM file, turning every failure into :class:`DicomReadError`.

    Files without the DICM preamble are refused (no ``force``): a folder of
    DICOM files should not contain anything else.
    """
    path = Path(path)
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=stop_before_pixels)
    except InvalidDicomError:
        raise DicomReadError(
            "file",
            "is not a DICOM file (no DICM preamble)",
            path.name,
            "remove non-DICOM files from the series folder",
            str(path.parent.name),
        ) from None
    except (EOFError, OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise DicomReadError(
            "file",
            f"cannot be parsed as DICOM ({type(exc).__name__}: {exc})",
            path.name,
            "the file is truncated or corrupt; re-export it",
            str(path.parent.name),
        ) from None
    if "SOPClassUID" not in ds:
        raise DicomReadError(
            "SOPClassUID (0008,0016)",
            "absent: not a DICOM image",
            path.name,
            "remove non-image files from the series folder",
        )
    return ds


def pixel_array(ds: Dataset, source: str):
    """``ds.pixel_array``, or :class:`DicomReadError` for truncated pixel data."""
    try:
        return ds.pixel_array
    except Exception as exc:  # pydicom raises several types for bad pixel data
        raise DicomReadError(
            "PixelData (7FE0,0010)",
            f"cannot be decoded ({type(exc).__name__}: {exc})",
            None,
            "the file is truncated or uses an unsupported transfer syntax; re-export it",
            source,
        ) from None


def parse_da(value: str) -> date:
    """DICOM DA (``YYYYMMDD``) -> date."""
    s = str(value).strip()
    try:
        return datetime.strptime(s, "%Y%m%d").date()
    except ValueError:
        raise TimingError("DA", "not a DICOM date YYYYMMDD", s) from None


def parse_tm(value: str) -> time:
    """DICOM TM (``HHMMSS.FFFFFF``, optionally shorter) -> time."""
    s = str(value).strip()
    m = re.fullmatch(r"(\d{2})(\d{2})?(\d{2})?(?:\.(\d{1,6}))?", s)
    if not m:
        m2 = re.fullmatch(r"(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,6}))?", s)  # ACR-NEMA style
        if not m2:
            raise TimingError("TM", "not a DICOM time HHMMSS.FFFFFF", s)
        m = m2
    hh, mm, ss, frac = m.groups()
    micro = int((frac or "0").ljust(6, "0"))
    try:
        return time(int(hh), int(mm or 0), int(ss or 0), micro)
    except ValueError:
        raise TimingError("TM", "time out of range", s) from None


def parse_dt(value: str) -> datetime:
    """DICOM DT (``YYYYMMDDHHMMSS.FFFFFF&ZZXX``) -> datetime (aware if an offset is given)."""
    s = str(value).strip()
    m = re.fullmatch(r"(\d{8})(\d{2,6}(?:\.\d{1,6})?)?([+-]\d{4})?", s)
    if not m:
        raise TimingError("DT", "not a DICOM datetime YYYYMMDDHHMMSS", s)
    d = parse_da(m.group(1))
    t = parse_tm(m.group(2)) if m.group(2) else time(0)
    out = datetime.combine(d, t)
    if m.group(3):
        sign = 1 if m.group(3)[0] == "+" else -1
        off = timedelta(hours=int(m.group(3)[1:3]), minutes=int(m.group(3)[3:5]))
        out = out.replace(tzinfo=timezone(sign * off))
    return out


def _get(ds: Dataset, keyword: str) -> str | None:
    v = ds.get(keyword)
    if v is None or str(v).strip() == "":
        return None
    return str(v)


def dicom_datetime(ds: Dataset, date_keyword: str, time_keyword: str) -> datetime | None:
    """Combine a DA and a TM attribute; None if either is absent."""
    d, t = _get(ds, date_keyword), _get(ds, time_keyword)
    if d is None or t is None:
        return None
    return datetime.combine(parse_da(d), parse_tm(t))


def nuclide_from_code(item: Dataset) -> str | None:
    """Canonical nuclide name from a Radionuclide Code Sequence item, or None.

    Matches (scheme, value) against SNOMED CT codes with SNOMED-RT aliases, then
    falls back to the code meaning (``"^177^Lutetium"``).
    """
    seq = item.get("RadionuclideCodeSequence")
    if not seq:
        return None
    code = seq[0]
    key = (str(code.get("CodingSchemeDesignator", "")).strip(), str(code.get("CodeValue", "")))
    if key in _NUCLIDE_CODES:
        return _NUCLIDE_CODES[key]
    meaning = str(code.get("CodeMeaning", ""))
    m = re.fullmatch(r"\^?(\d+)(m?)\^?\s*([A-Za-z]+)", meaning.strip())
    if m and m.group(3).lower() in _ELEMENTS:
        return f"{_ELEMENTS[m.group(3).lower()]}-{m.group(1)}{m.group(2)}"
    return None


#: ``injection_source`` of an injection time supplied as an argument.
INJECTION_ARGUMENT = "injection argument"

#: Injection-to-scan interval flagged (recorded, not refused) for 18F, h; the
#: example of clinical.md §4.2, applied to other nuclides in half-lives.
LONG_INTERVAL_F18_H = 12.0

_MAX_WEIGHT_KG = 700.0
_MAX_SIZE_M = 3.0

_T = TypeVar("_T")


def _utc_offset(text: str) -> timezone | None:
    """``+HHMM``/``-HHMM`` (Timezone Offset From UTC) -> timezone; None if malformed."""
    m = re.fullmatch(r"([+-]?)(\d{2})(\d{2})", text.strip())
    if not m or int(m.group(2)) > 14 or int(m.group(3)) >= 60:
        return None
    sign = -1 if m.group(1) == "-" else 1
    return timezone(sign * timedelta(hours=int(m.group(2)), minutes=int(m.group(3))))


def naive_local(
    t: datetime | None,
    ds: Dataset,
    what: str,
    assumptions: Assumptions,
    *,
    ask: bool = False,
    steps: list[str] | None = None,
    source: str | None = None,
) -> datetime | None:
    """An aware datetime as naive local time (DICOM times are local wall-clock times).

    With Timezone Offset From UTC (0008,0201) in the header, ``t`` is converted
    to that offset (recorded in ``steps`` when given). Otherwise the offset is
    dropped and the wall-clock time kept: for a value the caller supplies
    (``ask=True``) that is an assumption, refused when strict; for a header
    value it is a recorded note. Naive datetimes, ``None`` and anything that is
    not a datetime are returned unchanged.
    """
    if not isinstance(t, datetime) or t.tzinfo is None:
        return t
    off = _get(ds, "TimezoneOffsetFromUTC")
    if off is not None:
        tz = _utc_offset(off)
        if tz is not None:
            local = t.astimezone(tz).replace(tzinfo=None)
            if steps is not None:
                steps.append(
                    f"{what} {t.isoformat()} converted to local time {local.isoformat()} "
                    f"with {tag_name('TimezoneOffsetFromUTC')} {off.strip()}"
                )
            return local
        assumptions.note(
            f"{tag_name('TimezoneOffsetFromUTC')} {off.strip()!r} is not +/-HHMM; not used"
        )
    if ask:
        assumptions.allow(
            TimingError(
                what,
                "has a UTC offset, but the DICOM times are local times without one",
                t.isoformat(),
                "pass the local wall-clock time as a naive datetime, or read with "
                "strictness='lenient' to drop the offset",
                source,
            ),
            "UTC offset dropped; taken as scanner local time",
        )
    else:
        assumptions.note(f"{what}: UTC offset {t.utcoffset()} dropped; taken as scanner local time")
    return t.replace(tzinfo=None)


@dataclass(frozen=True)
class RadiopharmaceuticalInfo:
    """What a DICOM header (and the caller's overrides) say about the administration.

    Attributes
    ----------
    injection : datetime or None
        The injection time to use: ``injection_override`` when given, else the
        header's.
    injection_source : str
        :data:`INJECTION_ARGUMENT`, or the attribute(s) the injection time came
        from and any midnight rule applied ("" when unknown).
    total_dose_mbq : float or None
        The administered activity to use, MBq: ``activity_override_mbq`` when
        given, else Radionuclide Total Dose converted to MBq by SOP Class.
    half_life_h : float or None
        Radionuclide Half Life (0018,1075) converted to h.
    nuclide : str or None
        Canonical nuclide from the Radionuclide Code Sequence.
    radiopharmaceutical : str or None
        Radiopharmaceutical (0018,0031) text.
    header_injection : datetime or None
        The header's injection time, None when absent or unusable (an unusable
        one is tolerated only next to an override, and noted).
    header_injection_source : str
        Where ``header_injection`` came from.
    header_total_dose_mbq : float or None
        The header's Radionuclide Total Dose in MBq, None when absent or unusable.
    """

    injection: datetime | None
    injection_source: str
    total_dose_mbq: float | None
    half_life_h: float | None
    nuclide: str | None
    radiopharmaceutical: str | None
    header_injection: datetime | None = None
    header_injection_source: str = ""
    header_total_dose_mbq: float | None = None


def _check_not_after(
    inj: datetime,
    scan_start: datetime | None,
    field: str,
    problem: str,
    fix: str,
    source: str | None,
) -> None:
    """TimingError when ``inj`` is after ``scan_start`` (offsets ignored if only one has one)."""
    if scan_start is None:
        return
    if (inj.tzinfo is None) != (scan_start.tzinfo is None):
        inj_cmp, s_cmp = inj.replace(tzinfo=None), scan_start.replace(tzinfo=None)
    else:
        inj_cmp, s_cmp = inj, scan_start
    if inj_cmp > s_cmp:
        raise TimingError(
            field,
            f"{problem} the acquisition start {s_cmp.isoformat()}",
            inj_cmp.isoformat(),
            fix,
            source,
        )


def _header_injection(
    ds: Dataset,
    item: Dataset,
    scan_start: datetime | None,
    assumptions: Assumptions,
    source: str | None,
) -> tuple[datetime | None, str]:
    """The injection time of a Radiopharmaceutical Information item and its source."""
    inj: datetime | None = None
    inj_src = ""
    dt_s = _get(item, "RadiopharmaceuticalStartDateTime")
    tm_s = _get(item, "RadiopharmaceuticalStartTime")
    if dt_s is not None:
        inj = parse_dt(dt_s)
        inj_src = tag_name("RadiopharmaceuticalStartDateTime")
        dt_unit_s = _dt_precision_s(dt_s)
        if dt_unit_s is None:  # a date without a time of day
            if tm_s is None:
                raise TimingError(
                    inj_src,
                    "has a date but no time of day, and Radiopharmaceutical Start Time "
                    "(0018,1072) is absent",
                    dt_s,
                    "correct the header, or supply the injection datetime "
                    "(CLI --injection-datetime)",
                    source,
                )
            inj = datetime.combine(inj.date(), parse_tm(tm_s), inj.tzinfo)
            inj_src = f"{inj_src} (date) + {tag_name('RadiopharmaceuticalStartTime')}"
        elif tm_s is not None and _disagree(dt_s, dt_unit_s, tm_s):
            raise TimingError(
                tag_name("RadiopharmaceuticalStartTime"),
                f"disagrees with RadiopharmaceuticalStartDateTime {dt_s} (by one unit of "
                "the coarser precision or more)",
                tm_s,
                "correct the header, or supply the injection datetime explicitly "
                "(CLI --injection-datetime)",
                source,
            )
    elif tm_s is not None:
        day_s = day_kw = None
        for kw in ("SeriesDate", "StudyDate", "AcquisitionDate"):
            day_s = _get(ds, kw)
            if day_s is not None:
                day_kw = kw
                inj_src = f"{tag_name('RadiopharmaceuticalStartTime')} + {tag_name(kw)}"
                break
        if day_s is None or day_kw is None:
            assumptions.allow(
                TimingError(
                    tag_name("RadiopharmaceuticalStartTime"),
                    "has no date to go with it",
                    tm_s,
                    "supply the injection datetime (CLI --injection-datetime)",
                    source,
                ),
                "injection time left unknown",
            )
        else:
            # The injection day is not in the header: the scan day is only a guess
            # (a 24 h time point would be read as a few hours after injection).
            assumptions.allow(
                TimingError(
                    f"{tag_name('RadiopharmaceuticalStartTime')} without "
                    f"{tag_name('RadiopharmaceuticalStartDateTime')}",
                    "has no date, so the injection day is unknown",
                    tm_s,
                    "supply the injection date and time (CLI --injection-datetime, Python "
                    "injection=datetime(...)), or read with strictness='lenient' to take the "
                    f"date from {tag_name(day_kw)} {day_s} (the scan day)",
                    source,
                ),
                f"injection date taken from {tag_name(day_kw)} {day_s}",
            )
            inj = datetime.combine(parse_da(day_s), parse_tm(tm_s))
            if scan_start is not None and inj > scan_start.replace(tzinfo=None):
                assumptions.allow(
                    TimingError(
                        tag_name("RadiopharmaceuticalStartTime"),
                        f"is later than the acquisition start {scan_start.isoformat()} on "
                        f"{tag_name(day_kw)} {day_s}, so the injection day is unknown",
                        tm_s,
                        "supply the injection date and time (CLI --injection-datetime), or "
                        "read with strictness='lenient' to take the previous day (midnight "
                        "crossing)",
                        source,
                    ),
                    "the previous day was taken (midnight crossing)",
                )
                inj -= timedelta(days=1)
                inj_src += " (midnight crossing: previous day)"
    if inj is not None:
        _check_not_after(
            inj,
            scan_start,
            inj_src or "injection",
            "injection is after",
            "check the header times, or supply --injection-datetime",
            source,
        )
    return inj, inj_src


def _dt_precision_s(dt_s: str) -> float | None:
    """Unit (s) of the time of day in a DICOM DT: 3600, 60 or 1; None for a date only."""
    m = re.fullmatch(r"\d{8}(\d*)(?:\.\d*)?(?:[+-]\d{4})?", dt_s.strip())
    digits = len(m.group(1)) if m else 6
    return {0: None, 2: 3600.0, 4: 60.0}.get(digits, 1.0)


def _tm_precision_s(tm_s: str) -> float:
    """Unit (s) of a DICOM TM: 3600 (HH), 60 (HHMM) or 1 (HHMMSS)."""
    m = re.fullmatch(r"(\d{2})(\d{2})?(\d{2})?(?:\.\d*)?", tm_s.strip())
    if m is None or m.group(3) is not None:
        return 1.0
    return 60.0 if m.group(2) is not None else 3600.0


def _disagree(dt_s: str, dt_unit_s: float, tm_s: str) -> bool:
    """True when Start DateTime and Start Time differ by one unit of the coarser precision.

    Compared as wall-clock times of day (the TM has no date), across midnight.
    """
    t_dt = parse_dt(dt_s).replace(tzinfo=None).time()
    t_tm = parse_tm(tm_s)

    def seconds(t: time) -> float:
        return t.hour * 3600 + t.minute * 60 + t.second + t.microsecond * 1e-6

    diff = abs(seconds(t_dt) - seconds(t_tm))
    diff = min(diff, 86400.0 - diff)
    return diff >= max(dt_unit_s, _tm_precision_s(tm_s))


def _header_total_dose(
    ds: Dataset, item: Dataset, assumptions: Assumptions, source: str | None
) -> float | None:
    """Radionuclide Total Dose (0018,1074) in MBq, by SOP Class."""
    dose_s = _get(item, "RadionuclideTotalDose")
    if dose_s is None:
        return None
    sop = str(ds.get("SOPClassUID", ""))
    scale = _TOTAL_DOSE_UNIT_TO_MBQ.get(sop)
    if scale is None:
        assumptions.allow(
            MissingFieldError(
                tag_name("RadionuclideTotalDose"),
                f"unit undefined for SOP Class {sop} (Bq in PET, MBq in NM/Enhanced PET)",
                dose_s,
                "supply the administered activity (CLI --activity-mbq)",
                source,
            ),
            "administered activity left unknown",
        )
        return None
    try:
        dose_mbq = float(dose_s) * scale
    except ValueError:
        dose_mbq = math.nan
    if not (math.isfinite(dose_mbq) and dose_mbq > 0):
        raise MissingFieldError(
            tag_name("RadionuclideTotalDose"),
            "must be positive",
            dose_s,
            "supply the administered activity (CLI --activity-mbq)",
            source,
        )
    return dose_mbq


def _note_unusable(assumptions: Assumptions, exc: Exception, argument: str) -> None:
    assumptions.note(f"header value unusable ({exc}); the {argument} argument is used")


def _unless_overridden(
    read: Callable[[Assumptions], _T],
    assumptions: Assumptions,
    argument: str,
    unusable: _T,
) -> _T:
    """``read`` a header value that an argument overrides.

    The header is read strictly; its notes are kept, and a header value that
    cannot be used is recorded as a note (instead of raising) since the
    argument takes its place.
    """
    trial = Assumptions(Strictness.STRICT)
    try:
        out = read(trial)
    except (TimingError, MissingFieldError) as exc:
        _note_unusable(assumptions, exc, argument)
        return unusable
    assumptions.extend(trial.records)
    return out


def _checked_activity(value: object) -> float:
    ok = (
        isinstance(value, numbers.Real)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value > 0
    )
    if not ok:
        raise TimingError(
            "administered_activity_mbq",
            "must be a positive finite activity",
            value,
            "give the administered activity in MBq (CLI --activity-mbq)",
        )
    return float(value)  # type: ignore[arg-type]


def radiopharmaceutical_info(
    ds: Dataset,
    scan_start: datetime | None,
    assumptions: Assumptions,
    *,
    require_injection: bool = True,
    source: str | None = None,
    injection_override: datetime | None = None,
    activity_override_mbq: float | None = None,
) -> RadiopharmaceuticalInfo:
    """Read the Radiopharmaceutical Information Sequence (0054,0016).

    Parameters
    ----------
    ds : Dataset
    scan_start : datetime, optional
        Acquisition start, for the midnight rule and the sign check.
    assumptions : Assumptions
        Strictness policy; a missing injection time is refused when strict.
    require_injection : bool
        When False a missing injection time is not an error.
    source : str, optional
        Description of the series for messages.
    injection_override : datetime, optional
        An injection time supplied by the caller (local time, as in the
        header); it must not be after ``scan_start``. It is returned as
        ``injection`` (source :data:`INJECTION_ARGUMENT`), and a header
        injection time that cannot be used (malformed, Start DateTime and Start
        Time disagreeing, no date, after the scan) is recorded as a note
        instead of raising; ``header_injection`` is then None.
    activity_override_mbq : float, optional
        An administered activity supplied by the caller (positive, MBq),
        returned as ``total_dose_mbq``; an unusable Radionuclide Total Dose
        (unit undefined for the SOP Class, not positive) is then recorded as a
        note and ``header_total_dose_mbq`` is None.
    """
    seq = ds.get("RadiopharmaceuticalInformationSequence")
    item = seq[0] if seq else Dataset()
    if seq and len(seq) > 1:
        assumptions.note(
            f"{tag_name('RadiopharmaceuticalInformationSequence')}: {len(seq)} items; "
            "the first is used"
        )
    if injection_override is not None:
        if not isinstance(injection_override, datetime):
            raise TimingError(
                "injection",
                "must be a datetime",
                injection_override,
                "pass a datetime.datetime (local time, as in the DICOM header)",
            )
        _check_not_after(
            injection_override,
            scan_start,
            "injection",
            "is after",
            "check the injection datetime (local time, as in the DICOM header; "
            "CLI --injection-datetime)",
            source,
        )
        hdr_inj, hdr_src = _unless_overridden(
            lambda a: _header_injection(ds, item, scan_start, a, source),
            assumptions,
            "injection",
            (None, ""),
        )
        inj, inj_src = injection_override, INJECTION_ARGUMENT
    else:
        hdr_inj, hdr_src = _header_injection(ds, item, scan_start, assumptions, source)
        inj, inj_src = hdr_inj, hdr_src
        if inj is None and require_injection:
            assumptions.allow(
                TimingError(
                    tag_name("RadiopharmaceuticalStartDateTime"),
                    "injection time absent (neither Start DateTime nor Start Time)",
                    None,
                    "supply it with --injection-datetime (Python: injection=datetime(...))",
                    source,
                ),
                "injection time left unknown; no dose or SUV can be computed from this image",
            )

    if activity_override_mbq is not None:
        dose_mbq = _checked_activity(activity_override_mbq)
        hdr_dose = _unless_overridden(
            lambda a: _header_total_dose(ds, item, a, source),
            assumptions,
            "administered_activity_mbq",
            None,
        )
    else:
        hdr_dose = dose_mbq = _header_total_dose(ds, item, assumptions, source)
    hl_s = _get(item, "RadionuclideHalfLife")
    half_life_h = float(hl_s) / 3600.0 if hl_s is not None else None
    rp = _get(item, "Radiopharmaceutical")
    return RadiopharmaceuticalInfo(
        injection=inj,
        injection_source=inj_src,
        total_dose_mbq=dose_mbq,
        half_life_h=half_life_h,
        nuclide=nuclide_from_code(item),
        radiopharmaceutical=rp,
        header_injection=hdr_inj,
        header_injection_source=hdr_src,
        header_total_dose_mbq=hdr_dose,
    )


@dataclass(frozen=True)
class Administration:
    """The administration a DICOM reader records: injection, activity, nuclide, tracer.

    Attributes
    ----------
    injection : datetime or None
        Naive local time, from the ``injection`` argument or the header.
    injection_source : str or None
        :data:`INJECTION_ARGUMENT`, or the header attribute(s) (with the
        midnight rule when applied); None when unknown.
    header_injection : datetime or None
        The header's usable injection time (naive local), also when the
        argument overrides it: a scanner decay-corrects to it (ADMIN).
    activity_mbq : float or None
        Administered activity, MBq.
    nuclide : str or None
        Canonical nuclide name.
    tracer : str or None
        Radiopharmaceutical (0018,0031) text.
    """

    injection: datetime | None
    injection_source: str | None
    header_injection: datetime | None
    activity_mbq: float | None
    nuclide: str | None
    tracer: str | None


def _shown(value: str | None) -> str:
    return "absent or unusable" if value is None else value


def administration(
    ds: Dataset,
    scan_start: datetime | None,
    assumptions: Assumptions,
    steps: list[str],
    *,
    injection: datetime | None = None,
    administered_activity_mbq: float | None = None,
    nuclide: str | None = None,
    source: str | None = None,
    emission: bool = True,
) -> Administration:
    """Injection, administered activity, nuclide and tracer: arguments or header.

    The one implementation for every DICOM reader; the path taken for each
    value is appended to ``steps`` and every override of a differing header
    value is noted in ``assumptions``.

    * Injection: the ``injection`` argument (an aware one is made local time
      with Timezone Offset From UTC (0008,0201), or its offset dropped, which
      needs lenient mode) wins over the header, and then an unusable header
      time is only noted; it must not be after ``scan_start``. Otherwise the
      header (Radiopharmaceutical Start DateTime, else, lenient only, Start
      Time with the series date and the midnight rule, both recorded); an aware
      header time is made local
      the same way (dropping the offset is noted). A missing injection time
      is refused when strict (``emission`` only).
    * Activity: ``administered_activity_mbq`` wins over Radionuclide Total
      Dose (Bq in PET Image Storage, MBq in NM and Enhanced PET).
    * Nuclide: the ``nuclide`` argument, else the Radionuclide Code Sequence.
      For an emission image (PT, NM) an unknown nuclide is refused when strict
      and recorded when lenient; CT and MR (``emission=False``) never need one.
    * The header half-life is compared with ICRP-107 (:func:`check_half_life`).
    """
    from theranet.nuclides import parse_nuclide

    arg_inj = naive_local(
        injection, ds, "injection", assumptions, ask=True, steps=steps, source=source
    )
    info = radiopharmaceutical_info(
        ds,
        scan_start,
        assumptions,
        require_injection=emission,
        source=source,
        injection_override=arg_inj,
        activity_override_mbq=administered_activity_mbq,
    )
    hdr_inj = naive_local(
        info.header_injection,
        ds,
        tag_name("RadiopharmaceuticalStartDateTime"),
        assumptions,
        steps=steps,
        source=source,
    )
    if hdr_inj is not None and hdr_inj != info.header_injection:
        # made local with the header's UTC offset: check the local time again
        try:
            _check_not_after(
                hdr_inj,
                scan_start,
                info.header_injection_source or "injection",
                "injection is after",
                "check the header times, or supply --injection-datetime",
                source,
            )
        except TimingError as exc:
            if arg_inj is None:
                raise
            _note_unusable(assumptions, exc, "injection")
            hdr_inj = None

    # -- injection
    if arg_inj is not None:
        inj, inj_src = arg_inj, INJECTION_ARGUMENT
        steps.append(
            f"injection {inj.isoformat()} from the injection argument "
            f"(header: {_shown(hdr_inj.isoformat() if hdr_inj else None)})"
        )
        if hdr_inj is not None and hdr_inj != inj:
            assumptions.note(
                f"injection {inj.isoformat()} from the argument overrides the header "
                f"{hdr_inj.isoformat()} ({info.header_injection_source})"
            )
    else:
        inj, inj_src = hdr_inj, (info.injection_source or None)
        if inj is not None:
            steps.append(f"injection {inj.isoformat()} from {inj_src}")
        elif emission:
            steps.append(
                f"injection time unknown ({tag_name('RadiopharmaceuticalStartDateTime')} "
                f"and {tag_name('RadiopharmaceuticalStartTime')} absent or unusable)"
            )

    # -- administered activity
    dose_tag = tag_name("RadionuclideTotalDose")
    hdr_dose = info.header_total_dose_mbq
    activity = info.total_dose_mbq
    if administered_activity_mbq is not None and activity is not None:
        steps.append(
            f"administered activity {activity:g} MBq from the administered_activity_mbq "
            f"argument (header: {_shown(None if hdr_dose is None else f'{hdr_dose:g} MBq')})"
        )
        if hdr_dose is not None and hdr_dose != activity:
            assumptions.note(
                f"administered activity {activity:g} MBq from the argument overrides the "
                f"header {dose_tag} {hdr_dose:g} MBq"
            )
    elif activity is not None:
        in_bq = _TOTAL_DOSE_UNIT_TO_MBQ.get(str(ds.get("SOPClassUID", ""))) == 1e-6
        steps.append(
            f"administered activity {activity:g} MBq from {dose_tag} "
            f"(in {'Bq' if in_bq else 'MBq'} for this SOP Class)"
        )
    elif emission:
        steps.append(f"administered activity unknown ({dose_tag} absent or unusable)")

    # -- nuclide
    code_tag = tag_name("RadionuclideCodeSequence")
    nuc: str | None
    if nuclide is not None:
        nuc = parse_nuclide(nuclide, field="nuclide")
        steps.append(
            f"nuclide {nuc} from the nuclide argument "
            f"(header code: {info.nuclide or 'absent or not recognised'})"
        )
        if info.nuclide is not None and info.nuclide != nuc:
            assumptions.note(
                f"nuclide {nuc} from the argument overrides the header {info.nuclide} ({code_tag})"
            )
    elif info.nuclide is not None:
        nuc = parse_nuclide(info.nuclide, field=code_tag)
        steps.append(f"nuclide {nuc} from {code_tag}")
    else:
        nuc = None
        if emission:
            assumptions.allow(
                MissingFieldError(
                    code_tag,
                    "absent or not recognised, so the nuclide is unknown",
                    None,
                    "supply the nuclide (CLI --nuclide, Python nuclide='Lu-177')",
                    source,
                ),
                "nuclide left unknown; decay correction will be refused",
            )
            steps.append(f"nuclide unknown ({code_tag} absent or not recognised)")
    check_half_life(info.half_life_h, nuc, assumptions)
    _note_long_interval(inj, scan_start, nuc, assumptions)
    return Administration(
        injection=inj,
        injection_source=inj_src,
        header_injection=hdr_inj,
        activity_mbq=activity,
        nuclide=nuc,
        tracer=info.radiopharmaceutical,
    )


def _note_long_interval(
    injection: datetime | None,
    scan_start: datetime | None,
    nuclide: str | None,
    assumptions: Assumptions,
) -> None:
    """Record (and log) an implausibly long injection-to-scan interval (clinical.md §4.2).

    The example of §4.2, more than :data:`LONG_INTERVAL_F18_H` h for 18F, is
    applied to every nuclide in half-lives (12 h / 109.77 min = 6.56
    half-lives). A flag only: nothing is refused.
    """
    if injection is None or scan_start is None or nuclide is None:
        return
    from theranet.nuclides import Nuclide

    s_cmp = scan_start.replace(tzinfo=None) if injection.tzinfo is None else scan_start
    if (injection.tzinfo is None) != (s_cmp.tzinfo is None):
        return
    interval_h = (s_cmp - injection).total_seconds() / 3600.0
    half_lives = interval_h / Nuclide(nuclide).half_life_h
    limit = LONG_INTERVAL_F18_H / Nuclide("F-18").half_life_h
    if half_lives > limit:
        msg = (
            f"injection-to-scan interval {interval_h:.4g} h is {half_lives:.3g} half-lives of "
            f"{nuclide}, implausibly long (more than {limit:.3g}, i.e. "
            f"{LONG_INTERVAL_F18_H:g} h for F-18): check the injection date and time"
        )
        logger.warning(msg)
        assumptions.note(msg)


def _float_attr(ds: Dataset, keyword: str) -> float | None:
    """A numeric attribute; None when absent or empty, NaN when not a number."""
    v = _get(ds, keyword)
    if v is None:
        return None
    try:
        return float(v.strip())
    except ValueError:
        return math.nan


def patient_info(
    ds: Dataset,
    assumptions: Assumptions,
    steps: list[str],
    source: str | None = None,
    *,
    weight_kg: float | None = None,
) -> PatientInfo:
    """The patient's body data (no identifiers), for every DICOM reader.

    * Weight: Patient's Weight (0010,1030) in kg, used when ``0 < w <= 700``;
      0 is the usual "unknown" and left unknown silently, any other value is
      noted and left unknown. ``weight_kg`` (a positive finite number)
      overrides it. The weight and where it came from are recorded in ``steps``.
    * Height: Patient's Size (0010,1020) is in metres; ``0 < size <= 3`` gives
      the height in cm, 0 or absent leaves it unknown, anything else (a size
      in cm, say) is a :class:`UnitError` when strict and unknown (recorded)
      when lenient.
    * Sex: Patient's Sex (0010,0040) ``M`` or ``F``, else unknown.
    """
    w_tag = tag_name("PatientWeight")
    hdr_w = _float_attr(ds, "PatientWeight")
    if hdr_w is not None and not (math.isfinite(hdr_w) and 0 < hdr_w <= _MAX_WEIGHT_KG):
        if hdr_w != 0:  # 0 is the common "unknown"
            assumptions.note(f"{w_tag}: implausible {hdr_w!r} kg ignored")
        hdr_w = None
    if weight_kg is not None:
        ok = (
            isinstance(weight_kg, numbers.Real)
            and not isinstance(weight_kg, bool)
            and math.isfinite(weight_kg)
            and weight_kg > 0
        )
        if not ok:
            raise MissingFieldError(
                "patient_weight_kg",
                "must be a positive finite weight in kg",
                weight_kg,
                "give the patient's weight in kg",
            )
        weight: float | None = float(weight_kg)
        steps.append(
            f"patient weight {weight:g} kg from the patient_weight_kg argument "
            f"(header: {'absent' if hdr_w is None else f'{hdr_w:g} kg'})"
        )
        if hdr_w is not None and hdr_w != weight:
            assumptions.note(
                f"patient weight {weight:g} kg from the argument overrides the header "
                f"{w_tag} {hdr_w:g} kg"
            )
    else:
        weight = hdr_w
        steps.append(
            f"patient weight {weight:g} kg from {w_tag}"
            if weight is not None
            else f"patient weight unknown ({w_tag} absent or unusable)"
        )
    size_m = _float_attr(ds, "PatientSize")
    height_cm = None
    if size_m is not None and size_m != 0:
        if math.isfinite(size_m) and 0 < size_m <= _MAX_SIZE_M:
            height_cm = size_m * 100.0
        else:
            assumptions.allow(
                UnitError(
                    tag_name("PatientSize"),
                    f"not a height in m (0 < size <= {_MAX_SIZE_M:g})",
                    size_m,
                    "correct the header (Patient's Size is in metres), or read with "
                    "strictness='lenient' to leave the height unknown",
                    source,
                ),
                "height left unknown",
            )
    sex = _get(ds, "PatientSex")
    sex = sex.strip().upper() if sex is not None else None
    return PatientInfo(
        weight_kg=weight, height_cm=height_cm, sex=sex if sex in ("M", "F") else None
    )


def check_half_life(
    header_half_life_h: float | None, nuclide: str | None, assumptions: Assumptions
) -> None:
    """Warn (record) when the header half-life differs from ICRP-107 by more than 1 %.

    The table value is always the one used (clinical.md §1.1).
    """
    if header_half_life_h is None or nuclide is None:
        return
    from theranet.nuclides import Nuclide

    table = Nuclide(nuclide).half_life_h
    if abs(header_half_life_h - table) > 0.01 * table:
        msg = (
            f"{tag_name('RadionuclideHalfLife')}: header {header_half_life_h:.5g} h differs "
            f"from ICRP-107 {table:.5g} h for {nuclide} by more than 1 %; "
            "the ICRP-107 value is used"
        )
        logger.warning(msg)
        assumptions.note(msg)


def same_value(values: list, field: str, source: str | None = None) -> object:
    """The single value shared by all files of a series, else InconsistentSeriesError."""
    uniq = {v for v in values}
    if len(uniq) > 1:
        raise InconsistentSeriesError(
            field,
            f"differs between files of one series ({len(uniq)} values)",
            sorted(map(str, uniq))[:4],
            "separate the series into their own folders",
            source,
        )
    return values[0] if values else None
