"""NM Image Storage objects: reconstructed SPECT volumes and planar views.

:func:`read_nm_spect` reads one multi-frame reconstructed SPECT object (Image Type
value 3 ``RECON TOMO`` or ``RECON GATED TOMO``) into an
:class:`~theranet.image.Image`; :func:`read_nm_planar` reads one planar
``WHOLE BODY``/``STATIC`` object with an anterior and a posterior view into a
:class:`PlanarStudy` (counts).

Geometry (PS3.3 C.8.4.15, C.8.4.8)
    Image Position/Orientation (Patient) come from the Detector Information
    Sequence (0054,0022) item (top-level attributes are a recorded fallback).
    Frames are put in slice order by the Slice Vector (0054,0080): array index
    ``a0 = SliceVector - 1``. Slice ``k`` (1-based) lies at
    ``IPP + (k - 1) * SpacingBetweenSlices * n`` with ``n = row cosines x column
    cosines``; a negative Spacing Between Slices stacks the slices against the
    normal. The affine columns are ``n * |SpacingBetweenSlices|``,
    ``IOP[3:6] * PixelSpacing[0]`` and ``IOP[0:3] * PixelSpacing[1]``: like the
    series reader, the volume is returned with its slices ascending along ``n``
    (frames stored against the normal are reversed, and that is recorded).

Values (the path taken is recorded in the provenance as ``values: ...``)
    1. Real World Value Mapping Sequence (0040,9096) item with Measurement Units
       ``Bq/ml``/``Bq/mL`` (also ``kBq/ml``, ``MBq/ml``) -> activity concentration;
       an item in ``{counts}``/``cnts`` -> counts. The stored values are mapped
       with ``slope * SV + intercept`` (Rescale Slope is then not used). A
       mapping whose only items are in units not understood (``{SUVbw}g/ml``,
       ``mBq/mL``...) is refused when strict, ignored (recorded) when lenient.
    2. Rescale Slope/Intercept with Units (0054,1001) ``BQML``, or with the GE
       private (0057,1003) ``BQML`` -> activity concentration (without Rescale
       Slope: refused when strict, slope 1 recorded when lenient); Units
       ``CNTS`` -> counts.
    3. Otherwise counts (the stored values, times Rescale Slope plus Intercept
       when present). With ``calibration_cps_per_mbq`` the counts are turned
       into MBq/mL: ``C = N / (T * CF * V)``, ``T`` the total acquisition duration
       (Rotation Information Sequence (0054,0052): Actual Frame Duration x Number
       of Frames in Rotation, summed over rotations), ``V`` the voxel volume.
       The calibration factor must be defined with the same convention
       (reconstructed counts per second of scan, per MBq). Calibrating values
       with no unit information at all (no mapping, no Units) is refused when
       strict. The top-level Actual Frame Duration (time per projection) as the
       whole acquisition, without a usable Rotation Information Sequence, and a
       total outside :data:`SPECT_DURATION_PLAUSIBLE_S` are refused when strict
       and recorded when lenient.

Decay correction
    NM has no standard Decay Correction attribute; when Decay Correction
    (0054,1102) is present it is used as in PET (START, ADMIN, NONE). When
    Corrected Image (0028,0051) lists ``DECY`` without it, the reference is
    unknown: strict reading refuses, lenient reading assumes ``START``. As in
    the series reader, ADMIN values read with an ``injection`` argument that
    differs from the header's injection time keep the header time as their
    reference (``DecayCorrection.REFERENCE``): the scanner corrected to it.

    Corrected Image (0028,0051), when present, becomes ``Image.corrections``,
    so :meth:`~theranet.image.Image.to_suv` refuses values without ``ATTN``
    (and without ``DECY`` when START or ADMIN), as for PET (clinical.md §4.1).

Administration and patient
    Injection, administered activity, nuclide, tracer and the patient's body
    data are read by :func:`theranet.io._dicom_common.administration` and
    :func:`~theranet.io._dicom_common.patient_info`, the code the series reader
    uses, so both readers take the same paths and record them in the same words.
    Radionuclide Total Dose (0018,1074) is in MBq in NM Image Storage (in Bq in
    PET Image Storage): the SOP Class decides, never the magnitude.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.tag import BaseTag, Tag

from theranet.errors import (
    Assumptions,
    CalibrationError,
    DicomReadError,
    GeometryError,
    ImageDataError,
    MissingFieldError,
    Strictness,
    TimingError,
    UnitError,
)
from theranet.image import DecayCorrection, Image, PatientInfo, Provenance, Quantity, Timing
from theranet.io._dicom_common import (
    NM_SOP_CLASS,
    administration,
    dicom_datetime,
    naive_local,
    parse_dt,
    patient_info,
    pixel_array,
    read_dataset,
    tag_name,
)

__all__ = ["EnergyWindow", "PlanarStudy", "read_nm_planar", "read_nm_spect"]

_RECON_TYPES = ("RECON TOMO", "RECON GATED TOMO")
_PLANAR_TYPES = ("WHOLE BODY", "STATIC")

# Measurement Units Code Sequence values (UCUM is case-sensitive: "mBq" is milli).
_RWVM_CONCENTRATION_TO_MBQ_ML = {
    "Bq/ml": 1e-6,
    "Bq/mL": 1e-6,
    "kBq/ml": 1e-3,
    "kBq/mL": 1e-3,
    "MBq/ml": 1.0,
    "MBq/mL": 1.0,
}
_RWVM_COUNTS = {"{counts}", "{count}", "{cnts}", "cnts", "counts", "{counts}/voxel"}

#: Plausible total duration of a SPECT acquisition, s (1 min to 2 h). These are
#: plausibility bounds, not physics: a duration outside them is most likely a unit
#: error, such as a rotation item's Actual Frame Duration written in s instead of ms,
#: and is refused when strict.
SPECT_DURATION_PLAUSIBLE_S = (60.0, 7200.0)

_GE_UNITS_TAG = Tag(0x0057, 0x1003)
_GE_CREATOR_TAG = Tag(0x0057, 0x0010)

_VIEW_CODES = {
    ("SCT", "399321004"): "ANTERIOR",
    ("SCT", "399001007"): "POSTERIOR",
}
_VIEW_MEANINGS = {
    "anterior": "ANTERIOR",
    "anterior projection": "ANTERIOR",
    "ant": "ANTERIOR",
    "posterior": "POSTERIOR",
    "posterior projection": "POSTERIOR",
    "post": "POSTERIOR",
}


# --------------------------------------------------------------------- helpers


def _str(ds: Dataset, keyword: str) -> str | None:
    v = ds.get(keyword)
    if v is None or str(v).strip() == "":
        return None
    return str(v).strip()


def _multi(ds: Dataset, keyword: str) -> list[str]:
    v = ds.get(keyword)
    if v is None:
        return []
    if isinstance(v, str | bytes):
        v = [v]
    return [str(x).strip().upper() for x in v]


def _listed(v: object) -> list | None:
    """The values of a possibly multi-valued attribute as a list; None when empty."""
    if v is None:
        return None
    if isinstance(v, str | bytes):
        return [v] if v.strip() else None
    try:
        out = list(v)  # type: ignore[call-overload]
    except TypeError:
        out = [v]
    return out or None


def _floats(value: Iterable, field_name: str, n: int, source: str) -> np.ndarray:
    try:
        out = np.array([float(x) for x in value], dtype=np.float64)
    except (TypeError, ValueError):
        raise GeometryError(field_name, "is not numeric", value, None, source) from None
    if out.shape != (n,) or not np.all(np.isfinite(out)):
        raise GeometryError(field_name, f"must hold {n} finite numbers", list(value), None, source)
    return out


def _check_calibration(cf: float | None) -> None:
    if cf is None:
        return
    ok = isinstance(cf, numbers.Real) and not isinstance(cf, bool) and math.isfinite(cf) and cf > 0
    if not ok:
        raise CalibrationError(
            "calibration_cps_per_mbq",
            "must be a positive finite sensitivity",
            cf,
            "give the measured SPECT system sensitivity in cps/MBq (CLI --calibration-cps-per-mbq)",
        )


def _open_nm(path: Path, source: str) -> tuple[Dataset, str]:
    ds = read_dataset(path)
    sop = str(ds.get("SOPClassUID", ""))
    if sop != NM_SOP_CLASS:
        raise DicomReadError(
            tag_name("SOPClassUID"),
            f"is not NM Image Storage ({NM_SOP_CLASS})",
            sop,
            "read PET, CT and MR series with theranet.io.read_series",
            source,
        )
    if not any(k in ds for k in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")):
        raise DicomReadError(
            "PixelData (7FE0,0010)",
            "absent",
            None,
            "the file is truncated or holds no image; re-export it",
            source,
        )
    itype = _multi(ds, "ImageType")
    if len(itype) < 3:
        raise MissingFieldError(
            tag_name("ImageType"),
            "needs at least 3 values (value 3 says RECON TOMO, WHOLE BODY, STATIC...)",
            "\\".join(itype),
            None,
            source,
        )
    return ds, itype[2]


def _frame_pointers(ds: Dataset) -> list[BaseTag]:
    fip = ds.get("FrameIncrementPointer")
    if fip is None:
        return []
    if isinstance(fip, BaseTag | int):
        return [Tag(fip)]
    return [Tag(t) for t in fip]


def _vector(ds: Dataset, tag: BaseTag, n_frames: int, source: str) -> list[int]:
    name = tag_name(_keyword(tag))
    if tag not in ds:
        raise MissingFieldError(
            name,
            "named by Frame Increment Pointer (0028,0009) but absent",
            None,
            "re-export the object",
            source,
        )
    v = ds[tag].value
    vals = [int(x) for x in v] if isinstance(v, MultiValue | list | tuple) else [int(v)]
    if len(vals) != n_frames:
        raise DicomReadError(
            name,
            f"has {len(vals)} values for {n_frames} frames",
            None,
            "re-export the object",
            source,
        )
    return vals


def _keyword(tag: BaseTag) -> str:
    from pydicom.datadict import keyword_for_tag

    return keyword_for_tag(tag) or str(tag)


def _pixels(ds: Dataset, source: str) -> np.ndarray:
    arr = np.asarray(pixel_array(ds, source))
    n = int(ds.get("NumberOfFrames", 1) or 1)
    rows, cols = int(ds.Rows), int(ds.Columns)
    if arr.size != n * rows * cols:
        raise DicomReadError(
            "PixelData (7FE0,0010)",
            f"holds {arr.size} values, expected {n} x {rows} x {cols}",
            None,
            "the file is truncated or corrupt; re-export it",
            source,
        )
    return arr.reshape(n, rows, cols)


def _private_text(ds: Dataset, tag: BaseTag) -> str | None:
    if tag not in ds:
        return None
    v = ds[tag].value
    if isinstance(v, bytes):
        v = v.decode("ascii", errors="replace")
    s = str(v).strip("\0 ").strip()
    return s or None


@dataclass(frozen=True)
class _Values:
    data: np.ndarray  # float64, real-world values in canonical unit
    quantity: Quantity
    step: str
    unit_stated: bool = True  # False: no RWVM, Units or GE private units at all


def _rescale(
    ds: Dataset, assumptions: Assumptions, source: str, *, required: str | None = None
) -> tuple[float, float]:
    """Rescale Slope/Intercept; ``required`` names the units that need the slope."""
    s, i = ds.get("RescaleSlope"), ds.get("RescaleIntercept")
    if (s is None or str(s).strip() == "") and required is not None:
        assumptions.allow(
            MissingFieldError(
                tag_name("RescaleSlope"),
                f"absent while the voxel units are {required}: the stored values cannot be "
                "scaled to Bq/mL",
                None,
                "re-export the reconstruction with its Rescale Slope, or read with "
                "strictness='lenient' to assume slope 1",
                source,
            ),
            "Rescale Slope 1 assumed",
        )
        s = None
    slope = float(s) if s is not None else 1.0
    intercept = float(i) if i is not None else 0.0
    return slope, intercept


def _map_values(ds: Dataset, stored: np.ndarray, assumptions: Assumptions, source: str) -> _Values:
    """The values cascade: RWVM with units -> Units/private BQML -> counts."""
    sv = stored.astype(np.float64)
    rwvm = ds.get("RealWorldValueMappingSequence") or []
    conc_items, count_items, others = [], [], []
    for item in rwvm:
        units_seq = item.get("MeasurementUnitsCodeSequence")
        unit = str(units_seq[0].get("CodeValue", "")).strip() if units_seq else ""
        if unit in _RWVM_CONCENTRATION_TO_MBQ_ML:
            conc_items.append((item, unit))
        elif unit.lower() in _RWVM_COUNTS:
            count_items.append((item, unit))
        else:
            others.append(unit or "(no units)")
    chosen = conc_items[:1] or count_items[:1]
    if others and not chosen:
        # the preferred mapping states a unit we cannot use: do not fall back silently
        assumptions.allow(
            UnitError(
                f"{tag_name('RealWorldValueMappingSequence')} "
                f"{tag_name('MeasurementUnitsCodeSequence')}",
                "unit not understood (Bq/ml, kBq/ml, MBq/ml or {counts} expected), so the "
                "meaning of the voxel values is unknown",
                others,
                "re-export the reconstruction in counts or Bq/mL, or read with "
                "strictness='lenient' to ignore the mapping and use Units (0054,1001) and "
                "Rescale Slope/Intercept",
                source,
            ),
            f"mapping item(s) in {others} ignored; values from Units/Rescale Slope",
        )
    elif others:
        assumptions.note(
            f"{tag_name('RealWorldValueMappingSequence')}: item(s) in {others} not used"
        )
    if chosen:
        item, unit = chosen[0]
        if len(conc_items) + len(count_items) > 1:
            assumptions.note(
                f"{tag_name('RealWorldValueMappingSequence')}: "
                f"{len(conc_items) + len(count_items)} usable items; the {unit} item is used"
            )
        if "RealWorldValueSlope" not in item:
            raise UnitError(
                tag_name("RealWorldValueSlope"),
                f"absent from the {unit} mapping item (LUT-based mappings are not supported)",
                None,
                "re-export with a linear mapping, or supply counts and a calibration",
                source,
            )
        slope = float(item.RealWorldValueSlope)
        intercept = float(item.get("RealWorldValueIntercept", 0.0) or 0.0)
        if not (math.isfinite(slope) and slope > 0 and math.isfinite(intercept)):
            raise UnitError(
                tag_name("RealWorldValueSlope"),
                "must be a positive finite number",
                slope,
                None,
                source,
            )
        if "RescaleSlope" in ds:
            assumptions.note(
                f"{tag_name('RescaleSlope')} ignored: the Real World Value Mapping is used"
            )
        real = slope * sv + intercept
        if unit in _RWVM_CONCENTRATION_TO_MBQ_ML:
            return _Values(
                real * _RWVM_CONCENTRATION_TO_MBQ_ML[unit],
                Quantity.ACTIVITY_CONCENTRATION,
                f"values: RWVM {unit} (slope {slope:.9g}, intercept {intercept:.9g}) -> MBq/mL",
            )
        return _Values(
            real,
            Quantity.COUNTS,
            f"values: RWVM {unit} (slope {slope:.9g}, intercept {intercept:.9g}) -> counts",
        )

    units = _str(ds, "Units")
    ge_units = _private_text(ds, _GE_UNITS_TAG)
    if units is not None:
        u = units.upper()
        if ge_units is not None and ge_units.upper() != u:
            assumptions.note(
                f"GE private (0057,1003) {ge_units!r} ignored: {tag_name('Units')} {u} is used"
            )
        if u == "BQML":
            slope, intercept = _rescale(
                ds, assumptions, source, required=f"{tag_name('Units')} BQML"
            )
            return _Values(
                (slope * sv + intercept) * 1e-6,
                Quantity.ACTIVITY_CONCENTRATION,
                f"values: Rescale Slope/Intercept ({slope:.9g}, {intercept:.9g}) with "
                f"{tag_name('Units')} BQML -> MBq/mL",
            )
        if u == "CNTS":
            slope, intercept = _rescale(ds, assumptions, source)
            return _Values(
                slope * sv + intercept,
                Quantity.COUNTS,
                f"values: counts ({tag_name('Units')} CNTS; Rescale Slope/Intercept "
                f"{slope:.9g}, {intercept:.9g})",
            )
        raise UnitError(
            tag_name("Units"),
            "not supported for NM SPECT (BQML or CNTS only)",
            units,
            "export the reconstruction in counts or Bq/mL",
            source,
        )
    if ge_units is not None:
        creator = _private_text(ds, _GE_CREATOR_TAG)
        who = f" (creator {creator!r})" if creator else ""
        if ge_units.upper() == "BQML":
            slope, intercept = _rescale(
                ds, assumptions, source, required="GE private (0057,1003) BQML"
            )
            return _Values(
                (slope * sv + intercept) * 1e-6,
                Quantity.ACTIVITY_CONCENTRATION,
                f"values: Rescale Slope/Intercept ({slope:.9g}, {intercept:.9g}) with "
                f"GE private (0057,1003) BQML{who} -> MBq/mL",
            )
        if ge_units.upper() not in ("CNTS", "COUNTS"):
            raise UnitError(
                "GE private (0057,1003)",
                "unknown voxel units (BQML or CNTS expected)",
                ge_units,
                "export the reconstruction in counts or Bq/mL",
                source,
            )
    slope, intercept = _rescale(ds, assumptions, source)
    if ge_units is not None:
        step = (
            f"values: counts (GE private (0057,1003) {ge_units}; Rescale Slope/Intercept "
            f"{slope:.9g}, {intercept:.9g})"
        )
        return _Values(slope * sv + intercept, Quantity.COUNTS, step)
    if "RescaleSlope" in ds or "RescaleIntercept" in ds:
        step = f"values: counts (Rescale Slope/Intercept {slope:.9g}, {intercept:.9g}; no units)"
    else:
        step = "values: counts (no real-world value mapping, no units)"
    return _Values(slope * sv + intercept, Quantity.COUNTS, step, unit_stated=False)


def _acquisition_start(
    ds: Dataset, assumptions: Assumptions, source: str
) -> tuple[datetime | None, str]:
    start = dicom_datetime(ds, "AcquisitionDate", "AcquisitionTime")
    if start is not None:
        return start, f"{tag_name('AcquisitionDate')}/{tag_name('AcquisitionTime')}"
    adt = _str(ds, "AcquisitionDateTime")
    if adt is not None:
        tz_steps: list[str] = []
        start = naive_local(
            parse_dt(adt), ds, tag_name("AcquisitionDateTime"), assumptions, steps=tz_steps
        )
        return start, "; ".join([tag_name("AcquisitionDateTime"), *tz_steps])
    start = dicom_datetime(ds, "SeriesDate", "SeriesTime")
    if start is not None:
        assumptions.note(
            f"{tag_name('AcquisitionTime')} absent: acquisition start taken from "
            f"{tag_name('SeriesDate')}/{tag_name('SeriesTime')}"
        )
        return start, f"{tag_name('SeriesDate')}/{tag_name('SeriesTime')}"
    assumptions.allow(
        TimingError(
            tag_name("AcquisitionTime"),
            "absent (and no Acquisition DateTime or Series Date/Time)",
            None,
            "re-export the object with its acquisition date and time",
            source,
        ),
        "acquisition start left unknown",
    )
    return None, "unknown"


def _spect_duration_s(
    ds: Dataset, assumptions: Assumptions, source: str
) -> tuple[float | None, str]:
    """Total acquisition duration, s, and where it came from (None when unknown).

    From the Rotation Information Sequence; the top-level Actual Frame Duration
    (the time per projection in a SPECT) only by assumption (lenient). A total
    outside :data:`SPECT_DURATION_PLAUSIBLE_S` is refused when strict.
    """
    duration_s, src = _rotation_duration_s(ds, assumptions, source)
    if duration_s is None:
        return None, src
    lo, hi = SPECT_DURATION_PLAUSIBLE_S
    if not lo <= duration_s <= hi:
        assumptions.allow(
            TimingError(
                tag_name("ActualFrameDuration"),
                f"gives a total acquisition duration of {duration_s:g} s ({src}), outside the "
                f"plausible {lo:g} s to {hi:g} s of a SPECT acquisition (a duration in s "
                "instead of ms?)",
                duration_s,
                "correct the header (Actual Frame Duration is in ms), or read with "
                "strictness='lenient' to use the duration as it is",
                source,
            ),
            f"acquisition duration {duration_s:g} s used as it is",
        )
    return duration_s, src


def _rotation_duration_s(
    ds: Dataset, assumptions: Assumptions, source: str
) -> tuple[float | None, str]:
    rot = ds.get("RotationInformationSequence")
    if rot:
        total_ms = 0.0
        for k, item in enumerate(rot, 1):
            fd, nf = item.get("ActualFrameDuration"), item.get("NumberOfFramesInRotation")
            if fd is None or nf is None or str(fd).strip() == "" or str(nf).strip() == "":
                total_ms = math.nan
                assumptions.note(
                    f"{tag_name('RotationInformationSequence')} item {k} lacks "
                    "ActualFrameDuration or NumberOfFramesInRotation"
                )
                break
            total_ms += float(fd) * int(nf)
        if math.isfinite(total_ms):
            if total_ms <= 0:
                raise TimingError(
                    tag_name("ActualFrameDuration"),
                    "gives a non-positive acquisition duration",
                    total_ms,
                    "re-export the object",
                    source,
                )
            return total_ms / 1000.0, (
                f"{tag_name('RotationInformationSequence')}: {len(rot)} rotation(s), "
                "ActualFrameDuration x NumberOfFramesInRotation"
            )
    fd = ds.get("ActualFrameDuration")
    if fd is not None and str(fd).strip() != "":
        ms = float(fd)
        if not ms > 0:
            raise TimingError(tag_name("ActualFrameDuration"), "must be positive", ms, None, source)
        assumptions.allow(
            TimingError(
                tag_name("RotationInformationSequence"),
                "absent or incomplete, so the total acquisition duration is unknown; the "
                f"top-level {tag_name('ActualFrameDuration')} is the time per projection in "
                "a SPECT, not the whole acquisition",
                f"ActualFrameDuration {ms:g} ms",
                "re-export the reconstruction with its Rotation Information Sequence "
                "(Actual Frame Duration and Number of Frames in Rotation), or read with "
                "strictness='lenient' to take the top-level Actual Frame Duration as the "
                "whole acquisition",
                source,
            ),
            f"acquisition duration taken from the top-level {tag_name('ActualFrameDuration')} "
            f"{ms:g} ms (no usable Rotation Information Sequence)",
        )
        return ms / 1000.0, tag_name("ActualFrameDuration")
    return None, "unknown"


def _decay_correction(
    ds: Dataset, assumptions: Assumptions, source: str
) -> tuple[DecayCorrection, str]:
    corrected = _multi(ds, "CorrectedImage")
    has_decy = "DECY" in corrected
    attr = _str(ds, "DecayCorrection")
    if attr is not None:
        try:
            dc = {
                "START": DecayCorrection.START,
                "ADMIN": DecayCorrection.ADMIN,
                "NONE": DecayCorrection.NONE,
            }[attr.upper()]
        except KeyError:
            raise TimingError(
                tag_name("DecayCorrection"),
                "unknown value (START, ADMIN or NONE expected)",
                attr,
                "correct the header",
                source,
            ) from None
        if dc is DecayCorrection.NONE and has_decy:
            assumptions.allow(
                TimingError(
                    tag_name("CorrectedImage"),
                    "lists DECY while DecayCorrection (0054,1102) is NONE",
                    "\\".join(corrected),
                    "correct the header, or read leniently",
                    source,
                ),
                "values taken as not decay-corrected (DecayCorrection NONE)",
            )
        elif dc is not DecayCorrection.NONE and not has_decy:
            assumptions.note(
                f"{tag_name('DecayCorrection')} {dc.value} while {tag_name('CorrectedImage')} "
                "does not list DECY; DecayCorrection is used"
            )
        return dc, f"{tag_name('DecayCorrection')} {dc.value}"
    if has_decy:
        assumptions.allow(
            TimingError(
                tag_name("DecayCorrection"),
                "absent while CorrectedImage (0028,0051) lists DECY, so the instant the "
                "values are decay-corrected to is unknown",
                None,
                "set DecayCorrection (START or ADMIN) in the header, or read leniently "
                "(--lenient / strictness='lenient'), which assumes START (acquisition start)",
                source,
            ),
            "assumed decay-corrected to the acquisition start (START)",
        )
        return DecayCorrection.START, "CorrectedImage DECY, START assumed"
    return DecayCorrection.NONE, "no DECY in CorrectedImage (0028,0051)"


def _window_list(ds: Dataset) -> list[EnergyWindow]:
    out = []
    for k, item in enumerate(ds.get("EnergyWindowInformationSequence") or [], 1):
        name = _str(item, "EnergyWindowName") or f"window {k}"
        rng = item.get("EnergyWindowRangeSequence")
        lo = hi = None
        if rng:
            lo_v, hi_v = rng[0].get("EnergyWindowLowerLimit"), rng[0].get("EnergyWindowUpperLimit")
            lo = float(lo_v) if lo_v not in (None, "") else None
            hi = float(hi_v) if hi_v not in (None, "") else None
        out.append(EnergyWindow(name, lo, hi))
    return out


# ------------------------------------------------------------------- SPECT


def _spect_geometry(
    ds: Dataset, assumptions: Assumptions, steps: list[str], source: str
) -> tuple[np.ndarray, np.ndarray]:
    """(IPP of slice 1, 3x3 columns) from the detector item / top level."""
    det_seq = ds.get("DetectorInformationSequence") or []
    items = list(det_seq)
    if len(items) > 1:
        keys = {
            (
                tuple(str(x) for x in it.get("ImagePositionPatient", [])),
                tuple(str(x) for x in it.get("ImageOrientationPatient", [])),
            )
            for it in items
        }
        if len(keys) > 1:
            raise GeometryError(
                tag_name("DetectorInformationSequence"),
                f"{len(items)} items with different positions/orientations in one "
                "reconstructed volume",
                None,
                "split the object per detector",
                source,
            )
        assumptions.note(
            f"{tag_name('DetectorInformationSequence')}: {len(items)} identical items; "
            "the first is used"
        )
    det = items[0] if items else Dataset()
    where = {}
    vals = {}
    for kw in ("ImagePositionPatient", "ImageOrientationPatient"):
        if _listed(det.get(kw)):
            vals[kw], where[kw] = _listed(det.get(kw)), "DetectorInformationSequence (0054,0022)"
        elif _listed(ds.get(kw)):
            vals[kw], where[kw] = _listed(ds.get(kw)), "top level"
            assumptions.note(
                f"{tag_name(kw)} taken from the top level: absent from the "
                f"{tag_name('DetectorInformationSequence')} item"
            )
        else:
            raise GeometryError(
                tag_name(kw),
                "absent from the Detector Information Sequence (0054,0022) item and the top level",
                None,
                "re-export the reconstruction with its patient geometry",
                source,
            )
    ipp = _floats(vals["ImagePositionPatient"], tag_name("ImagePositionPatient"), 3, source)
    iop = _floats(vals["ImageOrientationPatient"], tag_name("ImageOrientationPatient"), 6, source)
    r, c = iop[:3], iop[3:]
    if (
        abs(np.linalg.norm(r) - 1) > 1e-3
        or abs(np.linalg.norm(c) - 1) > 1e-3
        or abs(float(np.dot(r, c))) > 1e-3
    ):
        raise GeometryError(
            tag_name("ImageOrientationPatient"),
            "row and column cosines are not orthonormal",
            iop.tolist(),
            None,
            source,
        )
    ps_v = _listed(ds.get("PixelSpacing")) or _listed(det.get("PixelSpacing"))
    if ps_v is None:
        raise GeometryError(
            tag_name("PixelSpacing"), "absent", None, "re-export the reconstruction", source
        )
    ps = _floats(ps_v, tag_name("PixelSpacing"), 2, source)
    if np.any(ps <= 0):
        raise GeometryError(tag_name("PixelSpacing"), "must be positive", ps.tolist(), None, source)
    sbs_v = _str(ds, "SpacingBetweenSlices")
    if sbs_v is not None:
        sbs = float(sbs_v)
        if not (math.isfinite(sbs) and sbs != 0):
            raise GeometryError(
                tag_name("SpacingBetweenSlices"), "must be non-zero", sbs_v, None, source
            )
        sbs_src = f"{tag_name('SpacingBetweenSlices')} {sbs:g} mm"
    else:
        st_v = _str(ds, "SliceThickness")
        st = float(st_v) if st_v is not None else math.nan
        if not (math.isfinite(st) and st > 0):
            raise GeometryError(
                tag_name("SpacingBetweenSlices"),
                "absent, and no usable Slice Thickness (0018,0050)",
                st_v,
                "re-export the reconstruction with its slice spacing",
                source,
            )
        assumptions.allow(
            GeometryError(
                tag_name("SpacingBetweenSlices"),
                "absent: slice step and stacking direction unknown",
                None,
                "re-export the reconstruction with Spacing Between Slices, or read "
                "leniently (assumes Slice Thickness along +normal)",
                source,
            ),
            f"slice step = {tag_name('SliceThickness')} {st:g} mm along "
            "+(row cosines x column cosines)",
        )
        sbs = st
        sbs_src = f"{tag_name('SliceThickness')} {st:g} mm (assumed step)"
    normal = np.cross(r, c)
    cols = np.column_stack([normal * sbs, c * ps[0], r * ps[1]])
    if where["ImagePositionPatient"] == where["ImageOrientationPatient"]:
        pos_src = f"Image Position/Orientation (Patient) from {where['ImagePositionPatient']}"
    else:
        pos_src = (
            f"ImagePositionPatient from {where['ImagePositionPatient']}, "
            f"ImageOrientationPatient from {where['ImageOrientationPatient']}"
        )
    steps.append(f"geometry: {pos_src}; PixelSpacing {ps[0]:g}\\{ps[1]:g} mm; slice step {sbs_src}")
    return ipp, cols


def _slice_order(ds: Dataset, n_frames: int, assumptions: Assumptions, source: str) -> np.ndarray:
    """For each frame, its 0-based slice index."""
    pointers = _frame_pointers(ds)
    slice_tag = Tag("SliceVector")
    for tag in pointers:
        if tag == slice_tag:
            continue
        vals = _vector(ds, tag, n_frames, source)
        if len(set(vals)) > 1:
            kw = _keyword(tag)
            what = {
                "EnergyWindowVector": "several energy windows",
                "DetectorVector": "several detectors",
                "TimeSlotVector": "several gates (time slots)",
                "RotationVector": "several rotations",
                "PhaseVector": "several phases",
                "RRIntervalVector": "several R-R intervals",
            }.get(kw, f"several values of {kw}")
            raise DicomReadError(
                tag_name(kw),
                f"the object holds {what} ({len(set(vals))}); one volume per object is supported",
                None,
                "export one reconstructed volume per file (or sum the gates) and read each",
                source,
            )
    if slice_tag in pointers or "SliceVector" in ds:
        sv = _vector(ds, slice_tag, n_frames, source)
        n_slices = int(ds.get("NumberOfSlices") or n_frames)
        if n_slices != n_frames or sorted(sv) != list(range(1, n_frames + 1)):
            raise GeometryError(
                tag_name("SliceVector"),
                f"must number the {n_frames} frames 1..{n_frames} once each "
                f"(Number of Slices {n_slices})",
                sorted(set(sv))[:6],
                "re-export the reconstruction",
                source,
            )
        return np.asarray(sv, dtype=np.int64) - 1
    assumptions.allow(
        GeometryError(
            tag_name("SliceVector"),
            "absent: the slice of each frame is unknown",
            None,
            "re-export the reconstruction, or read leniently (frames taken in stored order)",
            source,
        ),
        "frames taken as slices 1..N in stored order",
    )
    return np.arange(n_frames)


def read_nm_spect(
    path: str | Path,
    *,
    strictness: Strictness | str = "strict",
    calibration_cps_per_mbq: float | None = None,
    injection: datetime | None = None,
    administered_activity_mbq: float | None = None,
    nuclide: str | None = None,
    patient_weight_kg: float | None = None,
) -> Image:
    """Read one multi-frame reconstructed SPECT NM object.

    Parameters
    ----------
    path : str or Path
        An NM Image Storage file with Image Type value 3 ``RECON TOMO`` or
        ``RECON GATED TOMO`` (a single gate).
    strictness : {"strict", "lenient"}
        Lenient reading proceeds where a safe assumption exists and records it
        in ``image.provenance.assumptions``.
    calibration_cps_per_mbq : float, optional
        SPECT system sensitivity (cps/MBq) applied to a counts image to give
        MBq/mL. Refused (strict) when the file already stores activity
        concentration.
    injection : datetime, optional
        Overrides the Radiopharmaceutical Start DateTime (recorded).
    administered_activity_mbq : float, optional
        Overrides the Radionuclide Total Dose (recorded).
    nuclide : str, optional
        Overrides the Radionuclide Code Sequence (recorded). Without it, an
        unknown nuclide is refused when strict.
    patient_weight_kg : float, optional
        Overrides Patient's Weight (0010,1030) (recorded).

    Returns
    -------
    Image
        ``(slices, rows, columns)`` in MBq/mL (``ACTIVITY_CONCENTRATION``) or
        counts (``COUNTS``); the path to the values is the provenance step that
        starts with ``values:``.

    Raises
    ------
    DicomReadError
        Not DICOM, truncated, not NM, not a reconstructed volume (planar objects:
        use :func:`read_nm_planar`), or several windows/detectors/gates.
    GeometryError, TimingError, UnitError, MissingFieldError
        Missing or inconsistent header data (some allowed in lenient mode).
    CalibrationError
        A calibration factor that is not a positive finite number.
    ImageDataError
        NaN or infinite voxel values.
    """
    path = Path(path)
    source = path.name
    assumptions = Assumptions(strictness)
    _check_calibration(calibration_cps_per_mbq)
    ds, itype = _open_nm(path, source)
    if itype not in _RECON_TYPES:
        hint = (
            "read planar images with theranet.io.read_nm_planar"
            if itype in (*_PLANAR_TYPES, "DYNAMIC", "GATED")
            else "reconstruct the projections first; this reader takes RECON TOMO volumes"
        )
        raise DicomReadError(
            tag_name("ImageType"),
            f"value 3 is {itype!r}, not a reconstructed SPECT volume "
            "(RECON TOMO or RECON GATED TOMO)",
            "\\".join(_multi(ds, "ImageType")),
            hint,
            source,
        )
    steps: list[str] = []
    frames = _pixels(ds, source)
    n_frames, rows, cols = frames.shape
    order = _slice_order(ds, n_frames, assumptions, source)
    stored = np.empty_like(frames)
    stored[order] = frames
    ipp, axes = _spect_geometry(ds, assumptions, steps, source)
    affine = np.eye(4)
    affine[:3, :3] = axes
    affine[:3, 3] = ipp
    if axes[:, 0] @ np.cross(axes[:, 2], axes[:, 1]) < 0:
        # canonical order, as for DICOM series: slices ascending along the normal
        stored = stored[::-1]
        affine[:3, 3] = ipp + (n_frames - 1) * axes[:, 0]
        affine[:3, 0] = -axes[:, 0]
        steps.append("slices reversed to ascend along the slice normal")

    windows = _window_list(ds)
    if windows:
        steps.append(
            "energy windows: "
            + ", ".join(
                w.name
                + (
                    f" [{w.lower_kev:g}-{w.upper_kev:g} keV]"
                    if w.lower_kev is not None and w.upper_kev is not None
                    else ""
                )
                for w in windows
            )
        )
    steps.insert(0, f"read NM {itype}: {n_frames} slices of {rows} x {cols} from {source}")

    values = _map_values(ds, stored, assumptions, source)
    steps.append(values.step)
    if not np.all(np.isfinite(values.data)):
        bad = ~np.isfinite(values.data)
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ImageDataError(
            "PixelData (7FE0,0010)",
            f"{int(bad.sum())} non-finite voxel value(s), first at index {first}",
            None,
            "repair or mask the reconstruction before quantification",
            source,
        )

    start, start_src = _acquisition_start(ds, assumptions, source)
    duration_s, dur_src = _spect_duration_s(ds, assumptions, source)
    dc, dc_src = _decay_correction(ds, assumptions, source)
    steps.append(
        f"timing: acquisition start from {start_src}; duration "
        + (f"{duration_s:g} s from {dur_src}" if duration_s is not None else "unknown")
        + f"; decay correction {dc.value} ({dc_src})"
    )
    admin = administration(
        ds,
        start,
        assumptions,
        steps,
        injection=injection,
        administered_activity_mbq=administered_activity_mbq,
        nuclide=nuclide,
        source=source,
    )
    patient = patient_info(ds, assumptions, steps, source, weight_kg=patient_weight_kg)
    reference = None
    if dc is DecayCorrection.ADMIN:
        # as the series reader: the scanner corrected to the header's injection time
        inj, hdr_inj = admin.injection, admin.header_injection
        if injection is not None and hdr_inj is not None and hdr_inj != inj:
            dc, reference = DecayCorrection.REFERENCE, hdr_inj
            steps.append(
                f"DecayCorrection ADMIN: values refer to the header injection time "
                f"{hdr_inj.isoformat()} (kept as the REFERENCE state, since the injection "
                "argument differs)"
            )
        elif injection is not None and hdr_inj is None:
            assumptions.note(
                "DecayCorrection ADMIN without a header injection time: the scanner is "
                "taken to have corrected to the injection argument"
            )
    timing = Timing(
        acquisition_start=start,
        frame_duration_h=duration_s / 3600.0 if duration_s is not None else None,
        injection=admin.injection,
        administered_activity_mbq=admin.activity_mbq,
        decay_correction=dc,
        reference=reference,
        injection_source=admin.injection_source,
    )
    if calibration_cps_per_mbq is not None:
        if values.quantity is Quantity.ACTIVITY_CONCENTRATION:
            assumptions.allow(
                CalibrationError(
                    "calibration_cps_per_mbq",
                    "given, but the file already stores activity concentration "
                    f"({values.step.removeprefix('values: ')})",
                    calibration_cps_per_mbq,
                    "omit the calibration factor, or read leniently to ignore it",
                    source,
                ),
                "the file's own calibration is kept; calibration_cps_per_mbq ignored",
            )
        elif not values.unit_stated:
            assumptions.allow(
                UnitError(
                    tag_name("Units"),
                    "absent, and no Real World Value Mapping Sequence (0040,9096): the voxel "
                    "values are not stated to be counts, so calibration_cps_per_mbq cannot be "
                    "applied safely",
                    None,
                    "re-export the reconstruction with Units (0054,1001) CNTS or a {counts} "
                    "Real World Value Mapping, or read with strictness='lenient' to take the "
                    "values as counts",
                    source,
                ),
                "voxel values taken as counts for the calibration",
            )
        if values.quantity is Quantity.COUNTS and duration_s is None:
            raise TimingError(
                tag_name("RotationInformationSequence"),
                "acquisition duration unknown (no Actual Frame Duration), needed to turn "
                "counts into a count rate",
                None,
                "re-export the reconstruction with its Rotation Information Sequence",
                source,
            )
    image = Image(
        values.data.astype(np.float32),
        affine,
        values.quantity,
        modality="NM",
        nuclide=admin.nuclide,
        tracer=admin.tracer,
        timing=timing,
        patient=patient,
        provenance=Provenance(source=f"NM {source}", steps=tuple(steps)),
        corrections=frozenset(_multi(ds, "CorrectedImage")) if "CorrectedImage" in ds else None,
    )
    if calibration_cps_per_mbq is not None and values.quantity is Quantity.COUNTS:
        image = image.to_activity_concentration(float(calibration_cps_per_mbq))
    return image.replace(provenance=image.provenance.with_assumptions(assumptions.records))


# ------------------------------------------------------------------- planar


@dataclass(frozen=True)
class EnergyWindow:
    """One energy window of an NM acquisition (keV limits when stated)."""

    name: str
    lower_kev: float | None = None
    upper_kev: float | None = None


@dataclass(frozen=True, eq=False)
class PlanarStudy:
    """Anterior and posterior planar views (counts) from one NM object.

    Attributes
    ----------
    anterior, posterior : ndarray of shape (windows, rows, columns)
        Counts per pixel, one plane per energy window (in the order of
        ``energy_windows``). **Both are in the anterior-view orientation**: the
        posterior view is mirrored left-right (columns reversed) at read time,
        so pixel ``[w, r, c]`` of both arrays looks along the same line through
        the patient (columns increasing towards the patient's left as displayed
        for an anterior view), ready for a geometric mean.
    pixel_spacing_mm : (float, float) or None
        Pixel Spacing (0028,0030): between rows, between columns.
    energy_windows : tuple of EnergyWindow
    image_type : str
        Image Type value 3 (``WHOLE BODY`` or ``STATIC``).
    anterior_detector : int
        Detector number (Detector Vector value) of the anterior view.
    timing : Timing
        Acquisition start, duration (Actual Frame Duration (0018,1242); for a
        whole-body sweep the duration of the sweep as the scanner states it),
        injection and administered activity; decay correction NONE.
    scan_velocity_mm_s : float or None
        Scan Velocity (0018,1300) of a whole-body sweep.
    nuclide, tracer : str or None
    patient : PatientInfo
    provenance : Provenance
    """

    anterior: np.ndarray
    posterior: np.ndarray
    pixel_spacing_mm: tuple[float, float] | None
    energy_windows: tuple[EnergyWindow, ...]
    image_type: str
    anterior_detector: int
    timing: Timing = field(default_factory=Timing)
    scan_velocity_mm_s: float | None = None
    nuclide: str | None = None
    tracer: str | None = None
    patient: PatientInfo = field(default_factory=PatientInfo)
    provenance: Provenance = field(default_factory=Provenance)

    def __post_init__(self) -> None:
        for name in ("anterior", "posterior"):
            a = np.asarray(getattr(self, name))
            if a.ndim != 3:
                raise ImageDataError(name, "must be (windows, rows, columns)", a.shape)
            if a.flags.writeable:
                a = a.view()
                a.setflags(write=False)
            object.__setattr__(self, name, a)
        if self.anterior.shape != self.posterior.shape:
            raise ImageDataError(
                "posterior",
                f"shape differs from the anterior {self.anterior.shape}",
                self.posterior.shape,
            )
        if len(self.energy_windows) != self.anterior.shape[0]:
            raise ImageDataError(
                "energy_windows",
                f"{len(self.energy_windows)} windows for {self.anterior.shape[0]} planes",
            )

    @property
    def energy_window_names(self) -> tuple[str, ...]:
        return tuple(w.name for w in self.energy_windows)

    def window_index(self, window: int | str) -> int:
        """Index of an energy window given by index or name."""
        if isinstance(window, int):
            if not 0 <= window < len(self.energy_windows):
                raise IndexError(f"window: {window} out of range 0..{len(self.energy_windows) - 1}")
            return window
        names = self.energy_window_names
        if window not in names:
            raise KeyError(f"window: no energy window {window!r}; known: {list(names)}")
        return names.index(window)

    def view(self, which: str, window: int | str = 0) -> np.ndarray:
        """The 2-D counts of ``which`` ("anterior" or "posterior") in one window."""
        if which not in ("anterior", "posterior"):
            raise ValueError(f"which: {which!r}; use 'anterior' or 'posterior'")
        return getattr(self, which)[self.window_index(window)]


def _view_of(item: Dataset) -> str | None:
    seq = item.get("ViewCodeSequence")
    if not seq:
        return None
    code = seq[0]
    key = (
        str(code.get("CodingSchemeDesignator", "")).strip(),
        str(code.get("CodeValue", "")).strip(),
    )
    if key in _VIEW_CODES:
        return _VIEW_CODES[key]
    meaning = str(code.get("CodeMeaning", "")).strip().lower()
    return _VIEW_MEANINGS.get(meaning)


def read_nm_planar(
    path: str | Path,
    *,
    strictness: Strictness | str = "strict",
    injection: datetime | None = None,
    administered_activity_mbq: float | None = None,
    nuclide: str | None = None,
    anterior_detector: int | None = None,
    patient_weight_kg: float | None = None,
) -> PlanarStudy:
    """Read a planar NM object (WHOLE BODY or STATIC) with anterior/posterior views.

    Views rule
    ----------
    The frames are grouped by Detector Vector (0054,0020) and Energy Window
    Vector (0054,0010). The object must hold exactly two detectors. Which is
    anterior is taken, in order, from:

    1. ``anterior_detector`` (1 or 2), when given (recorded; it overrides the
       header);
    2. the View Code Sequence (0054,0220) of each Detector Information Sequence
       item: SCT 399321004 *Anterior projection* / 399001007 *Posterior
       projection* (or code meanings "anterior"/"posterior"); exactly one of each
       is required;
    3. otherwise the views are ambiguous: strict reading refuses; lenient reading
       assumes detector 1 is anterior and records it.

    The posterior planes are mirrored left-right so both views share the
    anterior orientation (see :class:`PlanarStudy`). Values are counts (stored
    values, times Rescale Slope plus Intercept if present); conjugate-view
    quantification is not done here.

    ``injection``, ``administered_activity_mbq``, ``nuclide`` and
    ``patient_weight_kg`` override the header as in :func:`read_nm_spect` (and
    :func:`~theranet.io.read_series`): the same rules, recorded in the same words.
    """
    path = Path(path)
    source = path.name
    assumptions = Assumptions(strictness)
    ds, itype = _open_nm(path, source)
    if itype not in _PLANAR_TYPES:
        hint = (
            "read reconstructed SPECT volumes with theranet.io.read_nm_spect"
            if itype in _RECON_TYPES
            else "only WHOLE BODY and STATIC planar objects are read"
        )
        raise DicomReadError(
            tag_name("ImageType"),
            f"value 3 is {itype!r}, not a planar WHOLE BODY or STATIC object",
            "\\".join(_multi(ds, "ImageType")),
            hint,
            source,
        )
    steps = []
    frames = _pixels(ds, source)
    n_frames, rows, cols = frames.shape
    pointers = _frame_pointers(ds)
    ew_tag, det_tag = Tag("EnergyWindowVector"), Tag("DetectorVector")
    for tag in pointers:
        if tag in (ew_tag, det_tag):
            continue
        vals = _vector(ds, tag, n_frames, source)
        if len(set(vals)) > 1:
            raise DicomReadError(
                tag_name(_keyword(tag)),
                f"frames vary along {_keyword(tag)}; only energy windows and detectors "
                "are supported in a planar object",
                None,
                "export one static view pair per file",
                source,
            )
    ewv = (
        _vector(ds, ew_tag, n_frames, source)
        if (ew_tag in pointers or ew_tag in ds)
        else [1] * n_frames
    )
    if det_tag not in pointers and det_tag not in ds:
        raise MissingFieldError(
            tag_name("DetectorVector"),
            "absent: the frames cannot be assigned to views",
            None,
            "export the anterior and posterior views in one object with a Detector Vector",
            source,
        )
    dv = _vector(ds, det_tag, n_frames, source)
    detectors = sorted(set(dv))
    if len(detectors) != 2:
        raise DicomReadError(
            tag_name("DetectorVector"),
            f"the object holds {len(detectors)} detector(s); an anterior and a posterior "
            "view (two detectors) are needed",
            detectors,
            "export both views in one object",
            source,
        )
    det_items = list(ds.get("DetectorInformationSequence") or [])
    views = {
        d: (_view_of(det_items[d - 1]) if 0 < d <= len(det_items) else None) for d in detectors
    }
    if anterior_detector is not None:
        if anterior_detector not in detectors:
            raise ValueError(
                f"anterior_detector: {anterior_detector!r} is not one of the detectors {detectors}"
            )
        ant = anterior_detector
        header_ant = [d for d, v in views.items() if v == "ANTERIOR"]
        if header_ant and header_ant != [ant]:
            assumptions.note(
                f"anterior_detector={ant} from the argument overrides the "
                f"{tag_name('ViewCodeSequence')} (anterior: detector {header_ant})"
            )
        steps.append(f"views: detector {ant} anterior (argument anterior_detector)")
    else:
        stated = {d: v for d, v in views.items() if v is not None}
        vset = sorted(stated.values())
        if vset == ["ANTERIOR", "POSTERIOR"]:
            ant = next(d for d, v in stated.items() if v == "ANTERIOR")
            steps.append(f"views: detector {ant} anterior ({tag_name('ViewCodeSequence')})")
        elif len(vset) == 2:
            raise GeometryError(
                tag_name("ViewCodeSequence"),
                "both detectors have the same view",
                stated,
                "pass anterior_detector= (1 or 2)",
                source,
            )
        elif len(vset) == 1:
            ((d_known, v_known),) = stated.items()
            other = detectors[1] if d_known == detectors[0] else detectors[0]
            ant = d_known if v_known == "ANTERIOR" else other
            steps.append(
                f"views: detector {d_known} {v_known.lower()} "
                f"({tag_name('ViewCodeSequence')}), detector {other} the opposite view"
            )
        else:
            assumptions.allow(
                GeometryError(
                    tag_name("ViewCodeSequence"),
                    "anterior/posterior views of the detectors are not stated (ambiguous)",
                    None,
                    "pass anterior_detector= (1 or 2), or read leniently (assumes detector "
                    f"{detectors[0]} anterior)",
                    source,
                ),
                f"detector {detectors[0]} assumed anterior, detector {detectors[1]} posterior",
            )
            ant = detectors[0]
            steps.append(f"views: detector {ant} anterior (assumed)")
    post = detectors[1] if ant == detectors[0] else detectors[0]

    values = _map_values(ds, frames, assumptions, source)
    if values.quantity is not Quantity.COUNTS:
        raise UnitError(
            "voxel units",
            "a planar object must hold counts",
            values.step,
            "export the planar acquisition in counts",
            source,
        )
    steps.append(values.step)
    all_windows = _window_list(ds)
    w_ids = sorted(set(ewv))
    windows = []
    for w in w_ids:
        windows.append(
            all_windows[w - 1] if 0 < w <= len(all_windows) else EnergyWindow(f"window {w}")
        )
    planes = {}
    for view_det in (ant, post):
        stack = np.zeros((len(w_ids), rows, cols), dtype=np.float64)
        for k, w in enumerate(w_ids):
            idx = [i for i in range(n_frames) if dv[i] == view_det and ewv[i] == w]
            if len(idx) != 1:
                raise DicomReadError(
                    tag_name("DetectorVector"),
                    f"{len(idx)} frames for detector {view_det}, energy window {w} (one expected)",
                    None,
                    "re-export the object",
                    source,
                )
            stack[k] = values.data[idx[0]]
        planes[view_det] = stack
    if not all(np.all(np.isfinite(p)) for p in planes.values()):
        raise ImageDataError("PixelData (7FE0,0010)", "non-finite counts", None, None, source)
    anterior = planes[ant]
    posterior = planes[post][:, :, ::-1].copy()
    steps.append("posterior view mirrored left-right to the anterior orientation")

    ps_v = ds.get("PixelSpacing")
    spacing = None
    ps_v = _listed(ps_v)
    if ps_v is not None and len(ps_v) == 2:
        spacing_arr = _floats(ps_v, tag_name("PixelSpacing"), 2, source)
        if np.all(spacing_arr > 0):
            spacing = (float(spacing_arr[0]), float(spacing_arr[1]))
    if spacing is None:
        assumptions.note(f"{tag_name('PixelSpacing')} absent or invalid; left unknown")

    start, start_src = _acquisition_start(ds, assumptions, source)
    fd = _str(ds, "ActualFrameDuration")
    duration_h = None
    if fd is not None:
        if not float(fd) > 0:
            raise TimingError(tag_name("ActualFrameDuration"), "must be positive", fd, None, source)
        duration_h = float(fd) / 3.6e6
    else:
        assumptions.note(f"{tag_name('ActualFrameDuration')} absent; duration unknown")
    steps.append(
        f"timing: acquisition start from {start_src}; duration "
        + (f"{duration_h * 3600:g} s" if duration_h is not None else "unknown")
    )
    admin = administration(
        ds,
        start,
        assumptions,
        steps,
        injection=injection,
        administered_activity_mbq=administered_activity_mbq,
        nuclide=nuclide,
        source=source,
    )
    patient = patient_info(ds, assumptions, steps, source, weight_kg=patient_weight_kg)
    sv = _str(ds, "ScanVelocity")
    return PlanarStudy(
        anterior=anterior,
        posterior=posterior,
        pixel_spacing_mm=spacing,
        energy_windows=tuple(windows),
        image_type=itype,
        anterior_detector=ant,
        timing=Timing(
            acquisition_start=start,
            frame_duration_h=duration_h,
            injection=admin.injection,
            administered_activity_mbq=admin.activity_mbq,
            decay_correction=DecayCorrection.NONE,
            injection_source=admin.injection_source,
        ),
        scan_velocity_mm_s=float(sv) if sv is not None else None,
        nuclide=admin.nuclide,
        tracer=admin.tracer,
        patient=patient,
        provenance=Provenance(
            source=f"NM {source}",
            steps=(f"read NM {itype} planar: {n_frames} frames of {rows} x {cols}", *steps),
            assumptions=assumptions.records,
        ),
    )
