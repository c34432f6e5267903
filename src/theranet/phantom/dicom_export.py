"""Write a digital patient as vendor-like DICOM: CT, NM SPECT, PET and NM planar.

The files are realistic enough to exercise the readers of :mod:`theranet.io`
(and to pass ``dciodvfy`` of dicom3tools) and fully synthetic:

* the patient is ``THERANET^PHANTOM`` with an ID derived from the seed
  (``PHANTOM-0007``) and a fixed synthetic birth date;
* every UID is ``2.25.<UUID>`` with a name-based (version 5) UUID built from the
  seed and a purpose string, so the same seed gives byte-identical files and a
  different seed different UIDs; the file meta information (implementation UID
  and version name) is fixed, and no current time is written anywhere;
* all datetimes are timezone-naive local times.

What each writer stores
-----------------------
CT (:func:`write_ct_series`)
    CT Image Storage, one file per slice, int16 with Rescale Intercept -1024
    and Slope 1 (HU).
NM SPECT (:func:`write_nm_spect`)
    One multi-frame NM Image Storage object, Image Type
    ``ORIGINAL\\PRIMARY\\RECON TOMO\\EMISSION``, frames indexed by Slice
    Vector, geometry in the Detector Information Sequence, positive Spacing
    Between Slices. The values are those measured over the acquisition (not
    decay-corrected): Decay Correction ``NONE`` and Corrected Image
    ``ATTN\\SCAT`` (no ``DECY``). ``variant="rwvm"`` stores Bq/mL through a
    Real World Value Mapping item (UCUM ``Bq/mL``); ``variant="counts"``
    stores reconstructed counts (Real World Value Mapping item in UCUM
    ``{counts}``) and the calibration factor is *not* written, as with a
    scanner that leaves the Becquerel calibration to the user.
PET (:func:`write_pet_series`)
    Classic PET Image Storage, one file per slice, Units ``BQML``, Decay
    Correction ``START`` (values decay-corrected to the series start), int16
    with a per-slice Rescale Slope, Radionuclide Total Dose in Bq.
NM planar (:func:`write_nm_planar`)
    One multi-frame NM ``WHOLE BODY`` object with two detectors (anterior and
    posterior, View Code Sequence SCT 399321004 / 399001007), counts in uint16.

Every writer writes through :func:`theranet.io._atomic.atomic_paths`
(temporary files renamed onto the targets only when all were written).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.tag import Tag

from theranet import radiopharmaceuticals as rp
from theranet.errors import (
    CalibrationError,
    GeometryError,
    ImageDataError,
    QuantityError,
    TimingError,
)
from theranet.image import DecayCorrection, Image, Quantity
from theranet.io._atomic import atomic_paths
from theranet.io._dicom_build import da as _da
from theranet.io._dicom_build import deterministic_uid, file_meta
from theranet.io._dicom_build import ds as _ds
from theranet.io._dicom_build import dt as _dt
from theranet.io._dicom_build import slice_geometry as _slice_geometry
from theranet.io._dicom_build import tm as _tm

__all__ = [
    "CT_IMAGE_STORAGE",
    "NM_IMAGE_STORAGE",
    "PET_IMAGE_STORAGE",
    "DicomContext",
    "deterministic_uid",
    "write_ct_series",
    "write_nm_planar",
    "write_nm_spect",
    "write_pet_series",
]

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
NM_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.20"
PET_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.128"

#: Name space of the UUIDs behind every UID written here.
_IMPLEMENTATION_VERSION_NAME = "THERANET_PHANTOM"  # SH, 16 characters at most
_MANUFACTURER = "theranet"
_MODEL = "digital phantom"

#: Views of a planar acquisition (SNOMED CT).
_VIEW_CODES = {
    "ANTERIOR": ("399321004", "SCT", "Anterior projection"),
    "POSTERIOR": ("399001007", "SCT", "Posterior projection"),
}
_RECUMBENT = ("102538003", "SCT", "recumbent")
_SUPINE = ("40199007", "SCT", "supine")
_HEADFIRST = ("102540008", "SCT", "headfirst")


@dataclass(frozen=True)
class DicomContext:
    """The synthetic patient and study shared by all series of one digital patient.

    Parameters
    ----------
    seed : int
        Seed of the digital patient: gives the Patient ID (``PHANTOM-0007``)
        and, with a purpose string, every UID.
    tracer : str
        Radiopharmaceutical name known to :func:`theranet.radiopharmaceuticals.get`;
        the default of the emission writers.
    study_datetime : datetime
        Study Date/Time (timezone-naive local time).
    patient_sex : {"M", "F"}
    patient_weight_kg : float
    patient_size_m : float
        Patient's Size (0010,1020), in metres as DICOM wants it.
    patient_birth_date : date
        A fixed synthetic date of birth.
    creation_datetime : datetime, optional
        Instance Creation and Content Date/Time of every object; default: the
        acquisition (series) datetime of each object.
    study_instance_uid, frame_of_reference_uid : str, optional
        Default: derived from ``seed``. All series share the frame of reference:
        the digital patient does not move between scans.
    study_id : str
        Study ID (0020,0010).

    Examples
    --------
    >>> ctx = DicomContext(7)
    >>> ctx.patient_id, ctx.patient_name
    ('PHANTOM-0007', 'THERANET^PHANTOM')
    """

    seed: int
    tracer: str = "177Lu-DOTATATE"
    study_datetime: datetime = datetime(2026, 1, 12, 9, 0, 0)
    patient_sex: str = "F"
    patient_weight_kg: float = 70.0
    patient_size_m: float = 1.70
    patient_birth_date: date = date(1960, 1, 1)
    creation_datetime: datetime | None = None
    study_instance_uid: str | None = None
    frame_of_reference_uid: str | None = None
    study_id: str = "1"

    def __post_init__(self) -> None:
        if isinstance(self.seed, bool) or not isinstance(self.seed, int | np.integer):
            raise TypeError(f"seed: an integer is needed, got {self.seed!r}")
        if self.seed < 0:
            raise ValueError(f"seed: must be >= 0, got {self.seed}")
        object.__setattr__(self, "seed", int(self.seed))
        if self.patient_sex not in ("M", "F"):
            raise ValueError(f"patient_sex: 'M' or 'F', got {self.patient_sex!r}")
        for name in ("patient_weight_kg", "patient_size_m"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v > 0):
                raise ValueError(f"{name}: must be a positive finite number, got {v!r}")
        if not 0 < self.patient_size_m <= 3:
            raise ValueError(f"patient_size_m: a height in metres, got {self.patient_size_m!r}")
        _naive(self.study_datetime, "study_datetime")
        if self.creation_datetime is not None:
            _naive(self.creation_datetime, "creation_datetime")
        if self.study_instance_uid is None:
            object.__setattr__(self, "study_instance_uid", self.uid("study", self.study_id))
        if self.frame_of_reference_uid is None:
            object.__setattr__(self, "frame_of_reference_uid", self.uid("frame-of-reference"))
        rp.get(self.tracer)  # fail early on an unknown tracer

    @property
    def patient_name(self) -> str:
        """Patient's Name: always ``THERANET^PHANTOM``."""
        return "THERANET^PHANTOM"

    @property
    def patient_id(self) -> str:
        """Patient ID derived from the seed, e.g. ``PHANTOM-0007``."""
        return f"PHANTOM-{self.seed:04d}"

    def uid(self, *purpose: object) -> str:
        """The UID of ``purpose`` for this seed (see :func:`deterministic_uid`).

        Studies other than ``study_id == "1"`` (later therapy cycles) mix their
        study ID in, so their UIDs differ from the first study's.
        """
        study = () if self.study_id == "1" else (f"study-{self.study_id}",)
        return deterministic_uid("theranet-phantom", self.seed, *study, *purpose)


# ------------------------------------------------------------------ helpers


def _naive(when: datetime, name: str) -> datetime:
    if not isinstance(when, datetime):
        raise TypeError(f"{name}: a datetime is needed, got {when!r}")
    if when.tzinfo is not None:
        raise TimingError(
            name,
            "must be timezone-naive (local time, as DICOM Date/Time without offset)",
            when.isoformat(),
            "drop the timezone: when.replace(tzinfo=None) after converting to local time",
        )
    return when


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    c = Dataset()
    c.CodeValue = value
    c.CodingSchemeDesignator = scheme
    c.CodeMeaning = meaning
    return c


def _orientation_letters(v: np.ndarray) -> str:
    """Patient Orientation letters (LPS: L/R, P/A, H/F) of a direction, strongest first."""
    letters = (("R", "L"), ("A", "P"), ("F", "H"))
    order = np.argsort(-np.abs(v))
    out = [letters[i][int(v[i] > 0)] for i in order if abs(v[i]) > 1e-4]
    return "".join(out[:3])


def _tracer(name: str) -> rp.Radiopharmaceutical:
    return rp.get(name)


def _half_life_s(entry: rp.Radiopharmaceutical) -> float:
    return entry.nuclide.half_life_h * 3600.0


def _window_items(windows: Sequence[tuple[str, float, float]]) -> DicomSequence:
    items = []
    for name, lo, hi in windows:
        rng = Dataset()
        rng.EnergyWindowLowerLimit = _ds(lo)
        rng.EnergyWindowUpperLimit = _ds(hi)
        it = Dataset()
        it.EnergyWindowRangeSequence = DicomSequence([rng])
        it.EnergyWindowName = name
        items.append(it)
    return DicomSequence(items)


def _windows(
    energy_windows: Sequence[rp.EnergyWindow | tuple[str, float, float]] | None,
    entry: rp.Radiopharmaceutical,
    n_default: int = 1,
) -> list[tuple[str, float, float]]:
    """(name, lower keV, upper keV) of each window; default: the catalogue photopeaks."""
    if energy_windows is None:
        if not entry.photopeaks:
            raise ValueError(
                f"energy_windows: {entry.name} has no photopeak window in the catalogue; "
                "give the windows as (name, lower_kev, upper_kev)"
            )
        energy_windows = entry.photopeaks[:n_default]
    symbol, mass = entry.nuclide_name.split("-")
    out = []
    for w in energy_windows:
        if isinstance(w, rp.EnergyWindow):
            out.append((f"{symbol}{mass}_{w.centre_kev:g}keV"[:16], w.lower_kev, w.upper_kev))
        else:
            name, lo, hi = w
            if not (0 < float(lo) < float(hi)):
                raise ValueError(f"energy_windows: bad limits {lo!r}..{hi!r} keV")
            out.append((str(name)[:16], float(lo), float(hi)))
    if not out:
        raise ValueError("energy_windows: at least one window is needed")
    return out


def _radiopharmaceutical_item(
    entry: rp.Radiopharmaceutical,
    injection: datetime,
    total_dose: float,
) -> Dataset:
    """Radiopharmaceutical Information Sequence item; ``total_dose`` in the IOD's unit."""
    it = Dataset()
    it.Radiopharmaceutical = entry.name
    it.RadiopharmaceuticalStartTime = _tm(injection)
    it.RadionuclideTotalDose = _ds(total_dose)
    it.RadionuclideHalfLife = _ds(_half_life_s(entry))
    it.RadiopharmaceuticalStartDateTime = _dt(injection)
    nuc = entry.codes.get("radionuclide")
    it.RadionuclideCodeSequence = DicomSequence(
        [_code(nuc.value, nuc.scheme, nuc.meaning)] if nuc is not None else []
    )
    drug = entry.codes.get("radiopharmaceutical")
    if drug is not None:
        it.RadiopharmaceuticalCodeSequence = DicomSequence(
            [_code(drug.value, drug.scheme, drug.meaning)]
        )
    return it


def _patient_orientation_modules(ds: Dataset) -> None:
    """NM/PET Patient Orientation module: recumbent, supine, head first.

    It replaces Patient Position (0018,5100), which must then be absent.
    """
    if "PatientPosition" in ds:
        del ds.PatientPosition
    orient = _code(*_RECUMBENT)
    orient.PatientOrientationModifierCodeSequence = DicomSequence([_code(*_SUPINE)])
    ds.PatientOrientationCodeSequence = DicomSequence([orient])
    ds.PatientGantryRelationshipCodeSequence = DicomSequence([_code(*_HEADFIRST)])


def _common(
    ctx: DicomContext,
    *,
    sop_class: str,
    sop_instance: str,
    modality: str,
    series_uid: str,
    series_number: int,
    series_datetime: datetime,
    acquisition_datetime: datetime,
    description: str,
) -> Dataset:
    """Patient, study, series, equipment, acquisition and SOP common attributes."""
    created = ctx.creation_datetime or series_datetime
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.InstanceCreationDate = _da(created)
    ds.InstanceCreationTime = _tm(created)
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_instance
    ds.StudyDate = _da(ctx.study_datetime)
    ds.SeriesDate = _da(series_datetime)
    ds.AcquisitionDate = _da(acquisition_datetime)
    ds.ContentDate = _da(created)
    ds.StudyTime = _tm(ctx.study_datetime)
    ds.SeriesTime = _tm(series_datetime)
    ds.AcquisitionTime = _tm(acquisition_datetime)
    ds.ContentTime = _tm(created)
    ds.AccessionNumber = ""
    ds.Modality = modality
    ds.Manufacturer = _MANUFACTURER
    ds.ReferringPhysicianName = ""
    ds.StudyDescription = "theranet digital phantom"
    ds.SeriesDescription = description
    ds.ManufacturerModelName = _MODEL
    ds.PatientName = ctx.patient_name
    ds.PatientID = ctx.patient_id
    ds.PatientBirthDate = _da(ctx.patient_birth_date)
    ds.PatientSex = ctx.patient_sex
    ds.PatientAge = _age(ctx.patient_birth_date, ctx.study_datetime)
    ds.PatientSize = _ds(ctx.patient_size_m)
    ds.PatientWeight = _ds(ctx.patient_weight_kg)
    ds.PatientIdentityRemoved = "NO"  # synthetic: never identified
    ds.BodyPartExamined = "WHOLEBODY"  # unpaired: no Laterality
    ds.SoftwareVersions = "theranet phantom"
    ds.PatientPosition = "HFS"
    ds.StudyInstanceUID = ctx.study_instance_uid
    ds.SeriesInstanceUID = series_uid
    ds.StudyID = ctx.study_id
    ds.SeriesNumber = int(series_number)
    ds.FrameOfReferenceUID = ctx.frame_of_reference_uid
    ds.PositionReferenceIndicator = ""
    return ds


def _age(birth: date, when: datetime) -> str:
    years = when.year - birth.year - ((when.month, when.day) < (birth.month, birth.day))
    return f"{max(years, 0):03d}Y"


def _file_meta(ds: Dataset, ctx: DicomContext) -> None:
    file_meta(ds, "theranet-phantom", _IMPLEMENTATION_VERSION_NAME)


def _save(datasets: Sequence[Dataset], paths: Sequence[Path], ctx: DicomContext) -> list[Path]:
    """Write ``datasets`` atomically onto ``paths`` (all or none)."""
    for ds in datasets:
        _file_meta(ds, ctx)
    with atomic_paths(paths) as temps:
        for ds, tmp in zip(datasets, temps, strict=True):
            ds.save_as(tmp, enforce_file_format=True)
    return [Path(p) for p in paths]


def _check_image(image: Image, quantities: tuple[Quantity, ...], what: str) -> np.ndarray:
    if image.quantity not in quantities:
        raise QuantityError(
            "image.quantity",
            f"{what} needs {' or '.join(q.value for q in quantities)}",
            image.quantity.value,
        )
    data = np.asarray(image.data, dtype=np.float64)
    if not np.all(np.isfinite(data)):
        raise ImageDataError("image.data", "non-finite values cannot be written", None)
    return data


# ----------------------------------------------------------------------- CT


def write_ct_series(
    folder: str | Path,
    hu: Image,
    ctx: DicomContext,
    *,
    series_number: int = 1,
    acquisition_datetime: datetime,
    kvp: float = 120.0,
    tube_current_ma: int = 100,
) -> list[Path]:
    """Write a CT series (CT Image Storage), one file per slice.

    Parameters
    ----------
    folder : str or Path
        Output folder (created if needed); files ``CT_0001.dcm``... in slice
        order. Give each series its own folder: the series reader takes a
        folder holding one series.
    hu : Image
        Hounsfield units (``Quantity.HU``), ``(slices, rows, columns)``; the
        slice step ``affine[:3, 0]`` must lie along the slice normal.
    ctx : DicomContext
    series_number : int
    acquisition_datetime : datetime
        Series, Acquisition and (default) Content Date/Time, naive local time.
    kvp, tube_current_ma : float, int
        KVP (0018,0060) and X-Ray Tube Current (0018,1151).

    Returns
    -------
    list of Path
        The files in slice order.

    Notes
    -----
    Stored as int16 with Rescale Intercept -1024 and Rescale Slope 1: the values
    are rounded to whole HU and must lie in [-1024, 31743].
    """
    _naive(acquisition_datetime, "acquisition_datetime")
    data = _check_image(hu, (Quantity.HU,), "write_ct_series")
    row_cos, col_cos, slice_step, dy, dx, s = _slice_geometry(hu)
    stored = np.rint(data) + 1024.0
    if stored.size and (stored.min() < 0 or stored.max() > 32767):
        raise ImageDataError(
            "hu.data",
            "outside [-1024, 31743] HU, the range of int16 with intercept -1024",
            (float(data.min()), float(data.max())),
            "clip the CT to the scanner range",
        )
    stored = stored.astype("<i2")
    nz, rows, cols = hu.shape
    series_uid = ctx.uid("series", "CT", series_number, acquisition_datetime.isoformat())
    iop = [_ds(v) for v in (*row_cos, *col_cos)]
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    datasets, paths = [], []
    for k in range(nz):
        ipp = hu.affine[:3, 3] + k * slice_step
        ds = _common(
            ctx,
            sop_class=CT_IMAGE_STORAGE,
            sop_instance=ctx.uid(
                "instance", "CT", series_number, acquisition_datetime.isoformat(), k
            ),
            modality="CT",
            series_uid=series_uid,
            series_number=series_number,
            series_datetime=acquisition_datetime,
            acquisition_datetime=acquisition_datetime,
            description="CT phantom",
        )
        ds.ScanOptions = "HELICAL MODE"
        ds.SliceThickness = _ds(abs(s))
        ds.KVP = _ds(kvp)
        ds.DataCollectionDiameter = _ds(500.0)
        ds.ReconstructionDiameter = _ds(max(rows * dy, cols * dx))
        ds.GantryDetectorTilt = "0"
        ds.TableHeight = _ds(150.0)
        ds.RotationDirection = "CW"
        ds.ExposureTime = "500"
        ds.XRayTubeCurrent = int(tube_current_ma)
        ds.Exposure = round(tube_current_ma * 0.5)
        ds.ConvolutionKernel = "STANDARD"
        ds.StudyID = ctx.study_id
        ds.AcquisitionNumber = 1
        ds.InstanceNumber = k + 1
        ds.ImagePositionPatient = [_ds(v) for v in ipp]
        ds.ImageOrientationPatient = iop
        ds.SliceLocation = _ds(float(ipp @ np.cross(row_cos, col_cos)))
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows = rows
        ds.Columns = cols
        ds.PixelSpacing = [_ds(dy), _ds(dx)]
        ds.BitsAllocated = 16
        ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = 1
        ds.WindowCenter = "40"
        ds.WindowWidth = "400"
        ds.RescaleIntercept = "-1024"
        ds.RescaleSlope = "1"
        ds.RescaleType = "HU"
        ds.PixelData = np.ascontiguousarray(stored[k]).tobytes()
        datasets.append(ds)
        paths.append(folder / f"CT_{k + 1:04d}.dcm")
    return _save(datasets, paths, ctx)


# ----------------------------------------------------------------- NM SPECT


def _projection_ms(frame_duration_s: float, projections: int) -> int:
    if not (math.isfinite(frame_duration_s) and frame_duration_s > 0):
        raise TimingError("frame_duration_s", "must be positive", frame_duration_s)
    if projections < 1:
        raise ValueError(f"projections_per_detector: must be >= 1, got {projections}")
    ms = frame_duration_s * 1000.0 / projections
    if abs(ms - round(ms)) > 1e-6 or round(ms) < 1:
        raise TimingError(
            "frame_duration_s",
            f"does not split into {projections} projections of a whole number of ms "
            "(Actual Frame Duration is an integer in ms)",
            frame_duration_s,
            "choose frame_duration_s or projections_per_detector so that they divide",
        )
    return round(ms)


def _as_measured(
    image: Image,
    nuclide: str,
    acquisition_datetime: datetime,
    frame_duration_s: float,
) -> np.ndarray:
    """Values as measured over ``[start, start + T]`` (not decay-corrected), float64."""
    t = image.timing
    data = np.asarray(image.data, dtype=np.float64)
    if t.decay_correction is DecayCorrection.NONE:
        if t.acquisition_start is not None and t.acquisition_start != acquisition_datetime:
            raise TimingError(
                "image.timing.acquisition_start",
                "differs from acquisition_datetime for values that are not decay-corrected",
                t.acquisition_start.isoformat(),
                "pass the image's own acquisition start, or decay-correct it first",
            )
        return data
    img = image if image.nuclide is not None else image.replace(nuclide=nuclide)
    at_start = np.asarray(img.decay_correct_to(acquisition_datetime).data, dtype=np.float64)
    lam_per_s = math.log(2.0) / (img._nuclide_obj().half_life_h * 3600.0)
    x = lam_per_s * frame_duration_s
    mean_over_frame = -math.expm1(-x) / x if x > 1e-12 else 1.0
    return at_start * mean_over_frame


def write_nm_spect(
    path: str | Path,
    image: Image,
    ctx: DicomContext,
    *,
    variant: str = "rwvm",
    tracer: str | None = None,
    acquisition_datetime: datetime,
    frame_duration_s: float,
    injection_datetime: datetime,
    administered_activity_mbq: float,
    energy_windows: Sequence[rp.EnergyWindow | tuple[str, float, float]] | None = None,
    calibration_cps_per_mbq: float | None = None,
    series_number: int = 2,
    projections_per_detector: int = 60,
) -> Path:
    """Write a reconstructed SPECT volume as one multi-frame NM RECON TOMO object.

    Parameters
    ----------
    path : str or Path
        Output file (its folder must exist).
    image : Image
        ``ACTIVITY_CONCENTRATION`` (MBq/mL) or, for ``variant="counts"``,
        ``COUNTS``. Values that are decay-corrected (START, ADMIN, REFERENCE)
        are brought back to what was measured over the acquisition, since the
        file states Decay Correction NONE.
    ctx : DicomContext
    variant : {"rwvm", "counts"}
        ``"rwvm"``: uint16 with a Real World Value Mapping item in UCUM
        ``Bq/mL`` (slope chosen to use the whole uint16 range). ``"counts"``:
        reconstructed counts ``C * CF * V * T`` (``C`` in MBq/mL, ``CF`` the
        calibration in cps/MBq, ``V`` the voxel volume in mL, ``T`` the
        acquisition duration in s), rounded, with a Real World Value Mapping
        item in UCUM ``{counts}`` (slope 1 unless the counts exceed 65535).
        The calibration is not written: pass it to
        :func:`theranet.io.read_nm_spect` to get MBq/mL back.
    tracer : str, optional
        Catalogue name; default ``ctx.tracer``.
    acquisition_datetime : datetime
        Start of the acquisition (Acquisition/Series Date/Time).
    frame_duration_s : float
        Acquisition duration, s; written as ``projections_per_detector``
        projections of Actual Frame Duration ms in the Rotation Information
        Sequence (the duration must split into whole ms).
    injection_datetime : datetime
        Radiopharmaceutical Start DateTime.
    administered_activity_mbq : float
        Radionuclide Total Dose, MBq (the NM unit).
    energy_windows : sequence, optional
        :class:`theranet.radiopharmaceuticals.EnergyWindow` or
        ``(name, lower_kev, upper_kev)``; default: the tracer's first photopeak.
    calibration_cps_per_mbq : float, optional
        Needed for ``variant="counts"`` with an activity-concentration image.
    series_number : int
    projections_per_detector : int
        Number of Frames in Rotation of the (dual-head, 2 x 180 degree) orbit.

    Returns
    -------
    Path
    """
    path = Path(path)
    for name, when in (
        ("acquisition_datetime", acquisition_datetime),
        ("injection_datetime", injection_datetime),
    ):
        _naive(when, name)
    if injection_datetime > acquisition_datetime:
        raise TimingError(
            "injection_datetime", "is after the acquisition start", injection_datetime.isoformat()
        )
    if variant not in ("rwvm", "counts"):
        raise ValueError(f"variant: 'rwvm' or 'counts', got {variant!r}")
    entry = _tracer(tracer or ctx.tracer)
    allowed = (
        (Quantity.ACTIVITY_CONCENTRATION,)
        if variant == "rwvm"
        else (Quantity.ACTIVITY_CONCENTRATION, Quantity.COUNTS)
    )
    _check_image(image, allowed, f"write_nm_spect(variant={variant!r})")
    ms = _projection_ms(frame_duration_s, projections_per_detector)
    duration_s = ms * projections_per_detector / 1000.0
    windows = _windows(energy_windows, entry)
    row_cos, col_cos, slice_step, dy, dx, s = _slice_geometry(image)

    if image.quantity is Quantity.COUNTS:
        real = np.asarray(image.data, dtype=np.float64)
    else:
        real = _as_measured(image, entry.nuclide_name, acquisition_datetime, duration_s)
    if real.size and real.min() < 0:
        raise ImageDataError(
            "image.data", "negative values cannot be stored (uint16 pixels)", float(real.min())
        )
    if variant == "rwvm":
        real = real * 1e6  # MBq/mL -> Bq/mL
        unit = ("Bq/mL", "UCUM", "Becquerels/milliliter")
        label, explanation = "BQML", "Activity concentration (not decay corrected)"
        vmax = float(real.max()) if real.size else 0.0
        slope = vmax / 65535.0 if vmax > 0 else 1.0
    else:
        if image.quantity is Quantity.ACTIVITY_CONCENTRATION:
            cf = calibration_cps_per_mbq
            if cf is None or not (math.isfinite(cf) and cf > 0):
                raise CalibrationError(
                    "calibration_cps_per_mbq",
                    "a positive finite sensitivity is needed to turn MBq/mL into counts",
                    cf,
                    "give the SPECT system sensitivity in cps/MBq",
                )
            real = real * float(cf) * image.voxel_volume_ml * duration_s
        real = np.rint(real)
        unit = ("{counts}", "UCUM", "Counts")
        label, explanation = "COUNTS", "Reconstructed counts"
        vmax = float(real.max()) if real.size else 0.0
        slope = 1.0 if vmax <= 65535 else vmax / 65535.0
    stored = np.clip(np.rint(real / slope), 0, 65535).astype("<u2")

    n = image.shape[0]
    ipp = image.affine[:3, 3].copy()
    if s < 0:  # positive Spacing Between Slices: frames from the other end
        stored = stored[::-1]
        ipp = ipp + (n - 1) * slice_step
        s = -s
    acq_key = acquisition_datetime.isoformat()
    ds = _common(
        ctx,
        sop_class=NM_IMAGE_STORAGE,
        sop_instance=ctx.uid("instance", "NM-SPECT", series_number, acq_key, variant),
        modality="NM",
        series_uid=ctx.uid("series", "NM-SPECT", series_number, acq_key, variant),
        series_number=series_number,
        series_datetime=acquisition_datetime,
        acquisition_datetime=acquisition_datetime,
        description=f"SPECT {entry.name} recon",
    )
    ds.ImageType = ["ORIGINAL", "PRIMARY", "RECON TOMO", "EMISSION"]
    ds.InstanceNumber = 1
    ds.PatientOrientation = [
        _orientation_letters(row_cos),
        _orientation_letters(col_cos),
    ]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = int(image.shape[1]), int(image.shape[2])
    ds.NumberOfFrames = n
    ds.FrameIncrementPointer = Tag("SliceVector")
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.PixelSpacing = [_ds(dy), _ds(dx)]
    # NM Reconstruction
    ds.SpacingBetweenSlices = _ds(s)
    ds.SliceThickness = _ds(s)
    ds.ReconstructionDiameter = _ds(max(ds.Rows * dy, ds.Columns * dx))
    ds.ConvolutionKernel = "OSEM"
    # NM Image
    ds.CountsAccumulated = ""
    ds.CorrectedImage = ["ATTN", "SCAT"]
    ds.DecayCorrection = "NONE"
    # NM Multi-frame
    ds.NumberOfEnergyWindows = len(windows)
    ds.NumberOfDetectors = 1
    ds.NumberOfRotations = 1
    ds.NumberOfSlices = n
    ds.SliceVector = list(range(1, n + 1))
    # NM Isotope
    ds.EnergyWindowInformationSequence = _window_items(windows)
    ds.RadiopharmaceuticalInformationSequence = DicomSequence(
        [_radiopharmaceutical_item(entry, injection_datetime, administered_activity_mbq)]
    )
    # NM Detector: the geometry of the reconstructed volume
    det = Dataset()
    det.CollimatorType = "PARA"
    det.FocalDistance = ""
    det.ImagePositionPatient = [_ds(v) for v in ipp]
    det.ImageOrientationPatient = [_ds(v) for v in (*row_cos, *col_cos)]
    ds.DetectorInformationSequence = DicomSequence([det])
    # NM TOMO Acquisition: duration = Actual Frame Duration x Number of Frames in Rotation
    rot = Dataset()
    rot.StartAngle = "0"
    rot.AngularStep = _ds(180.0 / projections_per_detector)
    rot.RotationDirection = "CW"
    rot.ScanArc = "180"
    rot.ActualFrameDuration = ms
    rot.NumberOfFramesInRotation = int(projections_per_detector)
    ds.RotationInformationSequence = DicomSequence([rot])
    ds.TypeOfDetectorMotion = "STEP AND SHOOT"
    _patient_orientation_modules(ds)
    # values
    item = Dataset()
    item.add_new(Tag("RealWorldValueFirstValueMapped"), "US", 0)
    item.add_new(Tag("RealWorldValueLastValueMapped"), "US", 65535)
    item.RealWorldValueIntercept = 0.0
    item.RealWorldValueSlope = float(slope)
    item.LUTExplanation = explanation
    item.LUTLabel = label
    item.MeasurementUnitsCodeSequence = DicomSequence([_code(*unit)])
    ds.RealWorldValueMappingSequence = DicomSequence([item])
    ds.PixelData = np.ascontiguousarray(stored).tobytes()
    return _save([ds], [path], ctx)[0]


# ---------------------------------------------------------------------- PET


def write_pet_series(
    folder: str | Path,
    image: Image,
    ctx: DicomContext,
    *,
    tracer: str | None = None,
    series_datetime: datetime,
    injection_datetime: datetime,
    administered_activity_mbq: float,
    frame_duration_s: float,
    series_number: int = 3,
) -> list[Path]:
    """Write a PET series (classic PET Image Storage, Units BQML), one file per slice.

    Parameters
    ----------
    folder : str or Path
        Output folder (created if needed); files ``PT_0001.dcm``... in slice order.
    image : Image
        ``ACTIVITY_CONCENTRATION`` (MBq/mL). Values not already decay-corrected
        to ``series_datetime`` are converted (with the tracer's nuclide): an
        uncorrected image (NONE) is taken as measured over ``[series_datetime,
        series_datetime + frame_duration_s]`` unless its timing says otherwise.
    ctx : DicomContext
    tracer : str, optional
        Catalogue name; default ``ctx.tracer``.
    series_datetime : datetime
        Series and Acquisition Date/Time: the start of the scan and the
        reference of Decay Correction START.
    injection_datetime : datetime
    administered_activity_mbq : float
        Written as Radionuclide Total Dose in Bq (the classic PET unit).
    frame_duration_s : float
        Actual Frame Duration (whole ms).
    series_number : int

    Returns
    -------
    list of Path
        The files in slice order.

    Notes
    -----
    Pixels are int16 with a per-slice Rescale Slope (slice maximum / 32767) and
    Intercept 0. Frame Reference Time is the time of mean activity in the
    frame; Decay Factor the factor from it to the series start.
    """
    _naive(series_datetime, "series_datetime")
    _naive(injection_datetime, "injection_datetime")
    if injection_datetime > series_datetime:
        raise TimingError(
            "injection_datetime", "is after the series start", injection_datetime.isoformat()
        )
    entry = _tracer(tracer or ctx.tracer)
    _check_image(image, (Quantity.ACTIVITY_CONCENTRATION,), "write_pet_series")
    if not (math.isfinite(frame_duration_s) and frame_duration_s > 0):
        raise TimingError("frame_duration_s", "must be positive", frame_duration_s)
    frame_ms = round(frame_duration_s * 1000.0)
    row_cos, col_cos, slice_step, dy, dx, s = _slice_geometry(image)

    img = image if image.nuclide is not None else image.replace(nuclide=entry.nuclide_name)
    t = img.timing
    if t.decay_correction is DecayCorrection.NONE:
        fill = {}
        if t.acquisition_start is None:
            fill["acquisition_start"] = series_datetime
        if t.frame_duration_h is None:
            fill["frame_duration_h"] = frame_duration_s / 3600.0
        if fill:
            img = img.replace(timing=dataclasses.replace(t, **fill))
    if img.timing.reference_datetime == series_datetime:
        bqml = np.asarray(img.data, dtype=np.float64) * 1e6
    else:
        corrected = img.decay_correct_to(series_datetime)
        bqml = np.asarray(corrected.data, dtype=np.float64) * 1e6

    lam_per_ms = math.log(2.0) / (_half_life_s(entry) * 1000.0)
    x = lam_per_ms * frame_ms
    ref_ms = math.log(x / -math.expm1(-x)) / lam_per_ms if x > 1e-12 else frame_ms / 2.0
    decay_factor = math.exp(lam_per_ms * ref_ms)

    nz, rows, cols = image.shape
    key = series_datetime.isoformat()
    series_uid = ctx.uid("series", "PT", series_number, key)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rp_item = _radiopharmaceutical_item(entry, injection_datetime, administered_activity_mbq * 1e6)
    normal = np.cross(row_cos, col_cos)
    datasets, paths = [], []
    for k in range(nz):
        plane = bqml[k]
        peak = float(np.max(np.abs(plane))) if plane.size else 0.0
        slope = float(_ds(peak / 32767.0)) if peak > 0 else 1.0
        stored = np.clip(np.rint(plane / slope), -32768, 32767).astype("<i2")
        ipp = image.affine[:3, 3] + k * slice_step
        ds = _common(
            ctx,
            sop_class=PET_IMAGE_STORAGE,
            sop_instance=ctx.uid("instance", "PT", series_number, key, k),
            modality="PT",
            series_uid=series_uid,
            series_number=series_number,
            series_datetime=series_datetime,
            acquisition_datetime=series_datetime,
            description=f"PET {entry.name} AC",
        )
        ds.SliceThickness = _ds(abs(s))
        ds.ReconstructionDiameter = _ds(max(rows * dy, cols * dx))
        ds.CollimatorType = "NONE"
        ds.ActualFrameDuration = frame_ms
        ds.InstanceNumber = k + 1
        ds.ImagePositionPatient = [_ds(v) for v in ipp]
        ds.ImageOrientationPatient = [_ds(v) for v in (*row_cos, *col_cos)]
        ds.SliceLocation = _ds(float(ipp @ normal))
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows = rows
        ds.Columns = cols
        ds.PixelSpacing = [_ds(dy), _ds(dx)]
        ds.CorrectedImage = ["DECY", "ATTN", "SCAT", "DTIM", "RAN", "NORM"]
        ds.BitsAllocated = 16
        ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = 1
        ds.RescaleIntercept = "0"
        ds.RescaleSlope = _ds(slope)
        ds.RadiopharmaceuticalInformationSequence = DicomSequence([rp_item])
        ds.SeriesType = ["STATIC", "IMAGE"]
        ds.Units = "BQML"
        ds.CountsSource = "EMISSION"
        ds.RandomsCorrectionMethod = "DLYD"
        ds.AttenuationCorrectionMethod = "CT-based"
        ds.DecayCorrection = "START"
        ds.ReconstructionMethod = "OSEM"
        ds.ScatterCorrectionMethod = "model-based"
        ds.NumberOfSlices = nz
        _patient_orientation_modules(ds)
        ds.FrameReferenceTime = _ds(ref_ms)
        ds.DecayFactor = _ds(decay_factor)
        ds.ImageIndex = k + 1
        ds.PixelData = np.ascontiguousarray(stored).tobytes()
        datasets.append(ds)
        paths.append(folder / f"PT_{k + 1:04d}.dcm")
    return _save(datasets, paths, ctx)


# ------------------------------------------------------------------- planar


def write_nm_planar(
    path: str | Path,
    anterior: np.ndarray,
    posterior: np.ndarray,
    ctx: DicomContext,
    *,
    pixel_mm: float | tuple[float, float],
    tracer: str | None = None,
    acquisition_datetime: datetime,
    frame_duration_s: float,
    injection_datetime: datetime,
    administered_activity_mbq: float,
    energy_windows: Sequence[rp.EnergyWindow | tuple[str, float, float]] | None = None,
    series_number: int = 4,
) -> Path:
    """Write a whole-body planar scan: one NM WHOLE BODY object, two detectors.

    Parameters
    ----------
    path : str or Path
        Output file (its folder must exist).
    anterior, posterior : ndarray of shape (rows, columns) or (windows, rows, columns)
        Counts (rounded to integers, at most 65535), **both in the anterior-view
        orientation** (columns towards the patient's left, rows towards the
        feet), as :func:`theranet.io.read_nm_planar` returns them; the
        posterior view is stored mirrored, as the posterior head sees it.
    ctx : DicomContext
    pixel_mm : float or (float, float)
        Pixel Spacing (between rows, between columns), mm.
    tracer : str, optional
        Catalogue name; default ``ctx.tracer``.
    acquisition_datetime : datetime
    frame_duration_s : float
        Duration of the sweep (Actual Frame Duration, whole ms).
    injection_datetime : datetime
    administered_activity_mbq : float
        Radionuclide Total Dose, MBq.
    energy_windows : sequence, optional
        One per plane; default: the tracer's first photopeaks.
    series_number : int

    Returns
    -------
    Path

    Notes
    -----
    Frames are ordered detector by detector (1: anterior, 2: posterior),
    energy window inside, indexed by Energy Window Vector and Detector Vector.
    Scan Length is the image length along the rows, Scan Velocity that length
    over the duration.
    """
    path = Path(path)
    _naive(acquisition_datetime, "acquisition_datetime")
    _naive(injection_datetime, "injection_datetime")
    if injection_datetime > acquisition_datetime:
        raise TimingError(
            "injection_datetime", "is after the acquisition start", injection_datetime.isoformat()
        )
    entry = _tracer(tracer or ctx.tracer)
    ant = np.asarray(anterior, dtype=np.float64)
    post = np.asarray(posterior, dtype=np.float64)
    if ant.ndim == 2:
        ant, post = ant[None], post[None]
    if ant.ndim != 3 or ant.shape != post.shape:
        raise ImageDataError(
            "posterior",
            "anterior and posterior must have the same shape (rows, columns) or "
            "(windows, rows, columns)",
            (ant.shape, post.shape),
        )
    for name, a in (("anterior", ant), ("posterior", post)):
        if not np.all(np.isfinite(a)) or (a.size and (a.min() < 0 or np.rint(a).max() > 65535)):
            raise ImageDataError(name, "counts must be finite and within 0..65535", None)
    windows = _windows(energy_windows, entry, n_default=ant.shape[0])
    if len(windows) != ant.shape[0]:
        raise ValueError(f"energy_windows: {len(windows)} windows for {ant.shape[0]} planes")
    ps = (
        (float(pixel_mm), float(pixel_mm)) if np.isscalar(pixel_mm) else tuple(map(float, pixel_mm))
    )  # type: ignore[arg-type]
    if len(ps) != 2 or not all(math.isfinite(p) and p > 0 for p in ps):
        raise GeometryError("pixel_mm", "must be positive", pixel_mm)
    if not (math.isfinite(frame_duration_s) and frame_duration_s > 0):
        raise TimingError("frame_duration_s", "must be positive", frame_duration_s)
    frame_ms = round(frame_duration_s * 1000.0)
    n_win, rows, cols = ant.shape
    frames, ewv, dv = [], [], []
    for det, planes in ((1, ant), (2, post[:, :, ::-1])):
        for w in range(n_win):
            frames.append(np.rint(planes[w]))
            ewv.append(w + 1)
            dv.append(det)
    key = acquisition_datetime.isoformat()
    ds = _common(
        ctx,
        sop_class=NM_IMAGE_STORAGE,
        sop_instance=ctx.uid("instance", "NM-WB", series_number, key),
        modality="NM",
        series_uid=ctx.uid("series", "NM-WB", series_number, key),
        series_number=series_number,
        series_datetime=acquisition_datetime,
        acquisition_datetime=acquisition_datetime,
        description=f"WB {entry.name} ANT/POST",
    )
    ds.ImageType = ["ORIGINAL", "PRIMARY", "WHOLE BODY", "EMISSION"]
    ds.InstanceNumber = 1
    ds.PatientOrientation = ["L", "F"]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = rows, cols
    ds.NumberOfFrames = len(frames)
    ds.FrameIncrementPointer = [Tag("EnergyWindowVector"), Tag("DetectorVector")]
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.PixelSpacing = [_ds(ps[0]), _ds(ps[1])]
    ds.ActualFrameDuration = frame_ms
    scan_length = rows * ps[0]
    ds.ScanVelocity = _ds(scan_length / (frame_ms / 1000.0))
    ds.ScanLength = round(scan_length)
    ds.WholeBodyTechnique = ["1PS"]
    ds.CountsAccumulated = int(sum(float(f.sum()) for f in frames))
    ds.EnergyWindowVector = ewv
    ds.NumberOfEnergyWindows = n_win
    ds.DetectorVector = dv
    ds.NumberOfDetectors = 2
    ds.EnergyWindowInformationSequence = _window_items(windows)
    ds.RadiopharmaceuticalInformationSequence = DicomSequence(
        [_radiopharmaceutical_item(entry, injection_datetime, administered_activity_mbq)]
    )
    dets = []
    for view in ("ANTERIOR", "POSTERIOR"):
        it = Dataset()
        it.CollimatorType = "PARA"
        it.FocalDistance = ""
        it.ImagePositionPatient = ""  # Type 2: a planar view has no volume geometry
        it.ImageOrientationPatient = ""
        it.ViewCodeSequence = DicomSequence([_code(*_VIEW_CODES[view])])
        dets.append(it)
    ds.DetectorInformationSequence = DicomSequence(dets)
    _patient_orientation_modules(ds)
    ds.PixelData = np.ascontiguousarray(np.stack(frames), dtype="<u2").tobytes()
    return _save([ds], [path], ctx)[0]
