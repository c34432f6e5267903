"""Writers of synthetic NM Image Storage objects (pydicom) for the NM reader tests.

* :func:`write_nm_spect`: one multi-frame reconstructed SPECT object (Image Type
  ``ORIGINAL\\PRIMARY\\RECON TOMO\\EMISSION``, frames indexed by Slice Vector).
* :func:`write_nm_planar`: one multi-frame planar object (``WHOLE BODY`` or
  ``STATIC``) with an anterior and a posterior detector, frames indexed by
  Energy Window Vector and Detector Vector.

Everything is deterministic (UIDs derived from fixed strings), the patient is
``ANON^SYNTHETIC``, and pixel data are 16-bit unsigned integers (or 32-bit float
pixel data on request). A ``mutate`` callback receives the dataset just before it
is saved, so a test can delete or alter any attribute.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.tag import Tag
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from pydicom.valuerep import DSfloat

__all__ = [
    "DEFAULT_ACQUISITION_START",
    "DEFAULT_INJECTION",
    "LU177_HALF_LIFE_S",
    "NM_SOP_CLASS",
    "axial_affine",
    "write_nm_planar",
    "write_nm_spect",
]

NM_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.20"
DEFAULT_ACQUISITION_START = datetime(2026, 3, 10, 14, 5, 0)
DEFAULT_INJECTION = datetime(2026, 3, 9, 10, 30, 0)
LU177_HALF_LIFE_S = 6.647 * 86400.0  # Lu-177, ~6.647 d

_DEFAULT = object()


def axial_affine(
    spacing_zyx: tuple[float, float, float] = (4.8, 4.8, 4.8),
    origin: tuple[float, float, float] = (-300.0, -250.0, 120.0),
    slice_direction: int = +1,
) -> np.ndarray:
    """Affine of an axial volume: rows along +x (L), columns along +y (P), slices
    along ``slice_direction`` * z."""
    aff = np.eye(4)
    aff[:3, 0] = [0.0, 0.0, slice_direction * spacing_zyx[0]]
    aff[:3, 1] = [0.0, spacing_zyx[1], 0.0]
    aff[:3, 2] = [spacing_zyx[2], 0.0, 0.0]
    aff[:3, 3] = origin
    return aff


def ascending(affine: np.ndarray, volume: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The same volume with its slices ascending along n = row x column cosines,
    the order the readers return (as ITK does)."""
    normal = np.cross(affine[:3, 2], affine[:3, 1])
    if affine[:3, 0] @ normal > 0:
        return affine, volume
    out = affine.copy()
    out[:3, 3] = affine[:3, 3] + (volume.shape[0] - 1) * affine[:3, 0]
    out[:3, 0] = -affine[:3, 0]
    return out, volume[::-1]


def _ds(v: float) -> DSfloat:
    return DSfloat(float(v), auto_format=True)


def _uid(seed: str, what: str) -> str:
    return generate_uid(entropy_srcs=["theranet-test", seed, what])


def _dt(d: datetime) -> tuple[str, str]:
    return d.strftime("%Y%m%d"), d.strftime("%H%M%S")


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    c = Dataset()
    c.CodeValue = value
    c.CodingSchemeDesignator = scheme
    c.CodeMeaning = meaning
    return c


def _base(seed: str, image_type: Sequence[str], acquisition_start: datetime | None) -> Dataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = NM_SOP_CLASS
    meta.MediaStorageSOPInstanceUID = _uid(seed, "sop")
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.preamble = b"\0" * 128
    ds.SOPClassUID = NM_SOP_CLASS
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = _uid(seed, "study")
    ds.SeriesInstanceUID = _uid(seed, "series")
    ds.FrameOfReferenceUID = _uid(seed, "for")
    ds.Modality = "NM"
    ds.Manufacturer = "theranet synthetic"
    ds.PatientName = "ANON^SYNTHETIC"
    ds.PatientID = "SYNTH0001"
    ds.PatientSex = "F"
    ds.PatientWeight = _ds(72.5)
    ds.PatientSize = _ds(1.71)
    ds.ImageType = list(image_type)
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    ds.SeriesDescription = "synthetic NM"
    start = acquisition_start or DEFAULT_ACQUISITION_START
    ds.StudyDate, ds.StudyTime = _dt(start)
    ds.SeriesDate, ds.SeriesTime = _dt(start)
    if acquisition_start is not None:
        ds.AcquisitionDate, ds.AcquisitionTime = _dt(acquisition_start)
    return ds


def _energy_windows(windows: Sequence[tuple[str, float, float]]) -> DicomSequence:
    items = []
    for name, lo, hi in windows:
        rng = Dataset()
        rng.EnergyWindowLowerLimit = _ds(lo)
        rng.EnergyWindowUpperLimit = _ds(hi)
        it = Dataset()
        it.EnergyWindowName = name
        it.EnergyWindowRangeSequence = DicomSequence([rng])
        items.append(it)
    return DicomSequence(items)


def _radiopharmaceutical(
    injection: datetime | None, total_dose_mbq: float | None, nuclide_code: bool
) -> DicomSequence:
    it = Dataset()
    it.Radiopharmaceutical = "Lu-177-DOTATATE"
    if nuclide_code:
        it.RadionuclideCodeSequence = DicomSequence([_code("447553000", "SCT", "^177^Lutetium")])
    if total_dose_mbq is not None:
        it.RadionuclideTotalDose = _ds(total_dose_mbq)
    it.RadionuclideHalfLife = _ds(LU177_HALF_LIFE_S)
    if injection is not None:
        it.RadiopharmaceuticalStartDateTime = injection.strftime("%Y%m%d%H%M%S")
    return DicomSequence([it])


def _set_pixels(ds: Dataset, frames: np.ndarray, float_pixels: bool) -> None:
    n, rows, cols = frames.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = rows
    ds.Columns = cols
    ds.NumberOfFrames = n
    if float_pixels:
        ds.BitsAllocated = 32
        ds.FloatPixelData = np.ascontiguousarray(frames, dtype="<f4").tobytes()
    else:
        ds.BitsAllocated = 16
        ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = 0
        ds.PixelData = np.ascontiguousarray(frames, dtype="<u2").tobytes()


def _quantise(
    values: np.ndarray, slope: float | None, intercept: float
) -> tuple[np.ndarray, float]:
    """Stored uint16 values and the slope with ``values ~= slope * stored + intercept``."""
    v = np.asarray(values, dtype=np.float64) - intercept
    if np.any(v < 0):
        raise ValueError("values below the intercept cannot be stored as unsigned integers")
    if slope is None:
        vmax = float(v.max()) if v.size else 0.0
        slope = vmax / 60000.0 if vmax > 0 else 1.0
    stored = np.rint(v / slope)
    if stored.max(initial=0) > 65535:
        raise ValueError(f"slope {slope} too small: stored values exceed 65535")
    return stored.astype(np.uint16), float(slope)


def write_nm_spect(
    path: str | Path,
    volume_zyx: np.ndarray,
    affine: np.ndarray,
    *,
    values: str = "rwvm",
    units: str = "Bq/ml",
    slope: float | None = None,
    intercept: float = 0.0,
    spacing_sign: int = +1,
    decay: str | None = "START",
    corrected_image: Sequence[str] | None = None,
    acquisition_start: datetime | None = DEFAULT_ACQUISITION_START,
    injection: datetime | None = DEFAULT_INJECTION,
    total_dose_mbq: float | None = 7400.0,
    nuclide_code: bool = True,
    frame_duration_ms: int = 20000,
    frames_per_rotation: int = 60,
    n_rotations: int = 1,
    image_type: Sequence[str] = ("ORIGINAL", "PRIMARY", "RECON TOMO", "EMISSION"),
    windows: Sequence[tuple[str, float, float]] = (("Lu177_208keV", 187.2, 228.8),),
    float_pixels: bool = False,
    geometry_in: str = "detector",
    seed: str = "spect",
    mutate: Callable[[Dataset], None] | None = None,
) -> Path:
    """Write a multi-frame NM RECON TOMO object holding ``volume_zyx``.

    Parameters
    ----------
    volume_zyx : ndarray (Z, Y, X)
        The real-world values the reader should return, in the file's unit:
        ``units`` for ``values="rwvm"`` (e.g. Bq/ml, or ``{counts}``), Bq/mL for
        ``"rescale_bqml"`` and ``"ge_private"``, counts for ``"counts"``.
    affine : (4, 4)
        Index (a0, a1, a2) -> LPS mm. ``affine[:3, 0]`` must be parallel (either
        way) to ``cross(row cosines, column cosines)`` where the row cosines are
        ``affine[:3, 2]`` normalised and the column cosines ``affine[:3, 1]``.
    values : {"rwvm", "rescale_bqml", "ge_private", "counts"}
        How the stored values are given meaning: a Real World Value Mapping item
        in ``units``; Rescale Slope/Intercept + Units BQML; Rescale Slope + GE
        private (0057,1003) "BQML"; or nothing (raw counts).
    slope, intercept : float
        Stored -> real-world mapping (``slope=None``: chosen to use ~60000 levels;
        ``"counts"`` always stores the values as they are).
    spacing_sign : {+1, -1}
        Sign of Spacing Between Slices to write. When it differs from the
        direction of ``affine[:3, 0]`` along the normal, the frames are written in
        the reverse order (and Image Position (Patient) moved to the last slice),
        so the reader gives back the reversed volume with the reversed affine.
    decay : {"START", "ADMIN", "NONE", None}
        Decay Correction (0054,1102); None omits it.
    corrected_image : sequence of str, optional
        Corrected Image (0028,0051); default ``DECY`` (+ ATTN, SCAT) when
        ``decay`` is START/ADMIN, else ATTN/SCAT.
    acquisition_start, injection : datetime or None
        None omits Acquisition Date/Time or Radiopharmaceutical Start DateTime.
    frame_duration_ms, frames_per_rotation, n_rotations
        Rotation Information Sequence content (projection duration, projections).
    float_pixels : bool
        Store ``volume_zyx`` as-is in Float Pixel Data (7FE0,0008).
    geometry_in : {"detector", "top", "both"}
        Where Image Position/Orientation (Patient) are written.
    mutate : callable, optional
        Called with the dataset just before saving.
    """
    vol = np.asarray(volume_zyx)
    if vol.ndim != 3:
        raise ValueError("volume_zyx must be 3-D")
    aff = np.asarray(affine, dtype=np.float64)
    col_step = aff[:3, 2]
    row_step = aff[:3, 1]
    slice_step = aff[:3, 0]
    dx, dy = np.linalg.norm(col_step), np.linalg.norm(row_step)
    row_cos, col_cos = col_step / dx, row_step / dy
    normal = np.cross(row_cos, col_cos)
    s = float(np.dot(slice_step, normal))
    if not np.allclose(slice_step, s * normal, atol=1e-9):
        raise ValueError("affine[:3, 0] is not along the slice normal")
    if spacing_sign not in (+1, -1):
        raise ValueError("spacing_sign must be +1 or -1")
    n = vol.shape[0]
    ipp = aff[:3, 3].copy()
    if np.sign(s) != spacing_sign:
        vol = vol[::-1]
        ipp = ipp + (n - 1) * slice_step
        s = -s

    ds = _base(seed, image_type, acquisition_start)
    ds.FrameIncrementPointer = Tag("SliceVector")
    ds.SliceVector = list(range(1, n + 1))
    ds.NumberOfSlices = n
    ds.PixelSpacing = [_ds(dy), _ds(dx)]
    ds.SpacingBetweenSlices = _ds(s)
    ds.SliceThickness = _ds(abs(s))
    det = Dataset()
    iop = [_ds(v) for v in (*row_cos, *col_cos)]
    pos = [_ds(v) for v in ipp]
    if geometry_in in ("detector", "both"):
        det.ImagePositionPatient = pos
        det.ImageOrientationPatient = iop
    if geometry_in in ("top", "both"):
        ds.ImagePositionPatient = pos
        ds.ImageOrientationPatient = iop
    ds.DetectorInformationSequence = DicomSequence([det])
    ds.NumberOfDetectors = 1
    ds.EnergyWindowInformationSequence = _energy_windows(windows)
    ds.NumberOfEnergyWindows = len(windows)
    rot = []
    for k in range(n_rotations):
        r = Dataset()
        r.StartAngle = _ds(180.0 * k)
        r.AngularStep = _ds(360.0 / frames_per_rotation / 2)
        r.RotationDirection = "CW"
        r.ScanArc = _ds(180.0)
        r.ActualFrameDuration = int(frame_duration_ms)
        r.NumberOfFramesInRotation = int(frames_per_rotation)
        rot.append(r)
    ds.RotationInformationSequence = DicomSequence(rot)
    ds.NumberOfRotations = n_rotations
    ds.RadiopharmaceuticalInformationSequence = _radiopharmaceutical(
        injection, total_dose_mbq, nuclide_code
    )
    if decay is not None:
        ds.DecayCorrection = decay
    if corrected_image is None:
        corrected_image = (
            ["DECY", "ATTN", "SCAT"] if decay in ("START", "ADMIN") else ["ATTN", "SCAT"]
        )
    if corrected_image:
        ds.CorrectedImage = list(corrected_image)

    if float_pixels:
        _set_pixels(ds, vol.astype(np.float32), True)
    elif values == "counts":
        _set_pixels(ds, np.rint(vol).astype(np.uint16), False)
    else:
        stored, sl = _quantise(vol, slope, intercept)
        _set_pixels(ds, stored, False)
        if values == "rwvm":
            it = Dataset()
            it.add_new(Tag("RealWorldValueFirstValueMapped"), "US", 0)
            it.add_new(Tag("RealWorldValueLastValueMapped"), "US", 65535)
            it.RealWorldValueSlope = sl
            it.RealWorldValueIntercept = float(intercept)
            it.LUTExplanation = "synthetic"
            it.LUTLabel = "BQML" if "Bq" in units else "COUNTS"
            it.MeasurementUnitsCodeSequence = DicomSequence([_code(units, "UCUM", units)])
            ds.RealWorldValueMappingSequence = DicomSequence([it])
        elif values == "rescale_bqml":
            ds.RescaleSlope = _ds(sl)
            ds.RescaleIntercept = _ds(intercept)
            ds.Units = "BQML"
        elif values == "ge_private":
            ds.RescaleSlope = _ds(sl)
            ds.RescaleIntercept = _ds(intercept)
            ds.add_new(0x00570010, "LO", "GEMS_GENIE_1")
            ds.add_new(0x00571003, "LO", "BQML")
        else:
            raise ValueError(f"values: unknown {values!r}")
    if mutate is not None:
        mutate(ds)
    path = Path(path)
    ds.save_as(path, enforce_file_format=True)
    return path


_VIEW_CODES = {
    "ANTERIOR": ("399321004", "SCT", "Anterior projection"),
    "POSTERIOR": ("399001007", "SCT", "Posterior projection"),
}


def write_nm_planar(
    path: str | Path,
    anterior: np.ndarray,
    posterior: np.ndarray,
    *,
    pixel_spacing: tuple[float, float] = (2.4, 2.4),
    windows: Sequence[tuple[str, float, float]] = (("Lu177_208keV", 187.2, 228.8),),
    image_type: Sequence[str] = ("ORIGINAL", "PRIMARY", "WHOLE BODY", "EMISSION"),
    views: Sequence[str | None] = ("ANTERIOR", "POSTERIOR"),
    detector_order: Sequence[int] = (1, 2),
    acquisition_start: datetime | None = DEFAULT_ACQUISITION_START,
    injection: datetime | None = DEFAULT_INJECTION,
    total_dose_mbq: float | None = 7400.0,
    frame_duration_ms: int = 900000,
    scan_velocity_mm_s: float | None = 2.5,
    seed: str = "planar",
    mutate: Callable[[Dataset], None] | None = None,
) -> Path:
    """Write a multi-frame planar NM object with an anterior and a posterior head.

    Parameters
    ----------
    anterior, posterior : ndarray (rows, cols) or (windows, rows, cols)
        Counts, both in the *anterior-view orientation* (columns increasing
        towards the patient's left). The posterior image is stored mirrored left
        to right, as the posterior head sees the patient.
    views : (view of detector 1, view of detector 2)
        View Code Sequence of each Detector Information item ("ANTERIOR",
        "POSTERIOR", or None to omit it). Detector 1 holds ``anterior`` when its
        view is ANTERIOR or None, else ``posterior``.
    detector_order : sequence of int
        Order of the detectors in the frames (the frames are written detector by
        detector, energy window inside).
    """
    ant = np.asarray(anterior)
    post = np.asarray(posterior)
    if ant.ndim == 2:
        ant, post = ant[None], post[None]
    if ant.shape != post.shape or ant.shape[0] != len(windows):
        raise ValueError("anterior/posterior must have the same shape, one plane per window")
    stored_post = post[:, :, ::-1]  # as seen by the posterior head
    first_is_ant = views[0] in ("ANTERIOR", None)
    per_detector = {1: ant, 2: stored_post} if first_is_ant else {1: stored_post, 2: ant}
    ds = _base(seed, image_type, acquisition_start)
    ds.FrameIncrementPointer = [Tag("EnergyWindowVector"), Tag("DetectorVector")]
    frames, ewv, dv = [], [], []
    for d in detector_order:
        for w in range(len(windows)):
            frames.append(per_detector[d][w])
            ewv.append(w + 1)
            dv.append(d)
    ds.EnergyWindowVector = ewv
    ds.DetectorVector = dv
    ds.NumberOfEnergyWindows = len(windows)
    ds.NumberOfDetectors = 2
    ds.PixelSpacing = [_ds(pixel_spacing[0]), _ds(pixel_spacing[1])]
    ds.EnergyWindowInformationSequence = _energy_windows(windows)
    dets = []
    for view in views:
        it = Dataset()
        if view is not None:
            it.ViewCodeSequence = DicomSequence([_code(*_VIEW_CODES[view])])
        dets.append(it)
    ds.DetectorInformationSequence = DicomSequence(dets)
    ds.ActualFrameDuration = int(frame_duration_ms)
    if scan_velocity_mm_s is not None:
        ds.ScanVelocity = _ds(scan_velocity_mm_s)
    ds.RadiopharmaceuticalInformationSequence = _radiopharmaceutical(
        injection, total_dose_mbq, True
    )
    _set_pixels(ds, np.rint(np.stack(frames)).astype(np.uint16), False)
    if mutate is not None:
        mutate(ds)
    path = Path(path)
    ds.save_as(path, enforce_file_format=True)
    return path
