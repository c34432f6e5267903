"""Single-frame DICOM series (CT, MR, PET: one file per slice) as an :class:`Image`.

Geometry
    Slices are sorted by their position along the slice normal
    ``n = row cosines x column cosines`` (from Image Orientation (Patient)). The
    series must be a regular volume: one orientation, pixel spacing and matrix,
    no two slices at one position, uniform spacing along ``n`` (no slice gaps)
    and slices stacked along ``n`` (no gantry tilt). Anything else is a
    :class:`~theranet.errors.GeometryError` in strict *and* lenient mode: a
    gap or a tilt changes the geometry, and no assumption about it is safe, so
    nothing is interpolated or resampled here. The affine is

    * column 0: the slice step ``(IPP[last] - IPP[first]) / (N - 1)`` (as ITK's
      ImageSeriesReader computes it),
    * column 1: column cosines ``IOP[3:6]`` x row spacing ``PixelSpacing[0]``,
    * column 2: row cosines ``IOP[0:3]`` x column spacing ``PixelSpacing[1]``,
    * translation: Image Position (Patient) of the first sorted slice,

    with data of shape ``(N, Rows, Columns)``.

Values
    Rescale Slope/Intercept are applied per slice, in float64, stored as
    float32. CT gives HU, MR gives intensity. NaN or infinite values are refused
    in both modes. PET follows Units (0054,1001): ``BQML`` (Bq/mL, converted to
    MBq/mL), ``CNTS`` (counts; Bq/mL through the Philips Activity
    Concentration Scale Factor (7053,1009) when present, else SUVbw through the
    Philips SUV Scale Factor (7053,1000) when present; factors per slice),
    ``GML`` (SUVbw). An absent or unknown unit is refused in both modes unless
    ``units=`` is given.

Corrections (clinical.md §4.1)
    Corrected Image (0028,0051) becomes ``Image.corrections`` (empty when
    absent), so :meth:`~theranet.image.Image.to_suv` refuses values without
    ``ATTN``, or without ``DECY`` when the scanner decay-corrected (START,
    ADMIN). Gaps are noted in the provenance when reading.

PET timing (clinical.md §4.2)
    ``START``: the scan reference time is SeriesDate/SeriesTime when it is not
    after the earliest AcquisitionDate/AcquisitionTime, else the GE private
    post-injection DateTime (0009,100D) (creator ``GEMS_PETD_01``), else the
    earliest acquisition time. ``ADMIN``: values refer to the injection, which is
    then required. ``NONE``: the acquisition start is the earliest acquisition
    time; when slices (bed positions) started at different times, each slice is
    decay-corrected to a frame of the earliest start (ICRP-107 half-life of the
    nuclide, exact for frame-integrated values), so the volume refers to one
    frame; the correction is recorded in the provenance.
    For START with Decay Factor (0054,1321) and Frame Reference Time
    (0054,1300) on every slice, ``DecayFactor = 2^(FrameReferenceTime / T½)``
    must hold to 1e-3 (relative); otherwise ``DECAY_FACTOR_INCONSISTENT`` is
    refused when strict and recorded when lenient (SUV is then refused).
    Radionuclide Total Dose (0018,1074) is in Bq in PET Image Storage and in
    MBq in Enhanced PET: the SOP Class decides, never the magnitude.

Administration and patient
    Injection, administered activity, nuclide, tracer and the patient's body
    data are read by :func:`theranet.io._dicom_common.administration` and
    :func:`~theranet.io._dicom_common.patient_info`, shared with the NM reader:
    the same rules (an unknown nuclide of a PET series is refused when strict),
    recorded in the same words.

Everything taken from an argument instead of the header, every vendor path and
every assumption is recorded in the provenance (``steps`` and ``assumptions``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset

from theranet.errors import (
    Assumptions,
    DicomReadError,
    GeometryError,
    ImageDataError,
    InconsistentSeriesError,
    MissingFieldError,
    Strictness,
    TimingError,
    UnitError,
)
from theranet.image import (
    DECAY_FACTOR_INCONSISTENT,
    DecayCorrection,
    Image,
    Provenance,
    Quantity,
    Timing,
)
from theranet.io._dicom_common import (
    administration,
    dicom_datetime,
    naive_local,
    parse_dt,
    patient_info,
    pixel_array,
    read_dataset,
    tag_name,
)

logger = logging.getLogger(__name__)

__all__ = ["corrected_image_flags", "read_series"]

_MODALITIES = ("CT", "MR", "PT")
_PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
_PET_UNITS = ("BQML", "CNTS", "GML")
_DECAY_CORRECTIONS = ("START", "ADMIN", "NONE")
_GE_PET_CREATOR = "GEMS_PETD_01"
_PHILIPS_PET_CREATOR = "Philips PET Private Group"
#: Provenance step prefix under which PET Corrected Image values are kept.
CORRECTED_IMAGE_STEP = "CorrectedImage (0028,0051): "

# Tolerances (mm, or dimensionless for direction cosines). Scanners print
# positions with a few decimals; these accept rounding and refuse real defects.
_ORIENTATION_ATOL = 1e-4
_SPACING_RTOL = 1e-4
_DUPLICATE_MM = 1e-2
_STEP_ABS_MM = 1e-2
_STEP_REL = 1e-2
_DRIFT_REL = 0.1
_TILT_ABS_MM = 2e-2
_TILT_REL = 1e-3
#: Decay Factor vs 2^(Frame Reference Time / T½), relative (clinical.md §4.2).
_DECAY_FACTOR_RTOL = 1e-3


@dataclass
class _Slice:
    path: Path
    ds: Dataset

    @property
    def name(self) -> str:
        return self.path.name


# ---------------------------------------------------------------- public API


def read_series(
    path_or_files: str | Path | Iterable[str | Path],
    *,
    strictness: Strictness | str = Strictness.STRICT,
    injection: datetime | None = None,
    administered_activity_mbq: float | None = None,
    patient_weight_kg: float | None = None,
    nuclide: str | None = None,
    units: str | None = None,
    decay_correction: str | None = None,
) -> Image:
    """Read a single-frame CT, MR or PET series (one file per slice).

    Parameters
    ----------
    path_or_files : path or iterable of paths
        A folder holding the series and nothing else, or the files. Hidden files
        (``.name``) and ``.json`` sidecars in a folder are skipped and the skip
        is recorded; any other file that is not a DICOM image is an error.
    strictness : {"strict", "lenient"}
        ``strict`` refuses dose-relevant gaps in the header (missing injection
        time, missing Rescale Slope...); ``lenient`` proceeds where a safe
        assumption exists and records it in ``provenance.assumptions``.
        Geometry defects, NaN voxels and unknown PET units are refused in both.
    injection : datetime, optional
        Radiopharmaceutical administration datetime (local time, as in the
        header); overrides the header and is recorded.
    administered_activity_mbq : float, optional
        Administered activity, MBq; overrides Radionuclide Total Dose.
    patient_weight_kg : float, optional
        Overrides Patient's Weight (0010,1030).
    nuclide : str, optional
        Nuclide (``"F-18"``, ``"68Ga"``...); overrides the Radionuclide Code
        Sequence. Without it, a PET series whose code is absent or not
        recognised is refused when strict (recorded when lenient), as in the
        NM readers; CT and MR never need one.
    units : {"BQML", "CNTS", "GML"}, optional
        PET only: the unit of the rescaled values, overriding Units (0054,1001)
        (for series written without it).
    decay_correction : {"START", "ADMIN", "NONE"}, optional
        PET only: overrides Decay Correction (0054,1102).

    Returns
    -------
    Image
        Data of shape ``(slices, rows, columns)``, float32, in the canonical unit
        of its quantity (HU, intensity, MBq/mL, counts or SUVbw g/mL).

    Raises
    ------
    DicomReadError
        A file is not DICOM, is truncated, or is not a single-frame CT/MR/PT image.
    InconsistentSeriesError
        Files disagree on series, frame of reference, orientation, matrix, units...
    GeometryError
        Missing or irregular geometry: gaps, non-uniform spacing, duplicate
        positions, gantry tilt.
    UnitError, TimingError, MissingFieldError, ImageDataError
        See the module documentation.
    """
    assumptions = Assumptions(strictness)
    steps: list[str] = []
    paths = _list_files(path_or_files, steps)
    slices = [_read_slice(p) for p in paths]

    modality = (
        _one_value(slices, "Modality", lambda ds: _text(ds, "Modality"), "one modality per folder")
        or "(absent)"
    )
    if modality not in _MODALITIES:
        raise DicomReadError(
            tag_name("Modality"),
            "not supported by read_series (single-frame CT, MR or PT)",
            modality,
            "read NM SPECT with read_nm_spect (or theranet.io.read_image)",
            slices[0].name,
        )
    uid = _one_value(
        slices,
        "SeriesInstanceUID",
        lambda ds: _text(ds, "SeriesInstanceUID"),
        "separate the series into their own folders (one series per folder)",
    )
    source = f"{modality} series {uid or '(no SeriesInstanceUID)'} ({len(slices)} files)"
    if uid is None:
        assumptions.allow(
            MissingFieldError(
                tag_name("SeriesInstanceUID"),
                "absent",
                None,
                "re-export the series; lenient mode takes the files as one series",
                source,
            ),
            "the files were taken as one series",
        )
    _check_series(slices, source, assumptions)

    slices, affine, geo_step = _geometry(slices, source)
    steps.append(geo_step)
    data = _values(slices, modality, source, assumptions, steps)
    patient = patient_info(slices[0].ds, assumptions, steps, source, weight_kg=patient_weight_kg)

    nuclide_name: str | None = None
    tracer: str | None = None
    corrections: frozenset[str] | None = None
    if modality == "PT":
        quantity, data, timing, nuclide_name, tracer, corrections = _pet(
            slices,
            data,
            source,
            assumptions,
            steps,
            injection=injection,
            administered_activity_mbq=administered_activity_mbq,
            nuclide=nuclide,
            units=units,
            decay_correction=decay_correction,
        )
        if quantity is Quantity.SUVBW and patient_weight_kg is not None:
            assumptions.note(
                "the SUVbw values were computed by the scanner with its header weight; the "
                "patient_weight_kg argument does not change them"
            )
    else:
        ignored = [
            name
            for name, value in (
                ("injection", injection),
                ("administered_activity_mbq", administered_activity_mbq),
                ("nuclide", nuclide),
                ("units", units),
                ("decay_correction", decay_correction),
            )
            if value is not None
        ]
        if ignored:
            msg = f"argument(s) {', '.join(ignored)} ignored: they apply to PET, not {modality}"
            logger.info(msg)
            steps.append(msg)
        quantity = Quantity.HU if modality == "CT" else Quantity.INTENSITY
        t_series = _datetime(slices[0].ds, "SeriesDate", "SeriesTime", slices[0].name)
        acq = _acquisition_datetimes(slices, assumptions, steps)
        acq_known = [t for t in acq if t is not None]
        start = t_series or (min(acq_known) if acq_known else None)
        timing = Timing(acquisition_start=start)

    _check_finite(data, slices, source)
    provenance = Provenance(source=source, steps=tuple(steps), assumptions=assumptions.records)
    logger.info("read %s: shape %s, %s", source, data.shape, quantity.value)
    return Image(
        data.astype(np.float32, copy=False),
        affine,
        quantity,
        modality=modality,
        nuclide=nuclide_name,
        tracer=tracer,
        timing=timing,
        patient=patient,
        provenance=provenance,
        corrections=corrections,
    )


def corrected_image_flags(image: Image) -> tuple[str, ...] | None:
    """The PET Corrected Image (0028,0051) values recorded by :func:`read_series`.

    Returns ``None`` when the image carries no such record (not read from PET),
    ``()`` when the attribute was absent, else e.g. ``("DECY", "ATTN", ...)``.
    """
    for step in image.provenance.steps:
        if step.startswith(CORRECTED_IMAGE_STEP):
            rest = step[len(CORRECTED_IMAGE_STEP) :]
            if rest.startswith("(absent)"):
                return ()
            return tuple(v for v in rest.split(";")[0].strip().split("\\") if v)
    return None


# ---------------------------------------------------------------- files


def _list_files(path_or_files, steps: list[str]) -> list[Path]:
    if isinstance(path_or_files, str | Path):
        root = Path(path_or_files)
        if root.is_dir():
            files, skipped = [], []
            for p in sorted(root.iterdir()):
                if p.name.startswith(".") or (p.is_file() and p.suffix.lower() == ".json"):
                    skipped.append(p.name)
                elif p.is_dir():
                    raise DicomReadError(
                        "folder",
                        "contains a subfolder; read_series reads one series folder",
                        p.name,
                        "pass the series folder itself, or a list of its files",
                        root.name,
                    )
                else:
                    files.append(p)
            if skipped:
                msg = f"skipped {len(skipped)} hidden or .json file(s): {', '.join(skipped)}"
                logger.info(msg)
                steps.append(msg)
            if not files:
                raise DicomReadError(
                    "folder", "contains no files", root.name, "point at the series folder"
                )
            return files
        candidates = [root]
    else:
        candidates = [Path(p) for p in path_or_files]
        if not candidates:
            raise DicomReadError("files", "empty list of files", None, "give the series files")
    for p in candidates:
        if not p.is_file():
            raise DicomReadError(
                "file", "does not exist or is not a file", p.name, "check the path", None
            )
    return candidates


def _read_slice(path: Path) -> _Slice:
    ds = read_dataset(path)
    if not any(kw in ds for kw in _PIXEL_KEYWORDS):
        raise DicomReadError(
            tag_name("PixelData"),
            "absent: the file is truncated or is not an image",
            path.name,
            "re-export the series; remove non-image objects (reports, presentation "
            "states) from the folder",
        )
    frames = ds.get("NumberOfFrames")
    if frames is not None and str(frames).strip() not in ("", "1"):
        raise DicomReadError(
            tag_name("NumberOfFrames"),
            "multi-frame image; read_series reads single-frame series (one file per slice)",
            str(frames),
            "read NM SPECT with read_nm_spect; enhanced multi-frame CT/MR/PET is not supported",
            path.name,
        )
    return _Slice(path, ds)


# ---------------------------------------------------------------- consistency


def _text(ds: Dataset, keyword: str) -> str | None:
    v = ds.get(keyword)
    if v is None:
        return None
    if isinstance(v, bytes):
        v = v.decode("ascii", "replace").strip("\x00")
    s = str(v).strip()
    return s or None


def _multi(ds: Dataset, keyword: str) -> tuple[str, ...] | None:
    """A multi-valued attribute as a tuple of stripped strings (None when absent)."""
    v = ds.get(keyword)
    if v is None or str(v).strip() == "":
        return None
    if isinstance(v, str | bytes):
        values = [v]
    else:
        try:
            values = list(v)
        except TypeError:
            values = [v]
    return tuple(str(x).strip() for x in values)


def _one_value(slices: list[_Slice], keyword: str, getter, fix: str, source: str | None = None):
    """The value shared by every slice, else InconsistentSeriesError naming each value."""
    first: dict[object, str] = {}
    for s in slices:
        first.setdefault(getter(s.ds), s.name)
    if len(first) > 1:
        shown = {("(absent)" if k is None else str(k)): f for k, f in list(first.items())[:4]}
        raise InconsistentSeriesError(
            tag_name(keyword),
            f"differs between files of one series ({len(first)} values; value: first file)",
            shown,
            fix,
            source,
        )
    return next(iter(first))


def _rp_item(ds: Dataset) -> Dataset:
    seq = ds.get("RadiopharmaceuticalInformationSequence")
    return seq[0] if seq else Dataset()


def _check_series(slices: list[_Slice], source: str, assumptions: Assumptions) -> None:
    seen: dict[str, str] = {}
    for s in slices:
        sop = _text(s.ds, "SOPInstanceUID")
        if sop is not None and sop in seen:
            raise InconsistentSeriesError(
                tag_name("SOPInstanceUID"),
                "the same instance is in two files",
                [seen[sop], s.name],
                "remove the duplicate copy",
                source,
            )
        if sop is not None:
            seen[sop] = s.name
    split = "separate the series into their own folders (one series per folder)"
    for_uid = _one_value(
        slices,
        "FrameOfReferenceUID",
        lambda ds: _text(ds, "FrameOfReferenceUID"),
        "the files belong to different frames of reference (scanner coordinate systems); " + split,
        source,
    )
    if for_uid is None:
        assumptions.allow(
            MissingFieldError(
                tag_name("FrameOfReferenceUID"),
                "absent",
                None,
                "re-export the series; lenient mode takes the files to share one frame",
                source,
            ),
            "the files were taken to share one frame of reference",
        )
    _one_value(slices, "SOPClassUID", lambda ds: _text(ds, "SOPClassUID"), split, source)
    for kw in ("Rows", "Columns"):
        _one_value(slices, kw, lambda ds, kw=kw: _text(ds, kw), split, source)
    for kw in ("PatientWeight", "PatientSize", "PatientSex"):
        _one_value(
            slices,
            kw,
            lambda ds, kw=kw: _text(ds, kw),
            "the files disagree on the patient; " + split,
            source,
        )


# ---------------------------------------------------------------- geometry


def _floats(s: _Slice, keyword: str, n: int) -> np.ndarray:
    v = s.ds.get(keyword)
    what = "absent" if v is None or str(v).strip() == "" else None
    if what is None:
        try:
            arr = np.array([float(x) for x in v], dtype=np.float64)
        except (TypeError, ValueError):
            arr = np.array([], dtype=np.float64)
        if arr.size != n or not np.all(np.isfinite(arr)):
            what = f"must hold {n} finite numbers"
        else:
            return arr
    raise GeometryError(
        tag_name(keyword),
        what,
        None if v is None else str(v),
        "the file has no volume geometry (localizer, secondary capture?); remove it, or "
        "re-export the series with Image Position/Orientation (Patient) and Pixel Spacing",
        s.name,
    )


def _geometry(slices: list[_Slice], source: str) -> tuple[list[_Slice], np.ndarray, str]:
    iop = [_floats(s, "ImageOrientationPatient", 6) for s in slices]
    ipp = np.array([_floats(s, "ImagePositionPatient", 3) for s in slices])
    ps = [_floats(s, "PixelSpacing", 2) for s in slices]
    split = "the folder mixes volumes; split them into separate folders"
    for k in range(1, len(slices)):
        if not np.allclose(iop[k], iop[0], atol=_ORIENTATION_ATOL, rtol=0):
            raise InconsistentSeriesError(
                tag_name("ImageOrientationPatient"),
                "differs between slices",
                {slices[0].name: iop[0].tolist(), slices[k].name: iop[k].tolist()},
                split,
                source,
            )
        if not np.allclose(ps[k], ps[0], rtol=_SPACING_RTOL, atol=0):
            raise InconsistentSeriesError(
                tag_name("PixelSpacing"),
                "differs between slices",
                {slices[0].name: ps[0].tolist(), slices[k].name: ps[k].tolist()},
                split,
                source,
            )
    row, col = iop[0][:3], iop[0][3:]
    if (
        abs(np.linalg.norm(row) - 1) > 1e-3
        or abs(np.linalg.norm(col) - 1) > 1e-3
        or abs(row @ col) > 1e-3
    ):
        raise GeometryError(
            tag_name("ImageOrientationPatient"),
            "row and column direction cosines are not orthonormal",
            iop[0].tolist(),
            "re-export the series; the orientation is corrupt",
            slices[0].name,
        )
    if np.any(ps[0] <= 0):
        raise GeometryError(
            tag_name("PixelSpacing"),
            "must be positive",
            ps[0].tolist(),
            "re-export the series",
            slices[0].name,
        )
    normal = np.cross(row, col)
    normal /= np.linalg.norm(normal)
    proj = ipp @ normal
    order = np.argsort(proj, kind="stable")
    slices = [slices[i] for i in order]
    ipp, proj = ipp[order], proj[order]
    n = len(slices)

    affine = np.eye(4)
    affine[:3, 1] = col * ps[0][0]
    affine[:3, 2] = row * ps[0][1]
    affine[:3, 3] = ipp[0]

    if n == 1:
        s = slices[0]
        for kw in ("SpacingBetweenSlices", "SliceThickness"):
            v = _text(s.ds, kw)
            try:
                thickness = abs(float(v)) if v is not None else 0.0
            except ValueError:
                thickness = 0.0
            if thickness > 0 and math.isfinite(thickness):
                affine[:3, 0] = normal * thickness
                return (
                    slices,
                    affine,
                    f"single slice: slice step {thickness:g} mm from {tag_name(kw)}",
                )
        raise GeometryError(
            tag_name("SliceThickness"),
            "a single slice needs a thickness (Spacing Between Slices or Slice Thickness)",
            None,
            "re-export with Slice Thickness, or read the whole series folder",
            s.name,
        )

    steps = np.diff(proj)
    dup = np.flatnonzero(steps < _DUPLICATE_MM)
    if dup.size:
        i = int(dup[0])
        count = int(dup.size) + 1
        raise GeometryError(
            tag_name("ImagePositionPatient"),
            f"duplicate slice positions: {slices[i].name} and {slices[i + 1].name} lie at "
            f"{proj[i]:.3f} mm along the slice normal ({count} slices share positions)",
            ipp[i].tolist(),
            "the folder holds several volumes (time frames, echoes, phases, repeats); "
            "split them into separate folders (e.g. by Acquisition Number, Temporal "
            "Position Identifier or Echo Numbers)",
            source,
        )
    # lower median: the spacing of most steps, and the smaller one of two
    expected = float(np.quantile(steps, 0.5, method="lower"))
    bad = np.flatnonzero(np.abs(steps - expected) > _STEP_REL * expected + _STEP_ABS_MM)
    if bad.size:
        i = int(bad[0])
        found = float(steps[i])
        kind = (
            f"slice gap (about {round(found / expected) - 1} missing slice(s))"
            if found > 1.5 * expected
            else "non-uniform slice spacing"
        )
        raise GeometryError(
            tag_name("ImagePositionPatient"),
            f"{kind}: expected spacing {expected:.4g} mm, found {found:.4g} mm between sorted "
            f"slices {i} and {i + 1} ({slices[i].name}, {slices[i + 1].name})",
            None,
            "re-export the complete series, or split it where the spacing changes; "
            "theranet does not interpolate missing slices (in strict or lenient mode) "
            "because a gap changes the geometry",
            source,
        )
    uniform = proj[0] + np.arange(n) * (proj[-1] - proj[0]) / (n - 1)
    drift = np.abs(proj - uniform)
    if drift.max() > _DRIFT_REL * expected:
        k = int(np.argmax(drift))
        raise GeometryError(
            tag_name("ImagePositionPatient"),
            f"non-uniform slice spacing: slice {k} ({slices[k].name}) is {drift[k]:.3g} mm "
            f"from a uniform grid of spacing {expected:.4g} mm",
            None,
            "re-export the series; theranet does not resample irregular slice stacks",
            source,
        )
    offsets = ipp - ipp[0]
    along = offsets @ normal
    sideways = np.linalg.norm(offsets - np.outer(along, normal), axis=1)
    tilted = np.flatnonzero(sideways > _TILT_ABS_MM + _TILT_REL * np.abs(along))
    if tilted.size:
        k = int(tilted[-1])
        angle = math.degrees(math.atan2(sideways[k], abs(along[k])))
        raise GeometryError(
            tag_name("ImagePositionPatient"),
            f"slices are not stacked along the slice normal: slice {k} ({slices[k].name}) "
            f"is {sideways[k]:.3g} mm sideways, {angle:.2f} degrees off the normal "
            "(gantry tilt or shifted slices)",
            None,
            "resample the series onto an orthogonal grid first (e.g. dcm2niix tilt "
            "correction) and read the result as NIfTI; theranet does not read tilted series",
            source,
        )
    affine[:3, 0] = (ipp[-1] - ipp[0]) / (n - 1)
    step = (
        f"{n} slices sorted along the slice normal {np.round(normal, 6).tolist()}; "
        f"spacing {np.linalg.norm(affine[:3, 0]):.6g} mm, pixel spacing "
        f"{ps[0][0]:g} x {ps[0][1]:g} mm"
    )
    return slices, affine, step


# ---------------------------------------------------------------- values


def _rescale(s: _Slice, keyword: str, default: float) -> tuple[float, bool]:
    v = _text(s.ds, keyword)
    if v is None:
        return default, False
    try:
        x = float(v)
    except ValueError:
        x = float("nan")
    if not math.isfinite(x) or (keyword == "RescaleSlope" and x == 0):
        raise ImageDataError(
            tag_name(keyword),
            "must be a finite number" + (" other than 0" if keyword == "RescaleSlope" else ""),
            v,
            "re-export the series; the values cannot be scaled",
            s.name,
        )
    return x, True


def _values(
    slices: list[_Slice],
    modality: str,
    source: str,
    assumptions: Assumptions,
    steps: list[str],
) -> np.ndarray:
    for kw in ("Rows", "Columns"):
        if _text(slices[0].ds, kw) is None:
            raise DicomReadError(
                tag_name(kw), "absent", None, "re-export the series", slices[0].name
            )
    rows, cols = int(slices[0].ds.Rows), int(slices[0].ds.Columns)
    data = np.empty((len(slices), rows, cols), dtype=np.float64)
    missing = []
    slopes = []
    for k, s in enumerate(slices):
        arr = pixel_array(s.ds, s.name)
        if arr.shape != (rows, cols):
            raise DicomReadError(
                tag_name("PixelData"),
                f"decoded to shape {arr.shape}, expected (Rows, Columns) = ({rows}, {cols}); "
                "colour or multi-frame data are not supported",
                None,
                "re-export as single-frame greyscale images",
                s.name,
            )
        slope, has_slope = _rescale(s, "RescaleSlope", 1.0)
        intercept, has_intercept = _rescale(s, "RescaleIntercept", 0.0)
        if not (has_slope and has_intercept):
            missing.append(s.name)
        slopes.append(slope)
        data[k] = arr.astype(np.float64) * slope + intercept
    if missing:
        if modality == "MR":
            steps.append(
                f"no Rescale Slope/Intercept in {len(missing)} file(s): stored values used"
            )
        else:
            assumptions.allow(
                MissingFieldError(
                    f"{tag_name('RescaleSlope')}/{tag_name('RescaleIntercept')}",
                    f"absent in {len(missing)} file(s) (Type 1 in the {modality} image module)",
                    missing[0],
                    "re-export the series with its Modality LUT, or read it with "
                    "strictness='lenient' to assume slope 1 and intercept 0",
                    source,
                ),
                "Rescale Slope 1 and Intercept 0 assumed (identity Modality LUT)",
            )
    lo, hi = min(slopes), max(slopes)
    steps.append(
        "Rescale Slope/Intercept applied per slice"
        + (f" (slopes {lo:.6g} to {hi:.6g})" if lo != hi else f" (slope {lo:.6g})")
    )
    if any("RealWorldValueMappingSequence" in s.ds for s in slices):
        steps.append(
            f"{tag_name('RealWorldValueMappingSequence')} present and not used "
            "(values from Rescale Slope/Intercept)"
        )
    if modality == "CT":
        rtype = _one_value(
            slices, "RescaleType", lambda ds: _text(ds, "RescaleType"), "split the series", source
        )
        if rtype is None:
            steps.append("CT values taken as HU (Rescale Type absent, which means HU)")
        elif str(rtype).upper() != "HU":
            assumptions.allow(
                UnitError(
                    tag_name("RescaleType"),
                    "CT values are not in HU",
                    rtype,
                    "convert the series to HU, or read it with strictness='lenient' to take "
                    "the values as HU",
                    source,
                ),
                f"CT values taken as HU (Rescale Type {rtype})",
            )
        else:
            steps.append("CT values in HU (Rescale Type HU)")
    return data


def _check_finite(data: np.ndarray, slices: list[_Slice], source: str) -> None:
    with np.errstate(invalid="ignore"):
        bad = ~np.isfinite(data) | (np.abs(data) > np.finfo(np.float32).max)
    if bad.any():
        k, r, c = (int(i) for i in np.argwhere(bad)[0])
        kw = next((kw for kw in _PIXEL_KEYWORDS if kw in slices[k].ds), "PixelData")
        raise ImageDataError(
            tag_name(kw),
            f"{int(bad.sum())} NaN or infinite value(s) after Rescale Slope/Intercept, "
            f"first in {slices[k].name} at (row {r}, column {c})",
            None,
            "repair or re-export the series; non-finite voxels cannot be quantified and are "
            "refused in strict and lenient mode",
            source,
        )


# ---------------------------------------------------------------- header values


def _header_float(ds: Dataset, keyword: str) -> float | None:
    v = _text(ds, keyword)
    if v is None:
        return None
    try:
        return float(v)
    except ValueError:
        return float("nan")


# ---------------------------------------------------------------- PET


def _datetime(ds: Dataset, date_kw: str, time_kw: str, name: str) -> datetime | None:
    """``dicom_datetime`` with the attribute and file named when a value is malformed."""
    try:
        return dicom_datetime(ds, date_kw, time_kw)
    except TimingError as exc:
        raise TimingError(
            f"{tag_name(date_kw)}/{tag_name(time_kw)}",
            exc.problem,
            exc.value,
            "correct the header (DA is YYYYMMDD, TM is HHMMSS.FFFFFF)",
            name,
        ) from None


def _parse_dt_aware(value: str, field: str, name: str) -> datetime:
    """``parse_dt`` (aware when the DT has a UTC offset), naming the field when malformed."""
    try:
        return parse_dt(value)
    except TimingError as exc:
        raise TimingError(
            field, exc.problem, value, "correct the header (DT is YYYYMMDDHHMMSS.FFFFFF)", name
        ) from None


def _parse_dt_named(value: str, field: str, name: str) -> datetime:
    return _parse_dt_aware(value, field, name).replace(tzinfo=None)


def _acquisition_datetime(s: _Slice, assumptions: Assumptions, steps: list[str]) -> datetime | None:
    t = _datetime(s.ds, "AcquisitionDate", "AcquisitionTime", s.name)
    if t is None:
        dt = _text(s.ds, "AcquisitionDateTime")
        if dt is not None:
            field = tag_name("AcquisitionDateTime")
            t = naive_local(
                _parse_dt_aware(dt, field, s.name), s.ds, field, assumptions, steps=steps
            )
    return t


def _acquisition_datetimes(
    slices: list[_Slice], assumptions: Assumptions, steps: list[str]
) -> list[datetime | None]:
    """Acquisition start of each slice as naive local time.

    Acquisition Date/Time, else Acquisition DateTime (0008,002A); a DT with a UTC
    offset is converted to the slice's Timezone Offset From UTC (0008,0201), else
    its offset is dropped and noted (:func:`naive_local`, as for NM). Recorded
    once per series, not once per slice.
    """
    trial = Assumptions(assumptions.strictness)
    tz_steps: list[str] = []
    out = [_acquisition_datetime(s, trial, tz_steps) for s in slices]
    for record in dict.fromkeys(trial.records):
        assumptions.note(record)
    if tz_steps:
        more = len(tz_steps) - 1
        steps.append(tz_steps[0] + (f" (and {more} more file(s) likewise)" if more else ""))
    return out


def _private(ds: Dataset, group: int, creator: str, offset: int) -> str | None:
    try:
        block = ds.private_block(group, creator)
        elem = block[offset]
    except KeyError:
        return None
    v = elem.value
    if isinstance(v, bytes):
        v = v.decode("ascii", "replace").strip("\x00 ")
    s = str(v).strip()
    return s or None


def _pet_units(slices, source, units, steps) -> str:
    header = _one_value(
        slices,
        "Units",
        lambda ds: (_text(ds, "Units") or "").upper() or None,
        "split the series",
        source,
    )
    if units is not None:
        u = str(units).strip().upper()
        if u not in _PET_UNITS:
            raise UnitError("units", "unknown PET unit", units, "use 'BQML', 'CNTS' or 'GML'")
        steps.append(f"Units {u} from the units argument (header: {header or 'absent'})")
        return u
    if header is None:
        raise UnitError(
            tag_name("Units"),
            "absent: the unit of the PET values is unknown and no unit is assumed "
            "(strict or lenient)",
            None,
            "pass units='BQML' (Bq/mL), 'CNTS' or 'GML' if you know it (CLI --units)",
            source,
        )
    if header not in _PET_UNITS:
        raise UnitError(
            tag_name("Units"),
            "not supported (BQML, CNTS or GML)",
            header,
            "convert the series to Bq/mL, or pass units=... if the values are in one of those",
            source,
        )
    return header


_PHILIPS_ACTIVITY_FACTOR = "Philips Activity Concentration Scale Factor (7053,1009)"
_PHILIPS_SUV_FACTOR = "Philips SUV Scale Factor (7053,1000)"


def _philips_factors(
    slices: list[_Slice], offset: int, name: str, source: str, *, zero_is_absent: bool = False
) -> np.ndarray | None:
    """Per-slice Philips PET private factor; None when no slice has it.

    Present in some slices only, not a number, or not positive (0 counts as
    absent with ``zero_is_absent``, as in cornerstone calculate-suv) is an error.
    """
    raw = [_private(s.ds, 0x7053, _PHILIPS_PET_CREATOR, offset) for s in slices]
    if zero_is_absent:
        raw = [None if r is not None and _is_zero(r) else r for r in raw]
    if all(r is None for r in raw):
        return None
    if any(r is None for r in raw):
        raise InconsistentSeriesError(
            name, "present in some files only", slices[raw.index(None)].name,
            "re-export the series", source,
        )  # fmt: skip
    try:
        values = np.array([float(r) for r in raw], dtype=np.float64)  # type: ignore[arg-type]
    except ValueError:
        values = np.array([np.nan])
    if not np.all(np.isfinite(values) & (values > 0)):
        raise UnitError(
            name,
            "must be a positive number",
            raw[0],
            "re-export the series, or pass units='CNTS' and calibrate the counts yourself",
            source,
        )
    return values


def _is_zero(text: str) -> bool:
    try:
        return float(text) == 0.0
    except ValueError:
        return False


def _shown_factors(values: np.ndarray) -> str:
    lo, hi = values.min(), values.max()
    return f"{lo:.6g}" if lo == hi else f"{lo:.6g} to {hi:.6g} (per slice)"


def _apply_units(slices, data, u, source, steps) -> tuple[Quantity, np.ndarray]:
    """Rescaled values -> the quantity of Units (0054,1001) (clinical.md §4.1).

    ``CNTS``: with the Philips Activity Concentration Scale Factor (7053,1009)
    the values become Bq/mL (then MBq/mL), from which SUV is computed as for
    ``BQML``; with only the Philips SUV Scale Factor (7053,1000) they become
    SUVbw as the scanner computed it (cornerstone calculate-suv); with neither
    they stay counts. Factors are applied per slice.
    """
    if u == "BQML":
        steps.append("Units BQML: Bq/mL x 1e-6 -> MBq/mL")
        return Quantity.ACTIVITY_CONCENTRATION, data * 1e-6
    if u == "GML":
        steps.append("Units GML: values are SUVbw (g/mL) as written by the scanner")
        return Quantity.SUVBW, data
    activity = _philips_factors(slices, 0x09, _PHILIPS_ACTIVITY_FACTOR, source)
    suv = _philips_factors(slices, 0x00, _PHILIPS_SUV_FACTOR, source, zero_is_absent=True)
    if activity is not None:
        steps.append(
            f"Units CNTS with {_PHILIPS_ACTIVITY_FACTOR} = {_shown_factors(activity)}: "
            "rescaled counts x factor -> Bq/mL, x 1e-6 -> MBq/mL"
            + (f"; {_PHILIPS_SUV_FACTOR} present, not used" if suv is not None else "")
        )
        return Quantity.ACTIVITY_CONCENTRATION, data * activity[:, None, None] * 1e-6
    if suv is not None:
        steps.append(
            f"Units CNTS with {_PHILIPS_SUV_FACTOR} = {_shown_factors(suv)} (no "
            f"{_PHILIPS_ACTIVITY_FACTOR}): rescaled counts x factor -> SUVbw (g/mL), as the "
            "scanner computed it from its header weight, dose and times"
        )
        return Quantity.SUVBW, data * suv[:, None, None]
    steps.append(
        f"Units CNTS: values are counts (no {_PHILIPS_ACTIVITY_FACTOR} or {_PHILIPS_SUV_FACTOR});"
        " calibrate with to_activity_concentration"
    )
    return Quantity.COUNTS, data


def _pet(
    slices: list[_Slice],
    data: np.ndarray,
    source: str,
    assumptions: Assumptions,
    steps: list[str],
    *,
    injection: datetime | None,
    administered_activity_mbq: float | None,
    nuclide: str | None,
    units: str | None,
    decay_correction: str | None,
):
    ds0 = slices[0].ds
    split = "the files do not share series-level PET metadata; split or re-export the series"
    for kw in ("SeriesDate", "SeriesTime", "DecayCorrection"):
        _one_value(slices, kw, lambda ds, kw=kw: _text(ds, kw), split, source)
    _one_value(slices, "CorrectedImage", lambda ds: _multi(ds, "CorrectedImage"), split, source)
    for kw in (
        "RadiopharmaceuticalStartDateTime",
        "RadiopharmaceuticalStartTime",
        "RadionuclideTotalDose",
        "RadionuclideHalfLife",
    ):
        _one_value(slices, kw, lambda ds, kw=kw: _text(_rp_item(ds), kw), split, source)

    # -- units
    u = _pet_units(slices, source, units, steps)
    quantity, data = _apply_units(slices, data, u, source, steps)

    # -- corrections applied by the scanner
    flags = _multi(ds0, "CorrectedImage")
    upper = {x.upper() for x in flags or ()}
    lacking = [f for f in ("ATTN", "DECY") if f not in upper]
    step = CORRECTED_IMAGE_STEP + ("\\".join(flags) if flags else "(absent)")
    if lacking:
        step += f"; lacks {' and '.join(lacking)}"
    steps.append(step)

    # -- decay-correction state
    dc_header = (_text(ds0, "DecayCorrection") or "").upper() or None
    if decay_correction is not None:
        dc = str(decay_correction).strip().upper()
        if dc not in _DECAY_CORRECTIONS:
            raise TimingError(
                "decay_correction", "unknown value", decay_correction, "use START, ADMIN or NONE"
            )
        steps.append(
            f"DecayCorrection {dc} from the decay_correction argument "
            f"(header: {dc_header or 'absent'})"
        )
    elif dc_header is None:
        raise TimingError(
            tag_name("DecayCorrection"),
            "absent: the instant the PET values refer to is unknown",
            None,
            "pass decay_correction='START', 'ADMIN' or 'NONE' if you know it",
            source,
        )
    elif dc_header not in _DECAY_CORRECTIONS:
        raise TimingError(
            tag_name("DecayCorrection"),
            "not a defined term (START, ADMIN, NONE)",
            dc_header,
            "pass decay_correction='START', 'ADMIN' or 'NONE'",
            source,
        )
    else:
        dc = dc_header
    _note_corrections(upper, dc, assumptions)

    # -- scan times
    t_series = _datetime(ds0, "SeriesDate", "SeriesTime", slices[0].name)
    acq = _acquisition_datetimes(slices, assumptions, steps)
    known = [t for t in acq if t is not None]
    t_acq_min = min(known) if known else None
    if dc == "NONE":
        if len(known) < len(acq):
            k = acq.index(None)
            raise TimingError(
                tag_name("AcquisitionTime"),
                "absent in a slice of a series without decay correction",
                slices[k].name,
                "re-export the series with Acquisition Date/Time on every slice",
                source,
            )
        t_scan, scan_src = t_acq_min, "earliest AcquisitionDate/AcquisitionTime"
    else:
        t_scan, scan_src = _scan_reference(slices[0], t_series, t_acq_min)
    if t_scan is None:
        assumptions.allow(
            TimingError(
                f"{tag_name('SeriesTime')}/{tag_name('AcquisitionTime')}",
                "absent: the acquisition start is unknown",
                None,
                "re-export the series with Series and Acquisition Date/Time",
                source,
            ),
            "acquisition start left unknown; no decay correction or SUV can use it",
        )
    else:
        steps.append(f"scan reference time {t_scan.isoformat()} from {scan_src}")

    admin = administration(
        ds0,
        t_scan,
        assumptions,
        steps,
        injection=injection,
        administered_activity_mbq=administered_activity_mbq,
        nuclide=nuclide,
        source=source,
    )
    inj, hdr_inj, nuc = admin.injection, admin.header_injection, admin.nuclide
    if dc == "START":
        _check_decay_factor(slices, nuc, source, assumptions, steps)

    # -- frame duration(s)
    durations = [_header_float(s.ds, "ActualFrameDuration") for s in slices]
    durations_h = [
        d / 3.6e6 if d is not None and math.isfinite(d) and d >= 0 else None for d in durations
    ]
    frame_h = durations_h[0] if len(set(durations_h)) == 1 else None

    # -- state
    reference = None
    if dc == "NONE":
        frame_h = _none_to_common_frame(
            slices, data, acq, durations_h, nuc, source, assumptions, steps
        )
        state = DecayCorrection.NONE
        t_start = t_acq_min
    else:
        if frame_h is None and any(d is not None for d in durations_h):
            known_d = [d for d in durations_h if d is not None]
            steps.append(
                f"{tag_name('ActualFrameDuration')} differs between slices "
                f"({min(known_d):.4g} to {max(known_d):.4g} h); frame duration left unknown"
            )
        t_start = t_scan
        if dc == "START":
            state = DecayCorrection.START
            steps.append("DecayCorrection START: values refer to the scan reference time")
        elif injection is not None and hdr_inj is not None and hdr_inj != inj:
            # the scanner corrected to the header's injection time, not to ours
            state, reference = DecayCorrection.REFERENCE, hdr_inj
            steps.append(
                f"DecayCorrection ADMIN: values refer to the header injection time "
                f"{hdr_inj.isoformat()} (kept as the REFERENCE state, since the injection "
                "argument differs)"
            )
        else:
            state = DecayCorrection.ADMIN
            steps.append("DecayCorrection ADMIN: values refer to the injection time")
            if injection is not None and hdr_inj is None:
                assumptions.note(
                    "DecayCorrection ADMIN without a header injection time: the scanner is "
                    "taken to have corrected to the injection argument"
                )

    timing = Timing(
        acquisition_start=t_start,
        frame_duration_h=frame_h,
        injection=inj,
        administered_activity_mbq=admin.activity_mbq,
        decay_correction=state,
        reference=reference,
        injection_source=admin.injection_source,
    )
    corrections = frozenset(x.upper() for x in flags or ())
    return quantity, data, timing, nuc, admin.tracer, corrections


def _note_corrections(flags: set[str], dc: str, assumptions: Assumptions) -> None:
    """Record Corrected Image (0028,0051) gaps that make SUV refused (clinical.md §4.1).

    ATTN is always needed; DECY when the scanner decay-corrected (START,
    ADMIN). For NONE, DECY is not expected (listing it contradicts
    Decay Correction, noted) and the values are decay-corrected here.
    """
    lacking = [f for f in ("ATTN", "DECY") if f not in flags]
    if dc == "NONE":
        if "DECY" in flags:
            assumptions.note(
                f"{tag_name('CorrectedImage')} lists DECY while {tag_name('DecayCorrection')} "
                "is NONE; the values are taken as not decay-corrected"
            )
        lacking = [f for f in lacking if f != "DECY"]
    if lacking:
        assumptions.note(
            f"{tag_name('CorrectedImage')}: lacks {' and '.join(lacking)}; the values are "
            "not fully corrected and SUV is refused (Image.to_suv)"
        )


def _check_decay_factor(
    slices: list[_Slice],
    nuc: str | None,
    source: str,
    assumptions: Assumptions,
    steps: list[str],
) -> None:
    """Decay Factor (0054,1321) against Frame Reference Time (0054,1300) (clinical.md §4.2).

    A scanner that decay-corrects to the series reference time (START) scales
    slice ``k`` by ``DF_k = 2^(FRT_k / T½)``, ``FRT_k`` the offset (ms) of the
    slice's values from that time. When both are on every slice,
    ``|DF_k / 2^(FRT_k / T½) - 1| <= 1e-3`` is required, with the ICRP-107
    half-life of the nuclide (the header half-life when the nuclide is
    unknown). A failure is :data:`~theranet.image.DECAY_FACTOR_INCONSISTENT`:
    refused when strict; when lenient the values are kept, the failure is
    recorded, and :meth:`~theranet.image.Image.to_suv` refuses SUV.
    """
    frt = [_header_float(s.ds, "FrameReferenceTime") for s in slices]
    df = [_header_float(s.ds, "DecayFactor") for s in slices]
    tags = f"{tag_name('DecayFactor')} and {tag_name('FrameReferenceTime')}"
    if all(v is None for v in frt + df):
        return
    if any(v is None for v in frt + df):
        steps.append(f"{tags} not on every slice: their consistency is not checked")
        return
    if nuc is not None:
        from theranet.nuclides import Nuclide

        half_life_h, hl_src = Nuclide(nuc).half_life_h, f"ICRP-107 half-life of {nuc}"
    else:
        hl_s = _header_float(_rp_item(slices[0].ds), "RadionuclideHalfLife")
        if hl_s is None or not (math.isfinite(hl_s) and hl_s > 0):
            steps.append(f"{tags}: half-life unknown, their consistency is not checked")
            return
        half_life_h, hl_src = hl_s / 3600.0, f"header {tag_name('RadionuclideHalfLife')}"
    frt_ms = np.array(frt, dtype=np.float64)
    factor = np.array(df, dtype=np.float64)
    expected = np.exp2(frt_ms / 3.6e6 / half_life_h)
    with np.errstate(invalid="ignore"):
        rel = np.abs(factor / expected - 1.0)
        bad = np.flatnonzero(~(rel <= _DECAY_FACTOR_RTOL))
    if bad.size == 0:
        steps.append(
            f"{tags} consistent on all {len(slices)} slices: Decay Factor = "
            f"2^(FrameReferenceTime / T½) with the {hl_src} (largest relative difference "
            f"{rel.max():.2g} <= {_DECAY_FACTOR_RTOL:g})"
        )
        return
    k = int(bad[0])
    assumptions.allow(
        TimingError(
            tag_name("DecayFactor"),
            f"{DECAY_FACTOR_INCONSISTENT}: {factor[k]:.6g} in {slices[k].name}, but "
            f"2^(FrameReferenceTime / T½) = 2^({frt_ms[k]:.6g} ms / "
            f"{half_life_h * 3.6e6:.6g} ms) = {expected[k]:.6g} with the {hl_src} "
            f"(relative difference {rel[k]:.3g} > {_DECAY_FACTOR_RTOL:g}; "
            f"{bad.size} slice(s))",
            df[k],
            "the vendor reference time or half-life is in doubt: check and re-export the "
            "series, or read with strictness='lenient' to keep the values (SUV is then "
            "refused)",
            source,
        ),
        "values kept as decay-corrected to the scan reference time; SUV is refused",
    )


def _scan_reference(
    first: _Slice, t_series: datetime | None, t_acq_min: datetime | None
) -> tuple[datetime | None, str]:
    """Series vs Acquisition time rule (clinical.md §4.2, QIBA/cornerstone)."""
    if t_series is None:
        return t_acq_min, "earliest AcquisitionDate/AcquisitionTime (Series Date/Time absent)"
    if t_acq_min is None:
        return t_series, "SeriesDate/SeriesTime (Acquisition Date/Time absent)"
    if t_series <= t_acq_min:
        return t_series, "SeriesDate/SeriesTime (not after the earliest AcquisitionTime)"
    ge = _private(first.ds, 0x0009, _GE_PET_CREATOR, 0x0D)
    if ge is not None:
        return (
            _parse_dt_named(ge, "GE private post-injection DateTime (0009,100D)", first.name),
            "GE private post-injection DateTime (0009,100D) (SeriesTime is after the "
            "earliest AcquisitionTime)",
        )
    return (
        t_acq_min,
        "earliest AcquisitionDate/AcquisitionTime (SeriesTime is after it: series "
        "re-created after the scan)",
    )


def _none_to_common_frame(
    slices: list[_Slice],
    data: np.ndarray,
    acq: list[datetime],
    durations_h: list[float | None],
    nuc: str | None,
    source: str,
    assumptions: Assumptions,
    steps: list[str],
) -> float | None:
    """Bring the slices of an uncorrected series to one frame; return its duration, h.

    Slice ``k`` holds the mean activity over ``[t_k, t_k + T_k]``. With ``A0`` the
    activity at ``t0 = min t_k``, that is ``A0 e^{-λ(t_k - t0)} g(T_k)`` with
    ``g(T) = (1 - e^{-λT}) / (λT)``. The value for the frame ``[t0, t0 + T0]``
    (``T0``: the duration of the earliest slice) is ``A0 g(T0)``, so slice ``k``
    is multiplied by ``e^{λ(t_k - t0)} g(T0) / g(T_k)`` (``e^{λ(t_k - t0)}`` when
    the durations are equal, whatever they are). Modifies ``data`` in place.
    """
    t0 = min(acq)
    k0 = acq.index(t0)
    same_times = len(set(acq)) == 1
    same_durations = len(set(durations_h)) == 1
    if same_times and same_durations:
        steps.append(
            f"DecayCorrection NONE: values as measured over the frame starting {t0.isoformat()}"
        )
        return durations_h[k0]
    if not same_durations and any(d is None for d in durations_h):
        raise TimingError(
            tag_name("ActualFrameDuration"),
            "absent in some slices of an uncorrected series with several frames",
            slices[durations_h.index(None)].name,
            "re-export the series with Actual Frame Duration on every slice",
            source,
        )
    if nuc is None:
        raise MissingFieldError(
            "nuclide",
            "unknown, needed to bring the slices of an uncorrected PET series, acquired at "
            "different times, to one frame",
            None,
            "pass nuclide='F-18' (the tracer's nuclide; CLI --nuclide)",
            source,
        )
    from theranet.nuclides import Nuclide

    nuclide = Nuclide(nuc)
    lam = nuclide.decay_constant_per_h

    def g(t_h: float) -> float:
        x = lam * t_h
        return 1.0 if x < 1e-12 else -math.expm1(-x) / x

    if durations_h[k0] is None:
        assumptions.note(
            f"{tag_name('ActualFrameDuration')} absent: bed frames taken to have equal durations"
        )
    t_ref = durations_h[k0]
    factors = np.empty(len(slices))
    for k, tk in enumerate(acq):
        f = math.exp(lam * (tk - t0).total_seconds() / 3600.0)
        if not same_durations:
            f *= g(t_ref) / g(durations_h[k])
        factors[k] = f
    data *= factors[:, None, None]
    steps.append(
        "DecayCorrection NONE with per-slice frames: slices decay-corrected with the "
        f"ICRP-107 half-life of {nuc} ({nuclide.half_life_h:.6g} h) to the frame starting "
        f"{t0.isoformat()}"
        + (f" lasting {t_ref:.6g} h" if t_ref is not None else "")
        + f" (factors {factors.min():.6g} to {factors.max():.6g})"
    )
    return t_ref
