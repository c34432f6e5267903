"""The dosimetry of one therapy cycle: SPECT/CT time points -> doses, DICOM and a report.

:func:`run_dosimetry` follows the steps a medical physicist takes, each recorded
in the report's methods table:

1. **Inputs.** :func:`theranet.io.discover` finds the time points (one SPECT per
   time point, DICOM or NIfTI with sidecar; the CT of the same time point when
   there is one). The tracer comes from the headers or ``tracer=`` and must be
   in the catalogue; the nuclide from the headers or ``nuclide=``.
2. **Regions.** A label map (NIfTI with sidecar, DICOM SEG or RTSTRUCT) on the
   grid of the reference CT (the CT of the first time point with one), read
   with :func:`theranet.io.regions.read_regions`; never silently resampled.
   Lesions can be added from a threshold on the reference SPECT.
3. **Registration.** Each time point's CT is registered rigidly (optionally
   also deformably) to the reference CT (:mod:`theranet.imaging.register`); the
   SPECT follows the transform. A transform that moves no body voxel by more
   than ``registration_tolerance_mm`` leaves the SPECT untouched (no needless
   interpolation); the quality of each registration is reported.
4. **Quantification.** Every SPECT is brought to the activity present at its
   acquisition (:func:`theranet.kinetics.tac.time_point_image`). With the
   system resolution (``fwhm_mm``) the region means are corrected for partial
   volume with the geometric transfer matrix
   (:mod:`theranet.imaging.partial_volume`; each region's recovery coefficient
   follows from the resolution and the region's size and shape); without it,
   they are not corrected and the report says so.
5. **Kinetics.** Per region the model is selected and integrated analytically
   with its delta-method SD (:mod:`theranet.kinetics`); a single time point
   needs a chosen single-time-point method (``stp="hanscheid"|"madsen"``).
6. **Dose.** The region TIAs are spread over their voxels on the CT grid
   (uniformly, the assumption of the partial-volume correction, or shaped like
   the time-integrated SPECT) and convolved with the project's voxel S-values
   (:func:`theranet.dosimetry.voxel.voxel_dose`: ``convolution``,
   ``density_corrected`` with the CT densities of
   :mod:`theranet.imaging.segment`, or ``local``). Mean dose and DVH per
   region; red marrow image-based from a ``red_marrow`` region and, when blood
   samples are given, blood-based (EANM 2010).
7. **Uncertainty.** EANM propagation (:mod:`theranet.dosimetry.uncertainty`):
   TIA from the fit covariance (with the counting SD of the corrected region
   means), the calibration (``calibration_sd_percent``), the recovery (from
   ``fwhm_sd_mm`` through a second transfer matrix) and the S-values.
8. **Radiobiology and registry.** BED and EQD2 for kidney, red marrow, liver
   and lesions (:mod:`theranet.radiobiology`); with ``registry=`` the cycle is
   recorded (:mod:`theranet.registry`) and the report gains the cumulative table
   over the recorded cycles and the plan of the next activity
   (:mod:`theranet.therapy`).
9. **Outputs** (written into a temporary folder beside ``OUT`` and moved in only
   once everything succeeded): ``doses.csv``, ``dose.nii.gz`` + ``dose.json``,
   ``dose.dcm`` (RT Dose) + ``dose_plan.dcm``, ``regions_seg.dcm`` (DICOM SEG of
   the regions on the CT), ``report.html`` and ``report.pdf``. The registry
   record is made after the data outputs and before the report (which shows
   it): only a failure while writing the report leaves a recorded cycle without
   its outputs.
"""

from __future__ import annotations

import csv
import logging
import math
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import NamedTuple

import numpy as np

from theranet.errors import Strictness, TheranetError
from theranet.image import Image, Labels, Quantity
from theranet.radiobiology import tissue_of

logger = logging.getLogger(__name__)

__all__ = [
    "CSV_COLUMNS",
    "DosimetryResult",
    "PipelineInputError",
    "RegionDose",
    "run_dosimetry",
    "tissue_of",
]

#: Columns of ``doses.csv`` (DESIGN.md contract), in order.
CSV_COLUMNS = (
    "region",
    "kind",
    "volume_ml",
    "mass_g",
    "tia_mbq_h",
    "tia_sd_mbq_h",
    "mean_dose_gy",
    "dose_sd_gy",
    "bed_gy",
    "model",
)

#: Relative standard uncertainty of the project's voxel S-values: the largest
#: deviation from the MIRD Pamphlet 17 self-voxel values found in
#: docs/validation.md (131I, 6 mm: -2.3 %), rounded up.
S_VALUE_REL_SD = 0.03

_STP_METHODS = ("hanscheid", "madsen")
#: Region-name parts of organs with physiological uptake or excretion, excluded from
#: threshold lesion search (clinical.md §3: kidneys, spleen, bladder, pituitary,
#: adrenals, bowel, salivary glands; the heart blood pool and thyroid too).
_PHYSIOLOGICAL = ("kidney", "spleen", "bladder", "pituitary", "adrenal", "bowel", "stomach",
                  "salivary", "thyroid", "heart", "urin")  # fmt: skip
_KINETICS = {
    "auto": "by curve shape (n >= 4): uptake seen (maximum after the first point) -> "
    "uptake-washout bi-exponential fitted to all points (clinical.md §6.2); falling from the "
    "first point -> constant head, trapezoids, and a mono-exponential fitted to the last 3 "
    "points integrated analytically (§6.3); n <= 3 -> the rules of §6.2; weighted least "
    "squares, terminal lambda >= lambda_phys, SD by the delta method (multiplied by "
    "sqrt(chi2/dof) where the points scatter beyond counting statistics)",
    "aicc": "weighted least squares, model by AICc (n >= 4) or the rules of §6.2 (n <= 3), "
    "analytic integral, SD by the delta method (multiplied by sqrt(chi2/dof) where the "
    "points scatter beyond counting statistics)",
}
_DOSE_METHODS = ("convolution", "density_corrected", "local")
_REGISTER = ("rigid", "deformable", "none")


class PipelineInputError(TheranetError, ValueError):
    """The study folder or an argument cannot give a dosimetry."""


@dataclass(frozen=True)
class RegionDose:
    """One row of ``doses.csv`` (and more, for the report)."""

    region: str
    kind: str
    volume_ml: float
    mass_g: float
    tia_mbq_h: float
    tia_sd_mbq_h: float
    mean_dose_gy: float
    dose_sd_gy: float
    model: str
    bed_gy: float | None = None
    method: str = ""
    eqd2_gy: float | None = None
    uncertainty: Mapping[str, float] = field(default_factory=dict)
    #: Fractions of the TIA before the first and after the last image (head rule or
    #: model extrapolation, not measured); None for a single time point.
    outside_images: tuple[float, float] | None = None

    def as_row(self) -> dict[str, str]:
        def num(x: float | None) -> str:
            return "" if x is None or not math.isfinite(x) else f"{x:.6g}"

        return {
            "region": self.region,
            "kind": self.kind,
            "volume_ml": num(self.volume_ml),
            "mass_g": num(self.mass_g),
            "tia_mbq_h": num(self.tia_mbq_h),
            "tia_sd_mbq_h": num(self.tia_sd_mbq_h),
            "mean_dose_gy": num(self.mean_dose_gy),
            "dose_sd_gy": num(self.dose_sd_gy),
            "bed_gy": num(self.bed_gy),
            "model": self.model,
        }


@dataclass(frozen=True, eq=False)
class DosimetryResult:
    """Outcome of :func:`run_dosimetry`.

    Attributes
    ----------
    out_dir : Path
    regions : dict of str to RegionDose
    dose : Image
        Absorbed dose map, Gy, on the CT grid.
    nuclide, tracer : str
    administered_activity_mbq : float or None
    times_h : tuple of float
        Hours after injection of the time points used.
    files : dict of str to Path
        ``"csv"``, ``"nifti"``, ``"sidecar"``, ``"rtdose"``, ``"rtplan"``,
        ``"seg"``, ``"html"``, ``"pdf"``.
    methods : tuple of (str, str)
        Each step and the choice made.
    warnings : tuple of str
    fits : dict
        Region -> selected :class:`~theranet.kinetics.fit.FitResult`; for
        single-time-point methods the effective half-life (h) the method assumes.
    tacs : dict
        Region -> (times_h, activity_mbq, activity_sd_mbq), partial-volume
        corrected when a resolution was given.
    """

    out_dir: Path
    regions: dict[str, RegionDose]
    dose: Image
    nuclide: str
    tracer: str
    administered_activity_mbq: float | None
    times_h: tuple[float, ...]
    files: dict[str, Path] = field(default_factory=dict)
    methods: tuple[tuple[str, str], ...] = ()
    warnings: tuple[str, ...] = ()
    fits: dict = field(default_factory=dict)
    tacs: dict = field(default_factory=dict)

    @property
    def notes(self) -> tuple[str, ...]:
        """The methods as sentences."""
        return tuple(f"{k}: {v}" for k, v in self.methods)


@dataclass(frozen=True)
class _TimePoint:
    label: str
    spect: Path
    ct_dir: Path | None


def _kind(name: str) -> str:
    low = name.lower()
    if low.startswith("lesion"):
        return "lesion"
    if "marrow" in low:
        return "marrow"
    return "organ"


# --------------------------------------------------------------------------- inputs


def _find_inputs(study_dir: Path, strictness: Strictness) -> tuple[list[_TimePoint], str]:
    from theranet.io import discover

    groups = discover(study_dir, strictness=strictness)
    groups = [g for g in groups if any(tp.of_kind("spect") for tp in g.time_points)]
    if not groups:
        raise PipelineInputError(
            "STUDY_DIR",
            "holds no reconstructed SPECT",
            str(study_dir),
            "give the folder of one patient's SPECT/CT time points",
        )
    if len(groups) > 1:
        raise PipelineInputError(
            "STUDY_DIR",
            "holds SPECT of several patients",
            [g.pseudonym for g in groups],
            "give the folder of one patient",
        )
    out: list[_TimePoint] = []
    injections = set()
    for tp in groups[0].time_points:
        sp = tp.of_kind("spect")
        if not sp:
            continue
        if len(sp) > 1:
            raise PipelineInputError(
                "STUDY_DIR",
                "a time point holds several SPECT series",
                [s.description for s in sp],
                "keep one reconstruction per time point",
                f"{tp.hours_after_injection} h",
            )
        injections.add(tp.injection)
        cts = tp.of_kind("ct")
        # a DICOM CT series is read from its folder, a NIfTI CT from its file
        ct_dir = _ct_source(cts[0].paths[0]) if cts else None
        label = sp[0].paths[0].parent.name
        out.append(_TimePoint(label, sp[0].paths[0], ct_dir))
    if len(injections) > 1:
        raise PipelineInputError(
            "STUDY_DIR",
            "SPECT of several administrations",
            sorted(str(i) for i in injections),
            "give the folder of one therapy cycle",
        )
    if not any(tp.ct_dir for tp in out):
        raise PipelineInputError(
            "STUDY_DIR", "holds no CT", str(study_dir), "add the CT of the SPECT/CT"
        )
    return out, groups[0].pseudonym


def _same_administration(tps: list[_TimePoint], images: list[Image]) -> None:
    """Every SPECT, as read, refers to one injection and one administered activity."""
    injections = {img.timing.injection for img in images}
    if len(injections) > 1:
        raise PipelineInputError(
            "RadiopharmaceuticalStartDateTime",
            "the SPECT time points were read with different injections",
            [f"{tp.label}: {img.timing.injection}" for tp, img in zip(tps, images, strict=True)],
            "correct the injection date and time (and UTC offset) in the SPECT headers: one "
            "cycle has one administration",
        )
    activities = [img.timing.administered_activity_mbq for img in images]
    known = [a for a in activities if a is not None]
    if known and (len(known) < len(activities) or max(known) - min(known) > 1e-3 * max(known)):
        raise PipelineInputError(
            "RadionuclideTotalDose",
            "the administered activity differs between the SPECT time points",
            [f"{tp.label}: {a} MBq" for tp, a in zip(tps, activities, strict=True)],
            "give the same administered activity in every SPECT header",
        )


def _is_nifti(path: Path) -> bool:
    return path.name.endswith((".nii", ".nii.gz"))


def _ct_source(first_file: Path) -> Path:
    """What a CT is read from: the NIfTI file itself, or the folder of a DICOM series."""
    return first_file if _is_nifti(first_file) else first_file.parent


def _read_ct(source: Path, mode: Strictness) -> Image:
    """A CT from a DICOM series folder or a NIfTI file with its sidecar (HU)."""
    from theranet.io import read_nifti, read_series

    if _is_nifti(source):
        return read_nifti(source, quantity=Quantity.HU, strictness=mode)
    return read_series(source, strictness=mode)


def _read_spect(path: Path, mode: Strictness, cf: float | None, nuclide: str | None) -> Image:
    from theranet.io import read_nifti, read_nm_spect

    if _is_nifti(path):
        img = read_nifti(path, strictness=mode)
        if nuclide is not None and img.nuclide is not None:
            from theranet.nuclides import Nuclide

            if Nuclide(nuclide).name != Nuclide(img.nuclide).name:
                raise PipelineInputError(
                    "nuclide",
                    f"differs from the sidecar's {img.nuclide!r}",
                    nuclide,
                    "leave out --nuclide or correct the sidecar",
                    path.name,
                )
        if nuclide is not None and img.nuclide is None:
            img = img.replace(nuclide=nuclide)
        if img.quantity is Quantity.ACTIVITY_CONCENTRATION and cf is not None:
            raise PipelineInputError(
                "calibration_cps_per_mbq",
                "given for an image already in MBq/mL",
                cf,
                "leave out --calibration-cps-per-mbq",
                path.name,
            )
        if img.quantity not in (Quantity.COUNTS, Quantity.ACTIVITY_CONCENTRATION):
            raise PipelineInputError(
                "SPECT",
                "a NIfTI SPECT must hold counts or an activity concentration",
                img.quantity.name,
                "write the reconstructed SPECT with its sidecar (theranet convert)",
                path.name,
            )
        if img.quantity is Quantity.COUNTS:
            if cf is None:
                raise PipelineInputError(
                    "calibration_cps_per_mbq",
                    "a count image needs the SPECT sensitivity",
                    path.name,
                    "give --calibration-cps-per-mbq",
                )
            img = img.to_activity_concentration(cf)
        return img
    return read_nm_spect(path, strictness=mode, calibration_cps_per_mbq=cf, nuclide=nuclide)


def _tracer(images: list[Image], tracer: str | None, nuclide: str):
    from theranet import radiopharmaceuticals as rp

    name = tracer or images[0].tracer
    if not name:
        raise PipelineInputError(
            "tracer",
            "the SPECT headers name no radiopharmaceutical",
            None,
            "give --tracer (one of the catalogue: theranet info --tracers)",
        )
    try:
        entry = rp.get(name)
    except rp.UnknownTracerError as exc:
        raise PipelineInputError(
            "tracer",
            "is not in the radiopharmaceutical catalogue",
            name,
            "give --tracer with a catalogue name (e.g. 177Lu-DOTATATE), or add the tracer "
            "to a user catalogue",
        ) from exc
    if entry.nuclide_name != nuclide:
        raise PipelineInputError(
            "tracer",
            f"is labelled with {entry.nuclide_name}, the SPECT with {nuclide}",
            name,
            "give the tracer the SPECT was acquired with (--tracer) or fix --nuclide",
        )
    return entry


# --------------------------------------------------------------------------- helpers


def _uniform_tia_map(labels_data: np.ndarray, masks: Mapping[str, np.ndarray],
                     tia: Mapping[str, float]) -> np.ndarray:  # fmt: skip
    out = np.zeros(labels_data.shape, dtype=np.float64)
    for name, m in masks.items():
        n = int(m.sum())
        if n:
            out[m] = tia[name] / n
    return out


def _scale_to_regions(tia_map: np.ndarray, masks: Mapping[str, np.ndarray],
                      tia: Mapping[str, float], *, zero_outside: bool) -> None:  # fmt: skip
    """Scale a voxel TIA map (MBq h, in place) so that each region sums to its TIA.

    With ``zero_outside`` (partial-volume corrected region TIAs) the voxels outside
    every region are set to 0: the transfer matrix has given their spill-out back
    to the regions, so keeping it would count it twice.
    """
    for n, m in masks.items():
        total = float(tia_map[m].sum())
        if total > 0:
            tia_map[m] *= tia[n] / total
        else:
            tia_map[m] = tia[n] / max(int(m.sum()), 1)
    if zero_outside:
        outside_all = np.ones(tia_map.shape, dtype=bool)
        for m in masks.values():
            outside_all &= ~m
        tia_map[outside_all] = 0.0


def _voxel_trapezoid(on_grid: list[np.ndarray], times: np.ndarray, lam_phys: float) -> np.ndarray:
    """Trapezoid TIA per voxel: linear rise from 0, physical tail."""
    a = [np.clip(x, 0.0, None) for x in on_grid]
    tia = 0.5 * times[0] * a[0]
    for i in range(1, len(a)):
        tia = tia + 0.5 * (times[i] - times[i - 1]) * (a[i - 1] + a[i])
    return tia + a[-1] / lam_phys


def _surface_fraction(mask: np.ndarray) -> float:
    """Half a voxel layer over the region's surface, relative to its volume.

    The volume uncertainty of a segmentation whose boundary is known to about
    half a voxel: (number of boundary faces / 2) / number of voxels.
    """
    faces = 0
    for ax in range(3):
        d = np.diff(mask.astype(np.int8), axis=ax)
        faces += int(np.count_nonzero(d))
        faces += int(np.count_nonzero(np.take(mask, 0, axis=ax)))
        faces += int(np.count_nonzero(np.take(mask, -1, axis=ax)))
    n = int(mask.sum())
    return 0.5 * faces / n if n else math.nan


def _move_into(tmp: Path, out_dir: Path) -> None:
    if not out_dir.exists():
        os.replace(tmp, out_dir)
        return
    for p in tmp.iterdir():
        os.replace(p, out_dir / p.name)
    tmp.rmdir()


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    from theranet._version import __version__

    out = {"theranet": __version__}
    for pkg in ("numpy", "scipy", "pydicom", "SimpleITK", "radioactivedecay", "icrp107-database",
                "highdicom", "matplotlib"):  # fmt: skip
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = "not installed"
    out["decay data"] = "ICRP Publication 107 (icrp107-database), radioactivedecay ICRP-107"
    out["electron/photon data"] = "NIST ESTAR, XCOM (shipped tables)"
    return out


#: Registration works on CTs block-averaged to about this voxel size, mm (the SPECT
#: scale; rigid accuracy on the phantom's shifted CTs: 0.03 mm).
_REGISTRATION_VOXEL_MM = 4.0


def _working_copy(ct: Image) -> Image:
    from theranet.imaging.register import working_copy

    return working_copy(ct, _REGISTRATION_VOXEL_MM)


def _frame_of_reference(ct_dir: Path) -> str | None:
    """FrameOfReferenceUID of the first DICOM file of a CT series folder (None for NIfTI)."""
    import pydicom

    if _is_nifti(ct_dir):
        return None
    for p in sorted(ct_dir.iterdir()):
        if p.is_file() and not p.name.startswith("."):
            try:
                ds = pydicom.dcmread(
                    p, stop_before_pixels=True, specific_tags=["FrameOfReferenceUID"]
                )
            except Exception:
                continue
            return str(ds.get("FrameOfReferenceUID", "")) or None
    return None


def _read_blood(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Blood samples: CSV, ``hours_after_injection``, ``activity_concentration_mbq_per_ml``."""
    need = ("hours_after_injection", "activity_concentration_mbq_per_ml")
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        cols = reader.fieldnames or []
        missing = [c for c in need if c not in cols]
        if missing:
            raise PipelineInputError(
                "blood",
                f"columns {missing} missing",
                cols,
                f"give a CSV with columns {list(need)} (activity at sampling, not "
                "decay-corrected, MBq per mL of whole blood)",
                path.name,
            )
        rows = list(reader)
    try:
        t = np.array([float(r[need[0]]) for r in rows])
        c = np.array([float(r[need[1]]) for r in rows])
    except ValueError as exc:
        raise PipelineInputError(
            "blood", "a value is not a number", str(exc), source=path.name
        ) from exc
    if t.size < 2 or np.any(~np.isfinite(t)) or np.any(t <= 0) or np.any(np.diff(t) <= 0):
        raise PipelineInputError(
            "blood",
            "needs at least two samples at increasing positive times after injection",
            t.tolist(),
            "check hours_after_injection",
            path.name,
        )
    if np.any(~np.isfinite(c)) or np.any(c <= 0):
        raise PipelineInputError(
            "blood",
            "a concentration is zero, negative or not finite",
            c.tolist(),
            "give the measured concentration of every sample (MBq/mL); leave out a sample "
            "below the detection limit",
            path.name,
        )
    return t, c


# --------------------------------------------------------------------------- main


def run_dosimetry(
    study_dir: str | Path,
    out_dir: str | Path,
    *,
    labels_path: str | Path | None = None,
    calibration_cps_per_mbq: float | None = None,
    calibration_sd_percent: float | None = None,
    nuclide: str | None = None,
    tracer: str | None = None,
    fwhm_mm: float | None = None,
    fwhm_sd_mm: float | None = None,
    register: str = "rigid",
    registration_tolerance_mm: float = 0.5,
    within_region: str | None = None,
    dose_method: str = "convolution",
    kernel_extent_mm: float = 30.0,
    kinetics: str = "auto",
    stp: str | None = None,
    lesion_threshold_mbq_per_ml: float | None = None,
    lesion_min_volume_ml: float = 1.0,
    blood_path: str | Path | None = None,
    hematocrit: float | None = None,
    red_marrow_mass_g: float | None = None,
    strictness: Strictness | str = "strict",
    report: bool = True,
    registry: object | None = None,
    patient_id: str | None = None,
    new_treatment: bool = False,
    progress: Callable[[str], None] | None = None,
) -> DosimetryResult:
    """Doses per region, a dose map, DICOM and a report from one cycle's SPECT/CT.

    Parameters
    ----------
    study_dir : path
        Folder with the time points (DICOM SPECT and CT, or NIfTI with sidecars),
        searched recursively.
    out_dir : path
        Output folder (created; files of the same names are replaced).
    labels_path : path, optional
        Regions on the reference CT grid: NIfTI label map with sidecar, DICOM SEG
        or RTSTRUCT; default ``STUDY_DIR/labels.nii.gz``.
    calibration_cps_per_mbq : float, optional
        SPECT sensitivity for count images (refused for activity images).
    calibration_sd_percent : float, optional
        Relative standard uncertainty of the calibration, %. Not included (and
        the report says so) when not given.
    nuclide, tracer : str, optional
        Override the headers; the tracer must be in the catalogue.
    fwhm_mm : float, optional
        Reconstructed SPECT resolution (Gaussian FWHM), mm, for the
        partial-volume correction. Without it, none is applied.
    fwhm_sd_mm : float, optional
        Its standard uncertainty, mm (recovery uncertainty).
    register : {"rigid", "deformable", "none"}
        Registration of the time points to the reference CT.
    registration_tolerance_mm : float
        A transform moving no body voxel further than this keeps the SPECT as is.
    within_region : {"uniform", "spect"}, optional
        Distribution of a region's TIA over its voxels; default ``"uniform"``
        with partial-volume correction (its assumption), else ``"spect"``.
    dose_method : {"convolution", "density_corrected", "local"}
    kernel_extent_mm : float
        Half-width of the voxel S-value kernel, mm (rounded up to whole voxels).
    kinetics : {"auto", "aicc"}
        Model choice per region (see ``_KINETICS``): ``auto`` by curve shape,
        ``aicc`` by :func:`~theranet.kinetics.fit.select_model`.
    stp : {"hanscheid", "madsen"}, optional
        Required when there is a single time point.
    lesion_threshold_mbq_per_ml : float, optional
        Adds lesions: connected voxels of the reference SPECT above this
        concentration (outside the named regions other than the liver, pancreas
        and remainder-like tissue), at least ``lesion_min_volume_ml``.
    blood_path : path, optional
        Blood samples (CSV: ``hours_after_injection``,
        ``activity_concentration_mbq_per_ml``) for the blood-based marrow dose.
        Default ``STUDY_DIR/blood_samples.csv`` when it exists.
    hematocrit : float, optional
        Gives ``RMBLR = 0.19/(1 - Hct)`` (Sgouros 1993); default RMBLR 1
        (177Lu peptides, Forrer 2009).
    red_marrow_mass_g : float, optional
        Marrow mass for the blood-based method; default the mass of the
        ``red_marrow`` region, else refused.
    strictness : {"strict", "lenient"}
    report : bool
        Write ``report.html`` and ``report.pdf``.
    registry : Registry, str or Path, optional
        Record the cycle in this treatment registry (a
        :class:`~theranet.registry.Registry`, a database URL or a SQLite file);
        recorded in one transaction before the outputs are moved into ``OUT``,
        so a refused cycle (e.g. dated before the previous one) writes nothing.
        The report then shows the cumulative BED over the recorded cycles.
    patient_id : str, optional
        Pseudonymous identifier in the registry; default the pseudonym
        :func:`theranet.io.discover` derives from the headers.
    new_treatment : bool
        Record the cycle as cycle 1 of a new treatment (another course or
        radiopharmaceutical); otherwise it joins the patient's latest treatment.
    progress : callable, optional
        Called with a short message at each step.

    Returns
    -------
    DosimetryResult

    Raises
    ------
    PipelineInputError
        Missing or inconsistent inputs; nothing is written to ``out_dir``.
    TheranetError
        From the readers, registration and kinetics (typed, with the fix).
    """
    say = progress or (lambda msg: None)
    study_dir = Path(study_dir)
    out_dir = Path(out_dir)
    mode = Strictness.parse(strictness)
    # ---- arguments, before reading anything
    if register not in _REGISTER:
        raise PipelineInputError("register", "unknown", register, f"use one of {_REGISTER}")
    if dose_method not in _DOSE_METHODS:
        raise PipelineInputError("dose_method", "unknown", dose_method, f"use {_DOSE_METHODS}")
    if kinetics not in _KINETICS:
        raise PipelineInputError("kinetics", "unknown", kinetics, f"use one of {list(_KINETICS)}")
    if stp is not None and stp not in _STP_METHODS:
        raise PipelineInputError("stp", "unknown", stp, f"use one of {_STP_METHODS}")
    if within_region is None:
        within_region = "uniform" if fwhm_mm is not None else "spect"
    if within_region not in ("spect", "uniform"):
        raise PipelineInputError("within_region", "unknown", within_region, "use spect|uniform")
    if not (math.isfinite(kernel_extent_mm) and kernel_extent_mm > 0):
        raise PipelineInputError("kernel_extent_mm", "must be finite and > 0", kernel_extent_mm)
    for name, value in (("fwhm_mm", fwhm_mm), ("fwhm_sd_mm", fwhm_sd_mm),
                        ("calibration_sd_percent", calibration_sd_percent)):  # fmt: skip
        if value is not None and not (math.isfinite(value) and value >= 0):
            raise PipelineInputError(name, "must be finite and >= 0", value)
    if fwhm_mm is not None and fwhm_mm <= 0:
        raise PipelineInputError("fwhm_mm", "must be > 0", fwhm_mm, "give the system FWHM in mm")
    if fwhm_sd_mm is not None and fwhm_mm is None:
        raise PipelineInputError(
            "fwhm_sd_mm", "given without fwhm_mm", fwhm_sd_mm, "give --fwhm-mm as well"
        )
    if not study_dir.is_dir():
        raise PipelineInputError("STUDY_DIR", "is not a folder", str(study_dir))
    if labels_path is None:
        labels_path = study_dir / "labels.nii.gz"
        if not labels_path.is_file():
            raise PipelineInputError(
                "labels",
                "no label map given and STUDY_DIR has no labels.nii.gz",
                str(study_dir),
                "give the regions with --labels (NIfTI label map with a JSON sidecar naming "
                "them, DICOM SEG or RTSTRUCT, on the CT of the first time point)",
            )
    labels_path = Path(labels_path)
    if not labels_path.is_file():
        raise PipelineInputError("labels", "file not found", str(labels_path), "check --labels")
    if blood_path is None and (study_dir / "blood_samples.csv").is_file():
        blood_path = study_dir / "blood_samples.csv"
    if blood_path is not None and not Path(blood_path).is_file():
        raise PipelineInputError("blood", "file not found", str(blood_path))
    if blood_path is not None:  # checked now, not after the imaging work
        _read_blood(Path(blood_path))
    if hematocrit is not None:
        from theranet.dosimetry.marrow import rmblr_from_hematocrit

        rmblr_from_hematocrit(hematocrit)
    if out_dir.exists() and not out_dir.is_dir():
        raise PipelineInputError("OUT", "exists and is not a folder", str(out_dir))

    methods: list[tuple[str, str]] = []
    warnings: list[str] = []

    # ---- 1. inputs
    say("finding the time points")
    tps, pseudonym = _find_inputs(study_dir, mode)
    if len(tps) == 1 and stp is None:
        raise PipelineInputError(
            "STUDY_DIR",
            "a single SPECT time point: a curve cannot be fitted",
            tps[0].label,
            "choose a single-time-point method (--stp hanscheid or --stp madsen) or add "
            "time points",
        )
    if len(tps) > 1 and stp is not None:
        raise PipelineInputError(
            "stp",
            "a single-time-point method was asked for but there are several time points",
            len(tps),
            "leave out --stp (the curve is fitted) or give one time point",
        )
    images: list[Image] = []
    for i, tp in enumerate(tps, 1):
        say(f"reading SPECT {i}/{len(tps)}")
        images.append(_read_spect(tp.spect, mode, calibration_cps_per_mbq, nuclide))
    from theranet.kinetics.tac import time_point_image

    points = [time_point_image(img) for img in images]
    order = np.argsort([p[0] for p in points])
    tps = [tps[i] for i in order]
    points = [points[i] for i in order]
    times = np.array([p[0] for p in points])
    if np.any(np.diff(times) <= 0):
        raise PipelineInputError(
            "STUDY_DIR", "two time points at the same time", times.tolist(), "remove one"
        )
    nuclides = {p[1].nuclide for p in points}
    if len(nuclides) != 1 or None in nuclides:
        raise PipelineInputError(
            "nuclide",
            "unknown or different between time points",
            sorted(map(str, nuclides)),
            "give --nuclide or SPECT headers with the radionuclide",
        )
    from theranet.nuclides import Nuclide

    nuc = Nuclide(next(iter(nuclides)))
    entry = _tracer(images, tracer, nuc.name)
    _same_administration(tps, [p[1] for p in points])
    injection = points[0][1].timing.injection
    activity_mbq = points[0][1].timing.administered_activity_mbq
    methods.append(("radiopharmaceutical", f"{entry.name} ({nuc.name}), catalogue entry"))
    methods.append(
        (
            "time points",
            ", ".join(f"{tp.label} ({t:.1f} h)" for tp, t in zip(tps, times, strict=True)),
        )
    )

    # ---- 2. reference CT and regions
    from theranet.io.regions import read_regions

    ref_index = next(i for i, tp in enumerate(tps) if tp.ct_dir is not None)
    ref_ct_dir = tps[ref_index].ct_dir
    say("reading the reference CT")
    ct = _read_ct(ref_ct_dir, mode)
    is_nifti = labels_path.name.lower().endswith((".nii", ".nii.gz"))
    for_uid = None if is_nifti else _frame_of_reference(ref_ct_dir)
    labels: Labels = read_regions(labels_path, ct, frame_of_reference_uid=for_uid)
    if not labels.present():
        raise PipelineInputError("labels", "no named region has a voxel", labels_path.name)
    methods.append(("regions", f"{labels_path.name} on the CT of {tps[ref_index].label}"))
    ref_spect = points[ref_index][1]

    # ---- 3. registration
    from theranet.report.model import RegistrationRow

    reg_rows: list[RegistrationRow] = []
    aligned: list[Image] = []
    fixed_ct: Image | None = None
    if register != "none":
        from theranet.imaging import register as reg

    for i, (tp, (t_h, img)) in enumerate(zip(tps, points, strict=True)):
        if i == ref_index:
            reg_rows.append(RegistrationRow(tp.label, t_h, "reference"))
            aligned.append(img)
            continue
        if register == "none" or tp.ct_dir is None:
            if tp.ct_dir is None and register != "none":
                msg = (
                    f"time point {tp.label} has no CT: it cannot be registered; its SPECT is "
                    "assumed to be aligned with the reference"
                )
                if mode is Strictness.STRICT:
                    raise PipelineInputError(
                        "STUDY_DIR",
                        "a time point has no CT to register",
                        tp.label,
                        "add its CT, or give --register none if the SPECTs are aligned",
                    )
                warnings.append(msg)
            reg_rows.append(RegistrationRow(tp.label, t_h, "none"))
            aligned.append(img if img.same_grid(ref_spect) else img.resample_to(ref_spect))
            continue
        say(f"registering {tp.label}")
        moving_ct = _working_copy(_read_ct(tp.ct_dir, mode))
        if fixed_ct is None:
            fixed_ct = _working_copy(ct)
        # scanner coordinates as the start (serial CTs of one scanner share them)
        r = reg.register_rigid(fixed_ct, moving_ct, shrink_factors=(2, 1), initializer="none")
        kind = "rigid"
        if register == "deformable":
            r = reg.register_deformable(fixed_ct, moving_ct, initial=r)
            kind = "rigid + bspline"
        moved = r.max_displacement_mm > registration_tolerance_mm
        if moved or not img.same_grid(ref_spect):
            aligned.append(reg.apply(r, img, ref_spect))
        else:
            aligned.append(img)
        reg_rows.append(
            RegistrationRow(
                tp.label,
                t_h,
                kind
                + ("" if moved else f" (within {registration_tolerance_mm:g} mm: not applied)"),
                tuple(r.translation_mm),
                tuple(r.rotation_deg),
                r.metric_before,
                r.metric_after,
            )
        )
    methods.append(
        (
            "registration",
            "none (SPECTs assumed aligned)"
            if register == "none"
            else f"{register} CT-to-CT (SimpleITK, Mattes mutual information, on CTs averaged "
            f"to about {_REGISTRATION_VOXEL_MM:g} mm voxels) to the reference CT; SPECT "
            f"resampled linearly only when a body voxel moves > {registration_tolerance_mm:g} mm",
        )
    )

    # ---- lesions from a threshold
    if lesion_threshold_mbq_per_ml is not None:
        labels = _add_threshold_lesions(
            labels, aligned[ref_index], lesion_threshold_mbq_per_ml, lesion_min_volume_ml, methods
        )

    # ---- 4. quantification (partial volume)
    from theranet.imaging.partial_volume import transfer_matrix

    say("region means" + (" and partial-volume correction" if fwhm_mm else ""))
    lab = np.asarray(labels.image.data)
    body = np.asarray(ct.data) > -400.0
    unlabelled = body & (lab == 0)
    extra = {}
    if unlabelled.sum() * ct.voxel_volume_ml >= 5.0:
        extra["unlabelled_body"] = unlabelled
    if fwhm_mm:
        gtm = transfer_matrix(labels, ref_spect, fwhm_mm, masks=extra)
        cond = gtm.condition_number
        methods.append(
            (
                "partial-volume correction",
                f"geometric transfer matrix (Rousset 1998), Gaussian PSF FWHM {fwhm_mm:g} mm, "
                f"{len(gtm.regions)} regions, condition number {cond:.3g}; assumes uniform "
                "concentration in each region",
            )
        )
    else:
        gtm = transfer_matrix(labels, ref_spect, 1e-3, masks=extra)
        warnings.append(
            "no partial-volume correction (no system resolution given): organ and lesion "
            "activities are biased by spill-out and spill-in; give --fwhm-mm"
        )
        methods.append(("partial-volume correction", "none (no system resolution given)"))
    names = list(gtm.regions)
    volumes = dict(zip(names, gtm.volume_ml, strict=True))
    if fwhm_mm:
        corrected = [gtm.correct(img) for img in aligned]
        conc = np.array([c.concentration_mbq_per_ml for c in corrected])  # (T, N)
        conc_sd = np.array([c.concentration_sd_mbq_per_ml for c in corrected])
    else:  # the plain region means, as the report says (no transfer matrix solved)
        measured = [gtm.measure(img) for img in aligned]
        conc = np.array([m for m, _ in measured])  # (T, N)
        conc_sd = np.sqrt(np.array([v for _, v in measured]))
    rc_rel_sd = np.zeros(len(names))
    if fwhm_mm and fwhm_sd_mm:
        say("recovery uncertainty")
        gtm2 = transfer_matrix(labels, ref_spect, fwhm_mm + fwhm_sd_mm, masks=extra)
        c2 = np.array([gtm2.correct(img).concentration_mbq_per_ml for img in aligned])
        with np.errstate(divide="ignore", invalid="ignore"):
            rel = np.abs(c2 - conc) / conc
        rc_rel_sd = np.nanmean(np.where(np.isfinite(rel), rel, np.nan), axis=0)
        rc_rel_sd = np.nan_to_num(rc_rel_sd, nan=0.0)
        methods.append(("recovery uncertainty", f"FWHM {fwhm_mm:g} ± {fwhm_sd_mm:g} mm"))

    # ---- 5. kinetics
    from theranet.kinetics.integrate import AFTER_LAST, BEFORE_FIRST

    fits: dict[str, object] = {}
    tia: dict[str, float] = {}
    tia_rel_sd: dict[str, float] = {}
    model_of: dict[str, str] = {}
    tacs: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    outside: dict[str, tuple[float, float]] = {}
    shapes: dict[str, _Piecewise] = {}  # hybrid curves: the curve the BED follows
    stp_fallback: list[str] = []
    inflate: dict[str, float] = {}  # Birge ratio of fits that scatter beyond counting
    bound_notes: list[str] = []
    for k, name in enumerate(names):
        a = conc[:, k] * volumes[name]
        s = conc_sd[:, k] * volumes[name]
        tacs[name] = (times, a, s)
        say(f"kinetics: {name}")
        if np.all(a <= 0):
            tia[name], tia_rel_sd[name], model_of[name] = 0.0, 0.0, "no activity"
            continue
        if stp is not None:
            res, fits[name] = _stp_tia(stp, a[0], times[0], entry, name, nuc.name, stp_fallback)
            model_of[name] = res.method
        else:
            sigma = s if np.all(np.isfinite(s)) and np.all(s > 0) else None
            a_pos = np.clip(a, 0.0, None)
            res, fit, model_of[name] = _region_tia(times, a_pos, sigma, nuc.name, kinetics)
            if fit is not None:
                fits[name] = fit
                inflate[name] = _misfit_factor(fit, sigma)
                bound_notes += [f"{name}: {w}" for w in fit.warnings if "on a bound" in w]
            if res.method == "hybrid":
                shapes[name] = _hybrid_shape(times, a_pos, fit, res.tia_mbq_h)
        tia[name] = res.tia_mbq_h
        rel = res.rel_sd * inflate.get(name, 1.0)
        tia_rel_sd[name] = rel if math.isfinite(rel) else math.nan
        if stp is None and res.tia_mbq_h > 0:
            outside[name] = (
                res.details[BEFORE_FIRST] / res.tia_mbq_h,
                res.details[AFTER_LAST] / res.tia_mbq_h,
            )
    if stp is not None:
        warnings.append(
            f"single time point ({stp}): the TIA rests on an assumed mono-exponential "
            "clearance; its method error is not in the SD"
        )
    scaled = sorted(n for n, f in inflate.items() if f > 1.0)
    if scaled:
        warnings.append(
            "the activity points scatter more about the fitted curve than counting "
            f"statistics explain in {len(scaled)} region(s) ({', '.join(scaled)}): their "
            "TIA SDs were multiplied by sqrt(chi2/dof) of the fit"
        )
    warnings.extend(bound_notes)
    if stp_fallback:
        warnings.append(
            "madsen: no population effective half-life for "
            + ", ".join(stp_fallback)
            + ": Hänscheid used for these regions"
        )
    methods.append(("kinetics", f"single-time-point {stp}" if stp else _KINETICS[kinetics]))

    # ---- 6. voxel TIA and dose
    say("voxel TIA map")
    masks = {n: (labels.mask(n) if n in labels.present() else extra[n]) for n in names}
    if within_region == "uniform":
        tia_map = _uniform_tia_map(lab, masks, tia)
    else:
        v_ml = ct.voxel_volume_ml
        on_ct = [
            np.asarray(img.resample_to(ct, method="conserve").data, np.float64) * v_ml
            for img in aligned
        ]
        tia_map = _voxel_trapezoid(on_ct, times, nuc.decay_constant_per_h)
        del on_ct
        _scale_to_regions(tia_map, masks, tia, zero_outside=bool(fwhm_mm))
    methods.append(
        (
            "TIA within regions",
            within_region
            + (
                " (outside every region 0: the partial-volume correction returned the "
                "spill-out to the regions)"
                if within_region == "spect" and fwhm_mm
                else ""
            ),
        )
    )
    tia_img = Image(
        tia_map.astype(np.float32),
        ct.affine,
        Quantity.ACTIVITY,
        modality="OT",
        nuclide=nuc.name,
        tracer=entry.name,
        patient=ct.patient,
        provenance=ct.provenance.with_step(
            f"time-integrated activity (MBq h per voxel), region TIA spread {within_region}"
        ),
    )
    from theranet.dosimetry.dvh import dvh as make_dvh
    from theranet.dosimetry.uncertainty import dose_uncertainty
    from theranet.dosimetry.voxel import voxel_dose
    from theranet.imaging.segment import hu_to_density

    density = hu_to_density(np.asarray(ct.data, np.float64))
    say(f"absorbed dose ({dose_method})")
    voxel_min_mm = float(np.min(ct.spacing_mm))
    n_kernel = max(5, math.ceil(kernel_extent_mm / voxel_min_mm))
    dres = voxel_dose(
        tia_img,
        nuc.name,
        method=dose_method,
        density_g_per_cm3=density if dose_method != "convolution" else None,
        n_voxels=n_kernel if dose_method != "local" else None,
    )
    dose = np.clip(np.asarray(dres.dose.data, np.float64), 0.0, None)
    dose_img = dres.dose.replace(
        data=dose.astype(np.float32),
        provenance=dres.dose.provenance.with_step("negative FFT round-off set to 0"),
    )
    methods.append(
        (
            "absorbed dose",
            f"{dose_method}: {dres.kernel}"
            + (
                f"; kernel extent {n_kernel} voxels (>= {kernel_extent_mm:g} mm): photon "
                "cross-dose from farther is not included"
                if dose_method != "local"
                else ""
            ),
        )
    )
    u_cal = None if calibration_sd_percent is None else calibration_sd_percent / 100.0
    if u_cal is None:
        warnings.append("calibration uncertainty not included (give --calibration-sd-percent)")
    rows: dict[str, RegionDose] = {}
    dvhs: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    v_ml = ct.voxel_volume_ml
    for k, name in enumerate(names):
        m = masks[name]
        mean = float(dose[m].mean())
        mass = float(density[m].sum()) * v_ml
        u_tia = tia_rel_sd[name]
        u_tia_total = math.hypot(u_tia, rc_rel_sd[k]) if math.isfinite(u_tia) else math.nan
        u_v = _surface_fraction(m)
        if math.isfinite(u_tia_total):
            # The same VOI defines the activity (c x V) and the mass: for a dose
            # driven by the concentration the volume error cancels (rho = 1).
            sd, breakdown = dose_uncertainty(
                mean,
                u_tia_rel=u_tia_total,
                u_mass_rel=0.0,
                u_s_rel=S_VALUE_REL_SD,
                u_calibration_rel=u_cal,
            )
            # relative variances that add up: the TIA term split into the fit and
            # the recovery; the VOI surface fraction is a relative SD, not a variance
            breakdown = {
                **breakdown,
                "tia": u_tia**2,
                "recovery": rc_rel_sd[k] ** 2,
                "volume_rel_sd": u_v,
            }
        else:
            sd, breakdown = math.nan, {}
        dh = make_dvh(dose, m)
        dvhs[name] = (np.asarray(dh.dose_gy), np.asarray(dh.volume_fraction))
        rows[name] = RegionDose(
            region=name,
            kind=_kind(name),
            volume_ml=volumes[name],
            mass_g=mass,
            tia_mbq_h=tia[name],
            tia_sd_mbq_h=tia[name] * u_tia_total if math.isfinite(u_tia_total) else math.nan,
            mean_dose_gy=mean,
            dose_sd_gy=sd,
            model=model_of[name],
            method=f"voxel {dose_method}"
            + (" (image-based red marrow)" if _kind(name) == "marrow" else ""),
            uncertainty=breakdown,
            outside_images=outside.get(name),
        )
    methods.append(
        (
            "uncertainty",
            "EANM (Gear 2018): TIA from the fit covariance"
            + (", recovery from the FWHM uncertainty" if fwhm_sd_mm else "")
            + (f", calibration {calibration_sd_percent:g} %" if u_cal is not None else "")
            + f", S-values {100 * S_VALUE_REL_SD:g} %; mass and activity share the VOI "
            "(volume error cancels in the mean dose)",
        )
    )
    # ---- radiobiology: BED and EQD2 of the tissues with parameters
    rows = _add_bed(rows, fits, shapes, methods, warnings)
    # ---- marrow, blood-based
    if blood_path is not None:
        rows["red_marrow_blood_based"] = _blood_marrow(
            Path(blood_path), nuc.name, entry, hematocrit, red_marrow_mass_g, rows, methods
        )

    # ---- 7. outputs
    if _is_nifti(ref_ct_dir):
        methods.append(
            (
                "DICOM outputs",
                "none: the CT is NIfTI, so an RT Dose or a SEG has no DICOM series to refer "
                "to; the dose is written as NIfTI with its sidecar",
            )
        )
    say("writing the outputs")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}-", dir=out_dir.parent))
    tmp.chmod(0o755)
    result = DosimetryResult(
        out_dir=out_dir,
        regions=rows,
        dose=dose_img,
        nuclide=nuc.name,
        tracer=entry.name,
        administered_activity_mbq=activity_mbq,
        times_h=tuple(float(t) for t in times),
        methods=tuple(methods),
        warnings=tuple(warnings),
        fits=fits,
        tacs=tacs,
    )
    try:

        def record():
            if registry is None:
                return None
            say("recording the cycle in the registry")
            return _record(registry, patient_id or pseudonym, result, injection, new_treatment)

        _write_outputs(tmp, result, ct, ref_ct_dir, labels, aligned[0], dvhs, reg_rows,
                       injection, report, record)  # fmt: skip
        _move_into(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    files = {
        "csv": out_dir / "doses.csv",
        "nifti": out_dir / "dose.nii.gz",
        "sidecar": out_dir / "dose.json",
    }
    if not _is_nifti(ref_ct_dir):
        files.update(
            rtdose=out_dir / "dose.dcm",
            rtplan=out_dir / "dose_plan.dcm",
            seg=out_dir / "regions_seg.dcm",
        )
    if report:
        files.update(html=out_dir / "report.html", pdf=out_dir / "report.pdf")
    say(f"wrote {out_dir}")
    return DosimetryResult(**{**result.__dict__, "files": files})


class _Piecewise(NamedTuple):
    """A hybrid curve as integrated: knots from 0 (MBq), then ``a1 exp(-lam t)``."""

    knots_h: tuple[float, ...]
    activities_mbq: tuple[float, ...]
    tail_a1_mbq: float
    tail_lambda_per_h: float
    tia_mbq_h: float


def _hybrid_shape(times: np.ndarray, a: np.ndarray, fit, tia_mbq_h: float) -> _Piecewise:
    """The curve :func:`hybrid_tia` integrates: constant head to t1, straight lines to
    the first point of the fitted tail, then the fitted mono-exponential."""
    k = len(times) - len(fit.times_h)
    a1, lam = (float(v) for v in fit.params)
    t = [float(x) for x in times[: k + 1]]
    v = [float(x) for x in a[: k + 1]]
    if t[0] > 0.0:
        t, v = [0.0, *t], [v[0], *v]
    return _Piecewise(tuple(t), tuple(v), a1, lam, tia_mbq_h)


def _add_bed(rows: dict[str, RegionDose], fits: Mapping, shapes: Mapping[str, _Piecewise],
             methods: list, warnings: list):  # fmt: skip
    """BED (Dale, dose rate shaped like the integrated activity curve) and EQD2 per region."""
    import dataclasses

    from theranet import radiobiology as rb

    out = dict(rows)
    used: dict[str, rb.Tissue] = {}
    for name, r in rows.items():
        tissue_name = tissue_of(name)
        fit = fits.get(name)
        if tissue_name is None or fit is None or not (r.mean_dose_gy > 0):
            continue
        t = rb.tissue(tissue_name)
        try:
            if isinstance(fit, float):  # single time point: the method's T_eff
                rate = rb.DoseRate.mono(r.mean_dose_gy, fit)
            elif name in shapes:  # head, trapezoids and the fitted tail
                sh = shapes[name]
                f = r.mean_dose_gy / sh.tia_mbq_h  # Gy per MBq h
                rate = rb.PiecewiseDoseRate(
                    sh.knots_h,
                    tuple(v * f for v in sh.activities_mbq),
                    sh.tail_a1_mbq * f,
                    sh.tail_lambda_per_h,
                )
            else:
                rate = rb.DoseRate.from_fit(fit, r.mean_dose_gy)
        except rb.RadiobiologyError as exc:
            warnings.append(f"no BED for {name}: {exc.problem}")
            continue
        bed = rb.bed_gy(rate, t)
        used[tissue_name] = t
        out[name] = dataclasses.replace(r, bed_gy=bed, eqd2_gy=rb.eqd2_gy(bed, t))
    if used:
        methods.append(
            (
                "radiobiology",
                "BED = D + G D^2/(alpha/beta) with the dose rate shaped like the integrated "
                "activity curve (Dale 1985; for hybrid curves the constant head, straight "
                "lines between the images and the fitted tail, in closed form segment by "
                "segment; for a single time point a mono-exponential with the population "
                "effective half-life where the table has one, else half the scan time, the "
                "shorter of the two half-lives for which Hänscheid's estimate is exact, "
                "giving the larger BED); "
                + "; ".join(
                    f"{n}: alpha/beta {t.alpha_beta_gy:g} Gy, T_rep {t.repair_half_time_h:g} h"
                    for n, t in sorted(used.items())
                ),
            )
        )
    return out


def _misfit_factor(fit, sigma) -> float:
    """``sqrt(max(1, chi2/dof))`` for a fit weighted by the counting SDs (the Birge
    ratio: the per-point SD holds counting noise only, clinical.md §6.5 asks for the
    VOI and reconstruction scatter too, which shows as misfit); 1 otherwise."""
    if sigma is None or fit.dof <= 0 or not math.isfinite(fit.chi2):
        return 1.0
    return math.sqrt(max(1.0, fit.chi2 / fit.dof))


def _region_tia(times: np.ndarray, a: np.ndarray, sigma, nuclide: str, rule: str):
    """(TIAResult, FitResult or None, model name) of one region's curve."""
    from theranet.kinetics.fit import fit_tac, select_model
    from theranet.kinetics.integrate import hybrid_tia, tia_from_fit

    n = len(times)
    if rule == "auto" and n >= 4:
        if int(np.argmax(a)) > 0:
            fit = fit_tac(times, a, "biexp_uptake", nuclide=nuclide, sigma_mbq=sigma)
            if fit.success:
                return tia_from_fit(fit, nuclide=nuclide), fit, "biexp_uptake"
        res, fit = hybrid_tia(times, a, nuclide=nuclide, fit_points=3, head="constant",
                              sigma_mbq=sigma)  # fmt: skip
        return res, fit, "hybrid (trapezoid + mono tail)"
    sel = select_model(times, a, sigma, nuclide=nuclide)
    return tia_from_fit(sel.best, nuclide=nuclide), sel.best, sel.best.model_name


def _population_t_eff_h(tracer: str, region: str) -> float | None:
    """Mean population effective half-life of a region (h), by its name or its tissue
    (``kidney_cortex`` -> kidney, an alias of kidneys; ``lesion_*`` -> tumour); None if
    the table has none."""
    from theranet.kinetics.population import population_half_life

    for organ in (region, tissue_of(region)):
        if organ is None:
            continue
        try:
            return float(population_half_life(tracer, organ).mean_h)
        except (KeyError, TheranetError, ValueError):
            continue
    return None


def _stp_tia(method: str, activity_mbq: float, time_h: float, entry, region: str, nuclide: str,
             fallback: list[str]):  # fmt: skip
    """(TIAResult, effective half-life for the BED in h) of one region's single image.

    Madsen uses the population effective half-life of the region (by name or
    tissue); a region without one gets Hänscheid and is added to ``fallback``.
    The BED's half-life is the population one where known, else ``t_s / 2``.
    """
    from theranet.kinetics.stp import hanscheid_tia, madsen_tia

    t_pop = _population_t_eff_h(entry.name, region)
    if method == "madsen" and t_pop is not None:
        res = madsen_tia(activity_mbq, time_h, t_pop_h=t_pop, nuclide=nuclide)
    else:
        if method == "madsen":
            fallback.append(region)
        res = hanscheid_tia(activity_mbq, time_h)
    return res, (t_pop if t_pop is not None else time_h / 2.0)


def _add_threshold_lesions(labels: Labels, spect: Image, threshold: float, min_ml: float,
                           methods: list) -> Labels:  # fmt: skip
    from theranet.imaging.segment import threshold_lesions

    on_ct = spect.resample_to(labels.image, method="linear")
    # lesions are searched outside the organs with physiological uptake or excretion
    exclude = np.zeros(labels.image.shape, dtype=bool)
    for name in labels.present():
        if any(k in name for k in _PHYSIOLOGICAL):
            exclude |= labels.mask(name)
    found = threshold_lesions(on_ct, threshold, min_volume_ml=min_ml, exclude=exclude)
    data = np.array(labels.image.data, dtype=np.int32)
    names = dict(labels.names)
    base = max([100, *names]) + 1
    for i, (value, name) in enumerate(sorted(found.names.items())):
        m = np.asarray(found.image.data) == value
        data[m] = base + i
        names[base + i] = name if name.startswith("lesion") else f"lesion_{name}"
    methods.append(
        ("lesions", f"threshold {threshold:g} MBq/mL on the reference SPECT, >= {min_ml:g} mL")
    )
    return Labels.from_array(data, labels.image.affine, names)


def _blood_marrow(path: Path, nuclide: str, entry, hematocrit, mass_g, rows, methods):
    from theranet.dosimetry.marrow import blood_based_marrow_dose, local_deposition_dose_gy
    from theranet.kinetics.fit import select_model
    from theranet.kinetics.integrate import tia_from_fit

    t, c = _read_blood(path)
    # each sample equally uncertain in relative terms (well-counter samples): weights
    # 1/c^2; the covariance is scaled by the residual scatter
    sel = select_model(t, c, c, nuclide=nuclide, scale_covariance=True)
    res = tia_from_fit(sel.best, nuclide=nuclide)
    if mass_g is None:
        if "red_marrow" not in rows:
            raise PipelineInputError(
                "red_marrow_mass_g",
                "needed for the blood-based marrow dose; the label map has no red_marrow",
                None,
                "give --red-marrow-mass-g",
            )
        mass_g = rows["red_marrow"].mass_g
        volume_ml = rows["red_marrow"].volume_ml
    else:
        # red (active) marrow density 1.03 g/cm^3 (ICRP Publication 110 tissue
        # table) [UNCERTAIN: recalled]; the volume is only recorded, not used
        volume_ml = mass_g / 1.03
    from theranet.nuclides import Nuclide

    # Self-dose by local absorption of the electron energy in the marrow mass.
    e_np = Nuclide(nuclide).electron_energy_mev
    # S(RM<-RM) from the local-deposition dose of 1 MBq h: Gy/(MBq h) -> mGy/(MBq s)
    s_rm_rm = local_deposition_dose_gy(1.0, e_np, mass_g) * 1000.0 / 3600.0
    md = blood_based_marrow_dose(
        res.tia_mbq_h, marrow_mass_g=mass_g, s_rm_rm_mgy_per_mbq_s=s_rm_rm, hematocrit=hematocrit
    )
    methods.append(
        (
            "red marrow (blood-based)",
            f"EANM 2010: blood TIA {res.tia_mbq_h:.4g} MBq h/mL ({sel.best.model_name}, AICc, "
            f"relative weights), RMBLR "
            f"{md.rmblr:.3g}, marrow mass {mass_g:.4g} g, self-dose by local absorption of "
            f"{e_np:.4g} MeV/decay; no cross-dose",
        )
    )
    rel = res.rel_sd if math.isfinite(res.rel_sd) else math.nan
    return RegionDose(
        region="red_marrow_blood_based",
        kind="marrow",
        volume_ml=volume_ml,
        mass_g=mass_g,
        tia_mbq_h=md.tia_rm_mbq_h,
        tia_sd_mbq_h=md.tia_rm_mbq_h * rel,
        mean_dose_gy=md.dose_gy,
        dose_sd_gy=md.dose_gy * rel,
        model=sel.best.model_name,
        method="blood-based (EANM 2010)",
    )


def _record(registry, patient_id: str, result: DosimetryResult, injection: datetime | None,
            new_treatment: bool = False):  # fmt: skip
    """Record the cycle; returns the cumulative table over the patient's cycles."""
    from theranet.registry import Registry, open_registry

    reg = registry if isinstance(registry, Registry) else open_registry(registry)
    if injection is None:
        raise PipelineInputError(
            "injection", "unknown: the cycle cannot be dated in the registry", None,
            "give the injection date-time in the headers",
        )  # fmt: skip
    if not result.administered_activity_mbq:
        raise PipelineInputError(
            "administered_activity_mbq", "unknown: the cycle cannot be recorded", None,
            "give the administered activity in the headers",
        )  # fmt: skip
    rec = reg.record_cycle(
        patient_id,
        tracer=result.tracer,
        nuclide=result.nuclide,
        administered_activity_mbq=result.administered_activity_mbq,
        administration=injection,
        times_h=result.times_h,
        regions=result.regions,
        methods=result.methods,
        new_treatment=new_treatment,
    )
    cycles = [c for c in reg.cycles(patient_id) if c.treatment == rec.treatment]
    return cycles, _planning_table(reg, patient_id)


def _planning_table(reg, patient_id: str):
    """The report's planning section: (title, headers, rows), or a note when no plan."""
    from theranet.therapy.from_registry import PLAN_HEADERS, plan_from_registry, plan_rows
    from theranet.therapy.planning import PlanningError

    try:
        plan, notes = plan_from_registry(reg, patient_id)
    except PlanningError as exc:
        return ("Planning of the next cycle", ["note"], [[f"no plan: {exc}"]])
    rows = plan_rows(plan)
    rows.append(
        [
            "planned activity",
            f"limited by {plan.limiting_organ}",
            "",
            "",
            f"{plan.activity_gbq:.3g} ± {plan.activity_sd_gbq:.2g}",
            f"{plan.n_standard_cycles_allowed} more standard cycle(s) allowed",
        ]
    )
    rows += [[n, "", "", "", "", ""] for n in [*notes, *plan.notes]]
    return ("Planning of the next cycle", list(PLAN_HEADERS), rows)


def _write_outputs(tmp: Path, result: DosimetryResult, ct: Image, ct_dir: Path, labels: Labels,
                   activity: Image, dvhs, reg_rows, injection: datetime | None,
                   report: bool, record: Callable[[], object]) -> None:  # fmt: skip
    from theranet.io import write_nifti
    from theranet.io.dicom_write import write_rtdose, write_seg

    with open(tmp / "doses.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=CSV_COLUMNS)
        w.writeheader()
        for r in result.regions.values():
            w.writerow(r.as_row())
    write_nifti(result.dose, tmp / "dose.nii.gz")
    if not _is_nifti(ct_dir):  # RT Dose and SEG refer to a DICOM CT series
        write_rtdose(tmp / "dose.dcm", result.dose, ct_dir, uid_seed=f"theranet-dose|{ct_dir.name}")
        write_seg(
            tmp / "regions_seg.dcm",
            labels,
            ct_dir,
            uid_seed=f"theranet-seg|{ct_dir.name}",
            segmentation_type="labelmap",
        )
    cumulative = record()
    if report:
        from theranet.report import write_report

        rep = _cycle_report(result, ct, labels, activity, dvhs, reg_rows, injection, cumulative)
        write_report(rep, tmp)


def _cycle_report(result: DosimetryResult, ct: Image, labels: Labels, activity: Image, dvhs,
                  reg_rows, injection, cumulative=None) -> object:  # fmt: skip
    from theranet.report.model import CurveData, CycleReport, DoseRow

    a0 = result.administered_activity_mbq
    doses = [
        DoseRow(
            r.region,
            r.kind,
            r.volume_ml,
            r.mass_g,
            r.tia_mbq_h,
            r.tia_sd_mbq_h,
            r.mean_dose_gy,
            r.dose_sd_gy,
            r.mean_dose_gy / (a0 / 1000.0) if a0 else math.nan,
            r.model,
            r.method,
            bed_gy=math.nan if r.bed_gy is None else r.bed_gy,
            eqd2_gy=math.nan if r.eqd2_gy is None else r.eqd2_gy,
        )
        for r in result.regions.values()
    ]
    curves = []
    t_end = max(result.times_h) * 1.15
    for name, (t, a, s) in result.tacs.items():
        fit = result.fits.get(name)
        if fit is None or isinstance(fit, float):
            continue
        # a hybrid curve's fit covers only its last points
        t0 = 0.0 if len(fit.times_h) == len(t) else float(fit.times_h[0])
        grid = np.linspace(t0, t_end, 200)
        curves.append(
            CurveData(
                name, t, a, s, grid, fit.evaluate(grid), fit.evaluate(t), result.regions[name].model
            )
        )
    on_ct = activity.resample_to(ct, method="linear")
    return CycleReport(
        title=f"Dosimetry of one therapy cycle: {result.tracer}",
        patient="pseudonymised (no identifiers in reports)",
        tracer=result.tracer,
        nuclide=result.nuclide,
        administered_activity_mbq=a0 if a0 else math.nan,
        injection=injection.isoformat() if injection else "unknown",
        times_h=result.times_h,
        doses=doses,
        curves=curves,
        dose=result.dose,
        activity=on_ct,
        labels=labels,
        dvh=dvhs,
        methods=result.methods,
        versions=_versions(),
        registration=reg_rows,
        warnings=result.warnings,
        tables=[*_outside_table(result), *_cumulative_tables(cumulative)],
    )


def _outside_table(result: DosimetryResult) -> list:
    """The share of each region's TIA outside the imaged interval (not measured)."""
    rows = [
        [r.region, r.model, f"{100 * r.outside_images[0]:.1f}", f"{100 * r.outside_images[1]:.1f}"]
        for r in result.regions.values()
        if r.outside_images is not None
    ]
    if not rows:
        return []
    t0, t1 = (f"{t:.3g}" for t in (min(result.times_h), max(result.times_h)))
    title = f"Extrapolated TIA: outside the imaged interval {t0}-{t1} h"
    headers = ["region", "model", f"before {t0} h (%)", f"after {t1} h (%)"]
    return [(title, headers, rows)]


def _cumulative_tables(recorded) -> list:
    """The report tables: doses per recorded cycle and their sums (BED adds), the plan."""
    if not recorded:
        return []
    cycles, planning = recorded
    from theranet.registry.cli import cumulative_doses

    n = len(cycles)

    def num(x):
        return "—" if x is None or not math.isfinite(x) else f"{x:.3g}"

    headers = ["region", *[f"cycle {c.number} dose (Gy)" for c in cycles],
               "cumulative dose (Gy)", "cumulative BED (Gy)"]  # fmt: skip
    rows = []
    for name, acc in cumulative_doses(cycles).items():
        per_cycle = [num(c.regions[name].mean_dose_gy) if name in c.regions else "—"
                     for c in cycles]  # fmt: skip
        rows.append([name, *per_cycle, num(acc["dose_gy"]), num(acc["bed_gy"])])
    title = f"Cumulative over {n} recorded cycle(s) (BED adds between cycles)"
    return [(title, headers, rows), planning]
