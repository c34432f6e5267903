"""Shared DICOM reading helpers: safe file reading, date/time parsing, the
Radiopharmaceutical Information Sequence and radionuclide codes.

Conventions (see the DICOM standard PS3.3):

* Radionuclide Total Dose (0018,1074) is in **Bq** in the classic PET Image IOD
  and in **MBq** in the NM Image IOD and the Enhanced PET IOD; we branch on the
  SOP Class, never on the magnitude.
* Radiopharmaceutical Start DateTime (0018,1078) is preferred; Start Time
  (0018,1072) has no date and is combined with the Series (or Study/Acquisition)
  Date, taking the previous day when that would place the injection after the
  scan (midnight crossing), and recording that it did.
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from theranet.errors import (
    Assumptions,
    DicomReadError,
    InconsistentSeriesError,
    MissingFieldError,
    TimingError,
)

logger = logging.getLogger(__name__)

__all__ = [
    "ENHANCED_PET_SOP_CLASS",
    "NM_SOP_CLASS",
    "PET_SOP_CLASS",
    "RadiopharmaceuticalInfo",
    "check_half_life",
    "dicom_datetime",
    "nuclide_from_code",
    "parse_da",
    "parse_dt",
    "parse_tm",
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


@dataclass(frozen=True)
class RadiopharmaceuticalInfo:
    """What a DICOM header says about the administration.

    Attributes
    ----------
    injection : datetime or None
    injection_source : str
        The attribute(s) the injection time came from, and any midnight rule applied.
    total_dose_mbq : float or None
        Radionuclide Total Dose converted to MBq by SOP Class.
    half_life_h : float or None
        Radionuclide Half Life (0018,1075) converted to h.
    nuclide : str or None
        Canonical nuclide from the Radionuclide Code Sequence.
    radiopharmaceutical : str or None
        Radiopharmaceutical (0018,0031) text.
    """

    injection: datetime | None
    injection_source: str
    total_dose_mbq: float | None
    half_life_h: float | None
    nuclide: str | None
    radiopharmaceutical: str | None


def radiopharmaceutical_info(
    ds: Dataset,
    scan_start: datetime | None,
    assumptions: Assumptions,
    *,
    require_injection: bool = True,
    source: str | None = None,
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
        When False (the caller supplies the injection time) a missing one is not
        an error.
    source : str, optional
        Description of the series for messages.
    """
    seq = ds.get("RadiopharmaceuticalInformationSequence")
    item = seq[0] if seq else Dataset()
    if seq and len(seq) > 1:
        assumptions.note(
            f"{tag_name('RadiopharmaceuticalInformationSequence')}: {len(seq)} items; "
            "the first is used"
        )
    inj: datetime | None = None
    inj_src = ""
    dt_s = _get(item, "RadiopharmaceuticalStartDateTime")
    tm_s = _get(item, "RadiopharmaceuticalStartTime")
    if dt_s is not None:
        inj = parse_dt(dt_s)
        inj_src = tag_name("RadiopharmaceuticalStartDateTime")
        if tm_s is not None and len(dt_s) >= 12:
            tm = parse_tm(tm_s)
            naive = inj.replace(tzinfo=None)
            if (naive.hour, naive.minute) != (tm.hour, tm.minute):
                raise TimingError(
                    tag_name("RadiopharmaceuticalStartTime"),
                    f"disagrees with RadiopharmaceuticalStartDateTime {dt_s}",
                    tm_s,
                    "correct the header, or supply the injection datetime explicitly "
                    "(CLI --injection-datetime)",
                    source,
                )
    elif tm_s is not None:
        day_s = None
        for kw in ("SeriesDate", "StudyDate", "AcquisitionDate"):
            day_s = _get(ds, kw)
            if day_s is not None:
                inj_src = f"{tag_name('RadiopharmaceuticalStartTime')} + {tag_name(kw)}"
                break
        if day_s is None:
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
            inj = datetime.combine(parse_da(day_s), parse_tm(tm_s))
            if scan_start is not None and inj > scan_start.replace(tzinfo=None):
                inj -= timedelta(days=1)
                inj_src += " (midnight crossing: previous day)"
                assumptions.note(
                    "injection time later than the scan on the series date; "
                    "the previous day was taken (midnight crossing)"
                )
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
    if inj is not None and scan_start is not None:
        s0 = scan_start
        if (inj.tzinfo is None) != (s0.tzinfo is None):
            inj_cmp, s_cmp = inj.replace(tzinfo=None), s0.replace(tzinfo=None)
        else:
            inj_cmp, s_cmp = inj, s0
        if inj_cmp > s_cmp:
            raise TimingError(
                inj_src or "injection",
                f"injection is after the acquisition start {s_cmp.isoformat()}",
                inj_cmp.isoformat(),
                "check the header times, or supply --injection-datetime",
                source,
            )

    dose_mbq = None
    dose_s = _get(item, "RadionuclideTotalDose")
    if dose_s is not None:
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
        else:
            dose_mbq = float(dose_s) * scale
            if not (math.isfinite(dose_mbq) and dose_mbq > 0):
                raise MissingFieldError(
                    tag_name("RadionuclideTotalDose"),
                    "must be positive",
                    dose_s,
                    "supply the administered activity (CLI --activity-mbq)",
                    source,
                )
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
