"""Writers of synthetic single-frame CT, MR and PET DICOM series for the tests.

Everything is synthetic: deterministic UIDs (``generate_uid`` with entropy
sources), ``PatientName = "ANON^SYNTHETIC"``, no real dates of birth or IDs.

Geometry is given as the array-order affine of :class:`theranet.image.Image`
(column 0: slice step, column 1: step down the rows, column 2: step along a
row, translation: centre of voxel (0, 0, 0), LPS mm); the writers derive Image
Position/Orientation (Patient) and Pixel Spacing from it, so a reader that gets
the affine back from the files has inverted them.

Keyword overrides set an attribute (by DICOM keyword) on every slice; ``None``
deletes it. ``per_slice(index, ds)`` edits slice ``index`` (in z order) last.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from pydicom.valuerep import format_number_as_ds

__all__ = [
    "CT_SOP",
    "ENHANCED_PET_SOP",
    "F18_CODE",
    "MR_SOP",
    "PET_SOP",
    "write_ct_series",
    "write_pet_series",
]

CT_SOP = "1.2.840.10008.5.1.4.1.1.2"
MR_SOP = "1.2.840.10008.5.1.4.1.1.4"
PET_SOP = "1.2.840.10008.5.1.4.1.1.128"
ENHANCED_PET_SOP = "1.2.840.10008.5.1.4.1.1.130"

F18_CODE = ("SCT", "77004003", "^18^Fluorine")
_GE_CREATOR = "GEMS_PETD_01"
_PHILIPS_CREATOR = "Philips PET Private Group"

PerSlice = Callable[[int, Dataset], None] | None


def _ds(x: float) -> str:
    return format_number_as_ds(float(x))


def _uid(seed: str, *parts: object) -> str:
    return generate_uid(entropy_srcs=[seed, *map(str, parts)])


def _da(dt: datetime) -> str:
    return dt.strftime("%Y%m%d")


def _tm(dt: datetime) -> str:
    return dt.strftime("%H%M%S.%f")


def _dt(dt: datetime) -> str:
    return dt.strftime("%Y%m%d%H%M%S.%f")


def _geometry(affine: np.ndarray, nz: int) -> tuple[list[str], list[str], list[list[str]]]:
    """(PixelSpacing, ImageOrientationPatient, ImagePositionPatient per slice) as DS."""
    a = np.asarray(affine, dtype=np.float64)
    step_rows, step_cols = a[:3, 1], a[:3, 2]
    ps_row, ps_col = np.linalg.norm(step_rows), np.linalg.norm(step_cols)
    iop = [*(step_cols / ps_col), *(step_rows / ps_row)]
    ipp = [[_ds(v) for v in a[:3, 3] + k * a[:3, 0]] for k in range(nz)]
    return [_ds(ps_row), _ds(ps_col)], [_ds(v) for v in iop], ipp


def _pixels(ds: Dataset, plane: np.ndarray, *, float_pixels: bool) -> None:
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = plane.shape
    if float_pixels:
        ds.BitsAllocated = 32
        ds.FloatPixelData = np.ascontiguousarray(plane, dtype="<f4").tobytes()
        return
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1
    ds.PixelData = np.ascontiguousarray(plane, dtype="<i2").tobytes()


def _apply(ds: Dataset, overrides: dict) -> None:
    for kw, value in overrides.items():
        if value is None:
            if kw in ds:
                delattr(ds, kw)
        else:
            setattr(ds, kw, value)


def _write(
    folder: str | Path,
    slices: list[Dataset],
    *,
    order: str,
    prefix: str,
    per_slice: PerSlice,
) -> list[Path]:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    n = len(slices)
    paths: list[Path | None] = [None] * n
    for k, ds in enumerate(slices):
        if per_slice is not None:
            per_slice(k, ds)
        file_index = k if order == "forward" else n - 1 - k
        if "InstanceNumber" not in ds:
            ds.InstanceNumber = file_index + 1
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = ds.SOPClassUID
        meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.file_meta = meta
        path = folder / f"{prefix}{file_index:04d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths[k] = path
    return [p for p in paths if p is not None]


def _common(
    *,
    sop_class: str,
    modality: str,
    seed: str,
    k: int,
    series_datetime: datetime,
    acquisition_datetime: datetime,
    pixel_spacing: list[str],
    iop: list[str],
    ipp: list[str],
) -> Dataset:
    ds = Dataset()
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = _uid(seed, "instance", k)
    ds.Modality = modality
    ds.PatientName = "ANON^SYNTHETIC"
    ds.PatientID = "SYNTHETIC-0001"
    ds.StudyInstanceUID = _uid(seed, "study")
    ds.SeriesInstanceUID = _uid(seed, "series")
    ds.FrameOfReferenceUID = _uid(seed, "frame-of-reference")
    ds.SeriesNumber = 1
    ds.StudyDate = _da(series_datetime)
    ds.SeriesDate = _da(series_datetime)
    ds.SeriesTime = _tm(series_datetime)
    ds.AcquisitionDate = _da(acquisition_datetime)
    ds.AcquisitionTime = _tm(acquisition_datetime)
    ds.PixelSpacing = pixel_spacing
    ds.ImageOrientationPatient = iop
    ds.ImagePositionPatient = ipp
    ds.SliceThickness = "1"
    return ds


def write_ct_series(
    folder: str | Path,
    volume_zyx: np.ndarray,
    affine: np.ndarray,
    *,
    modality: str = "CT",
    seed: str = "ct",
    order: str = "forward",
    rescale: tuple[float, float] | None = None,
    float_pixels: bool = False,
    series_datetime: datetime = datetime(2024, 5, 6, 9, 30, 0),
    per_slice: PerSlice = None,
    **overrides,
) -> list[Path]:
    """Write a single-frame CT (or MR with ``modality="MR"``) series, one file per slice.

    Parameters
    ----------
    volume_zyx : ndarray of shape (Z, Y, X)
        Values after rescaling (HU for CT). Stored as int16 through
        ``rescale = (slope, intercept)`` (default ``(1, -1024)`` for CT, no
        Rescale attributes for MR), or as 32-bit Float Pixel Data.
    affine : ndarray of shape (4, 4)
        Array-order affine (see the module docstring).
    order : {"forward", "reverse"}
        File names (and Instance Numbers) follow the slices or run backwards.

    Returns
    -------
    list of Path
        The files in slice (z) order.
    """
    volume = np.asarray(volume_zyx, dtype=np.float64)
    nz = volume.shape[0]
    ps, iop, ipp = _geometry(affine, nz)
    sop = {"CT": CT_SOP, "MR": MR_SOP}[modality]
    if rescale is None and modality == "CT" and not float_pixels:
        rescale = (1.0, -1024.0)
    slices = []
    for k in range(nz):
        ds = _common(
            sop_class=sop,
            modality=modality,
            seed=seed,
            k=k,
            series_datetime=series_datetime,
            acquisition_datetime=series_datetime,
            pixel_spacing=ps,
            iop=iop,
            ipp=ipp[k],
        )
        plane = volume[k]
        if rescale is not None:
            slope, intercept = rescale
            ds.RescaleSlope = _ds(slope)
            ds.RescaleIntercept = _ds(intercept)
            if modality == "CT":
                ds.RescaleType = "HU"
            if not float_pixels:
                plane = np.rint((plane - intercept) / slope)
        _pixels(ds, plane, float_pixels=float_pixels)
        _apply(ds, overrides)
        slices.append(ds)
    return _write(folder, slices, order=order, prefix=modality.lower(), per_slice=per_slice)


def write_pet_series(
    folder: str | Path,
    volume_zyx: np.ndarray,
    affine: np.ndarray,
    *,
    units: str | None = "BQML",
    decay_correction: str | None = "START",
    series_datetime: datetime = datetime(2024, 5, 6, 10, 0, 0),
    acquisition_datetimes: datetime | Sequence[datetime] | None = None,
    injection_datetime: datetime | None = datetime(2024, 5, 6, 9, 0, 0),
    injection_time_only: bool = False,
    total_dose: float | None = 370e6,
    half_life_s: float | None = 6586.2,
    nuclide_code: tuple[str, str, str] | None = F18_CODE,
    radiopharmaceutical: str | None = "Fluorodeoxyglucose",
    weight_kg: float | None = 70.0,
    size_m: float | None = 1.75,
    sex: str | None = "M",
    frame_duration_ms: float | None = 180000.0,
    corrected_image: Sequence[str] | None = ("DECY", "ATTN", "SCAT", "DTIM", "RAN", "NORM"),
    ge_post_injection: datetime | None = None,
    philips_activity_scale: float | None = None,
    sop_class: str = PET_SOP,
    float_pixels: bool = False,
    seed: str = "pet",
    order: str = "forward",
    per_slice: PerSlice = None,
    **overrides,
) -> list[Path]:
    """Write a single-frame PET series (PET Image Storage), one file per slice.

    Parameters
    ----------
    volume_zyx : ndarray of shape (Z, Y, X)
        Values in the unit named by ``units`` (Bq/mL for BQML). Stored as int16
        with a per-slice Rescale Slope (slice maximum / 30000), or as Float
        Pixel Data with slope 1.
    units, decay_correction : str or None
        Units (0054,1001) and Decay Correction (0054,1102); None omits them.
    series_datetime : datetime
        Series Date/Time.
    acquisition_datetimes : datetime or sequence of datetime, optional
        Acquisition Date/Time of every slice (one value) or per slice (z order);
        default: the series datetime.
    injection_datetime : datetime or None
        Radiopharmaceutical Start DateTime and Start Time; with
        ``injection_time_only`` only the Start Time (TM) is written.
    total_dose : float or None
        Radionuclide Total Dose as written (Bq in PET Image Storage).
    half_life_s : float or None
        Radionuclide Half Life, s.
    ge_post_injection : datetime, optional
        GE private post-injection DateTime (0009,100D), creator GEMS_PETD_01.
    philips_activity_scale : float, optional
        Philips private Activity Concentration Scale Factor (7053,1009).

    Returns
    -------
    list of Path
        The files in slice (z) order.
    """
    volume = np.asarray(volume_zyx, dtype=np.float64)
    nz = volume.shape[0]
    ps, iop, ipp = _geometry(affine, nz)
    if acquisition_datetimes is None:
        acq = [series_datetime] * nz
    elif isinstance(acquisition_datetimes, datetime):
        acq = [acquisition_datetimes] * nz
    else:
        acq = list(acquisition_datetimes)
    slices = []
    for k in range(nz):
        ds = _common(
            sop_class=sop_class,
            modality="PT",
            seed=seed,
            k=k,
            series_datetime=series_datetime,
            acquisition_datetime=acq[k],
            pixel_spacing=ps,
            iop=iop,
            ipp=ipp[k],
        )
        if units is not None:
            ds.Units = units
        if decay_correction is not None:
            ds.DecayCorrection = decay_correction
        if corrected_image is not None:
            ds.CorrectedImage = list(corrected_image)
        if frame_duration_ms is not None:
            ds.ActualFrameDuration = round(frame_duration_ms)
        if weight_kg is not None:
            ds.PatientWeight = _ds(weight_kg)
        if size_m is not None:
            ds.PatientSize = _ds(size_m)
        if sex is not None:
            ds.PatientSex = sex
        item = Dataset()
        if radiopharmaceutical is not None:
            item.Radiopharmaceutical = radiopharmaceutical
        if injection_datetime is not None:
            item.RadiopharmaceuticalStartTime = _tm(injection_datetime)
            if not injection_time_only:
                item.RadiopharmaceuticalStartDateTime = _dt(injection_datetime)
        if total_dose is not None:
            item.RadionuclideTotalDose = _ds(total_dose)
        if half_life_s is not None:
            item.RadionuclideHalfLife = _ds(half_life_s)
        if nuclide_code is not None:
            code = Dataset()
            code.CodingSchemeDesignator, code.CodeValue, code.CodeMeaning = nuclide_code
            item.RadionuclideCodeSequence = DicomSequence([code])
        ds.RadiopharmaceuticalInformationSequence = DicomSequence([item])
        if ge_post_injection is not None:
            block = ds.private_block(0x0009, _GE_CREATOR, create=True)
            block.add_new(0x0D, "DT", _dt(ge_post_injection))
        if philips_activity_scale is not None:
            block = ds.private_block(0x7053, _PHILIPS_CREATOR, create=True)
            block.add_new(0x09, "DS", _ds(philips_activity_scale))
        plane = volume[k]
        if float_pixels:
            ds.RescaleSlope, ds.RescaleIntercept = "1", "0"
        else:
            peak = float(np.max(np.abs(plane)))
            slope = float(_ds(peak / 30000.0)) if peak > 0 else 1.0
            ds.RescaleSlope, ds.RescaleIntercept = _ds(slope), "0"
            plane = np.rint(plane / slope)
        _pixels(ds, plane, float_pixels=float_pixels)
        _apply(ds, overrides)
        slices.append(ds)
    return _write(folder, slices, order=order, prefix="pt", per_slice=per_slice)
