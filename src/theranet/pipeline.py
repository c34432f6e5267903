"""The dosimetry pipeline: a SPECT/CT study folder -> per-region doses and a dose map.

:func:`run_dosimetry` wires the building blocks:

1. **Inputs.** Time points are found with :func:`theranet.io.discover` (one SPECT
   per time point); every SPECT is read with :func:`~theranet.io.read_nm_spect`,
   the CT of the first time point that has one with :func:`~theranet.io.read_series`,
   and the label map (default ``STUDY_DIR/labels.nii.gz``) with
   :func:`~theranet.io.read_labels`. The label map must lie on the CT grid
   (same shape and affine): otherwise it is refused, never silently resampled.
2. **Kinetics.** The reference grid is the CT/label grid. Each SPECT is brought to
   the activity present at its acquisition and resampled activity-conserving onto
   it (:func:`~theranet.kinetics.tac.tacs_from_images`); per region the model is
   selected (:func:`~theranet.kinetics.fit.select_model`) and integrated
   analytically with its delta-method SD (:func:`~theranet.kinetics.integrate.tia_from_fit`).
   Fewer than two time points are refused.
3. **Voxel TIA.** Within each labelled region the TIA is distributed like the
   time-integrated SPECT (``within_region="spect"``, default) or uniformly
   (``within_region="uniform"``), scaled so that the region's voxels sum to the
   region's fitted TIA. The time-integrated SPECT of a voxel is the trapezoid of
   its resampled activity over the time points, with a linear rise from 0 at
   injection and a physical-decay tail after the last point. Voxels outside every
   region keep that voxel trapezoid TIA unscaled.
4. **Dose.** :func:`~theranet.dosimetry.voxel.voxel_dose` (soft-tissue voxel
   S-value convolution). A region's mean dose is the mean of its voxel doses; its
   SD is :func:`~theranet.dosimetry.uncertainty.dose_uncertainty` with the TIA's
   relative SD (mass uncertainty not included yet). The mass reported is the
   region volume times a density from the CT (bilinear HU -> g/cm^3, see
   :func:`hu_to_density`); it does not enter the dose (homogeneous soft-tissue kernel).
5. **Outputs** (all written into a temporary folder beside ``OUT`` and moved in
   only once everything succeeded): ``doses.csv``, ``dose.nii.gz`` with its JSON
   sidecar, ``dose.dcm`` (RT Dose referencing the CT) and its RT Plan stub
   ``dose_plan.dcm``.
"""

from __future__ import annotations

import csv
import math
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from theranet.errors import Strictness, TheranetError
from theranet.image import Image, Labels, Quantity

__all__ = [
    "CSV_COLUMNS",
    "DosimetryResult",
    "PipelineInputError",
    "hu_to_density",
    "run_dosimetry",
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

_OUTPUT_FILES = ("doses.csv", "dose.nii.gz", "dose.json", "dose.dcm", "dose_plan.dcm")


class PipelineInputError(TheranetError, ValueError):
    """The study folder or an argument cannot give a dosimetry."""


@dataclass(frozen=True)
class RegionDose:
    """One row of ``doses.csv``."""

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
    nuclide : str
    times_h : tuple of float
        Hours after injection of the time points used.
    files : dict of str to Path
        ``"csv"``, ``"nifti"``, ``"sidecar"``, ``"rtdose"``, ``"rtplan"``.
    notes : tuple of str
        Methods and assumptions, in words.
    """

    out_dir: Path
    regions: dict[str, RegionDose]
    dose: Image
    nuclide: str
    times_h: tuple[float, ...]
    files: dict[str, Path] = field(default_factory=dict)
    notes: tuple[str, ...] = ()


def hu_to_density(hu: np.ndarray) -> np.ndarray:
    """Mass density (g/cm^3) from CT numbers, bilinear.

    ``1 + HU/1000`` up to 0 HU (air to water), ``1 + 0.6 HU/1000`` above (soft
    tissue to cortical bone, about 1.85 g/cm^3 at 1400 HU); clipped to [0.001, 3].
    A generic calibration, not that of a given scanner [UNCERTAIN].
    """
    hu = np.asarray(hu, dtype=np.float64)
    rho = np.where(hu <= 0, 1.0 + hu / 1000.0, 1.0 + 0.6 * hu / 1000.0)
    return np.clip(rho, 0.001, 3.0)


def _kind(name: str) -> str:
    return "lesion" if name.lower().startswith("lesion") else "organ"


def _find_inputs(study_dir: Path, strictness: Strictness) -> tuple[list[Path], Path]:
    """(SPECT files in time order, CT folder of the first time point)."""
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
    spects: list[Path] = []
    ct_dir: Path | None = None
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
        spects.append(sp[0].paths[0])
        cts = tp.of_kind("ct")
        if ct_dir is None and cts:
            ct_dir = cts[0].paths[0].parent
    if len(injections) > 1:
        raise PipelineInputError(
            "STUDY_DIR",
            "SPECT of several administrations",
            sorted(str(i) for i in injections),
            "give the folder of one therapy cycle",
        )
    if ct_dir is None:
        raise PipelineInputError(
            "STUDY_DIR", "holds no CT", str(study_dir), "add the CT of the SPECT/CT"
        )
    return spects, ct_dir


def _voxel_tia(on_grid: list[np.ndarray], times: np.ndarray, lam_phys: float) -> np.ndarray:
    """Trapezoid TIA per voxel (MBq h): linear rise from 0, physical tail."""
    a = [np.clip(x, 0.0, None) for x in on_grid]
    tia = 0.5 * times[0] * a[0]
    for i in range(1, len(a)):
        tia = tia + 0.5 * (times[i] - times[i - 1]) * (a[i - 1] + a[i])
    return tia + a[-1] / lam_phys


def _move_into(tmp: Path, out_dir: Path) -> None:
    if not out_dir.exists():
        os.replace(tmp, out_dir)
        return
    for p in tmp.iterdir():
        os.replace(p, out_dir / p.name)
    tmp.rmdir()


def run_dosimetry(
    study_dir: str | Path,
    out_dir: str | Path,
    *,
    labels_path: str | Path | None = None,
    calibration_cps_per_mbq: float | None = None,
    nuclide: str | None = None,
    strictness: Strictness | str = "strict",
    within_region: str = "spect",
    progress: Callable[[str], None] | None = None,
) -> DosimetryResult:
    """Doses per region and a dose map from one patient's SPECT/CT time points.

    Parameters
    ----------
    study_dir : path
        Folder with the time points (DICOM SPECT and CT), searched recursively.
    out_dir : path
        Output folder (created; existing files of the same names are replaced).
    labels_path : path, optional
        Label map (NIfTI with a sidecar naming the regions) on the CT grid;
        default ``STUDY_DIR/labels.nii.gz``.
    calibration_cps_per_mbq : float, optional
        SPECT sensitivity for count images (refused for activity images).
    nuclide : str, optional
        Overrides the nuclide of the SPECT headers.
    strictness : {"strict", "lenient"}
    within_region : {"spect", "uniform"}
        Distribution of a region's TIA over its voxels (module notes).
    progress : callable, optional
        Called with a short message at each step.

    Returns
    -------
    DosimetryResult

    Raises
    ------
    PipelineInputError
        No label map, labels off the CT grid, fewer than two time points...
    TheranetError
        From the readers and the kinetics (typed, with the fix).
    """
    from theranet.dosimetry.uncertainty import dose_uncertainty
    from theranet.dosimetry.voxel import voxel_dose
    from theranet.io import read_labels, read_nm_spect, read_series, write_nifti
    from theranet.io.dicom_write import write_rtdose
    from theranet.kinetics.fit import select_model
    from theranet.kinetics.integrate import tia_from_fit
    from theranet.kinetics.tac import tacs_from_images, time_point_image
    from theranet.nuclides import Nuclide

    say = progress or (lambda msg: None)
    study_dir = Path(study_dir)
    out_dir = Path(out_dir)
    mode = Strictness.parse(strictness)
    if within_region not in ("spect", "uniform"):
        raise ValueError(f"within_region: {within_region!r}; use 'spect' or 'uniform'")
    if not study_dir.is_dir():
        raise PipelineInputError("STUDY_DIR", "is not a folder", str(study_dir))
    if labels_path is None:
        labels_path = study_dir / "labels.nii.gz"
        if not labels_path.is_file():
            raise PipelineInputError(
                "labels",
                "no label map given and STUDY_DIR has no labels.nii.gz",
                str(study_dir),
                "give the regions with --labels FILE.nii.gz (labels on the CT grid, "
                "with a JSON sidecar naming them)",
            )
    labels_path = Path(labels_path)
    if not labels_path.is_file():
        raise PipelineInputError("labels", "file not found", str(labels_path), "check --labels")
    if out_dir.exists() and not out_dir.is_dir():
        raise PipelineInputError("OUT", "exists and is not a folder", str(out_dir))

    # 1. inputs
    say("finding the time points")
    spect_files, ct_dir = _find_inputs(study_dir, mode)
    if len(spect_files) < 2:
        raise PipelineInputError(
            "STUDY_DIR",
            "fewer than two SPECT time points; a curve cannot be fitted",
            len(spect_files),
            "add time points (single-time-point methods are not available in this "
            "command yet: use theranet.kinetics.stp)",
        )
    images = []
    for i, f in enumerate(spect_files, 1):
        say(f"reading SPECT {i}/{len(spect_files)}")
        images.append(
            read_nm_spect(
                f,
                strictness=mode,
                calibration_cps_per_mbq=calibration_cps_per_mbq,
                nuclide=nuclide,
            )
        )
    say("reading the CT")
    ct = read_series(ct_dir, strictness=mode)
    labels: Labels = read_labels(labels_path)
    if not labels.image.same_grid(ct):
        raise PipelineInputError(
            "labels",
            "the label map is not on the CT grid (shape or affine differ)",
            f"labels {labels.image.shape} vs CT {ct.shape}",
            "resample the label map onto the CT of the first time point (nearest "
            "neighbour) or segment that CT",
            labels_path.name,
        )
    if not labels.present():
        raise PipelineInputError("labels", "no named region has a voxel", labels_path.name)

    # 2. kinetics per region
    say("time-activity curves")
    tacs = tacs_from_images(images, labels)
    nuc_name = next(iter(tacs.values())).nuclide
    if nuc_name is None:
        raise PipelineInputError(
            "nuclide", "unknown", None, "give --nuclide or a header with the radionuclide"
        )
    nuc = Nuclide(nuc_name)
    fits = {}
    for name, tac in tacs.items():
        say(f"fitting {name}")
        sd = tac.activity_sd_mbq
        sigma = sd if np.all(np.isfinite(sd)) and np.all(sd > 0) else None
        sel = select_model(tac.times_h, tac.activity_mbq, sigma, nuclide=nuc.name)
        fits[name] = (sel.best.model_name, tia_from_fit(sel.best, nuclide=nuc.name))

    # 3. voxel TIA on the CT grid
    say("voxel TIA map")
    points = sorted((time_point_image(img) for img in images), key=lambda p: p[0])
    times = np.array([p[0] for p in points])
    v_ml = ct.voxel_volume_ml
    on_grid = [
        np.asarray((img if img.same_grid(ct) else img.resample_to(ct)).data, np.float64) * v_ml
        for _, img in points
    ]
    tia = _voxel_tia(on_grid, times, nuc.decay_constant_per_h)
    del on_grid
    for name, tac in tacs.items():
        m = labels.mask(name)
        target = fits[name][1].tia_mbq_h
        total = float(tia[m].sum())
        if within_region == "uniform" or total <= 0:
            tia[m] = target / tac.n_voxels
        else:
            tia[m] *= target / total
    tia_img = Image(
        tia.astype(np.float32),
        ct.affine,
        Quantity.ACTIVITY,
        modality="OT",
        nuclide=nuc.name,
        tracer=images[0].tracer,
        patient=ct.patient,
        provenance=ct.provenance.with_step(
            "time-integrated activity (MBq h per voxel): region TIA from the selected "
            f"model, distributed within region as {within_region}"
        ),
    )

    # 4. dose
    say("absorbed dose (voxel S-value convolution)")
    res = voxel_dose(tia_img, nuc.name)
    dose = np.clip(np.asarray(res.dose.data, np.float64), 0.0, None)
    dose_img = res.dose.replace(
        data=dose.astype(np.float32),
        provenance=res.dose.provenance.with_step(
            "negative FFT round-off (|value| ~ 1e-6 Gy) set to 0"
        ),
    )
    hu = np.asarray(ct.data, np.float64)
    rows: dict[str, RegionDose] = {}
    for name, tac in tacs.items():
        m = labels.mask(name)
        model, t = fits[name]
        mean = float(dose[m].mean())
        rel = t.rel_sd if math.isfinite(t.rel_sd) else math.nan
        sd = dose_uncertainty(mean, u_tia_rel=rel)[0] if math.isfinite(rel) else math.nan
        rows[name] = RegionDose(
            region=name,
            kind=_kind(name),
            volume_ml=tac.volume_ml,
            mass_g=float(hu_to_density(hu[m]).sum()) * v_ml,
            tia_mbq_h=t.tia_mbq_h,
            tia_sd_mbq_h=t.sd_mbq_h,
            mean_dose_gy=mean,
            dose_sd_gy=sd,
            model=model,
        )

    # 5. outputs, atomically
    say("writing the outputs")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}-", dir=out_dir.parent))
    tmp.chmod(0o755)
    try:
        with open(tmp / "doses.csv", "w", newline="", encoding="utf-8") as fh:
            w = csv.DictWriter(fh, fieldnames=CSV_COLUMNS)
            w.writeheader()
            for r in rows.values():
                w.writerow(r.as_row())
        write_nifti(dose_img, tmp / "dose.nii.gz")
        write_rtdose(tmp / "dose.dcm", dose_img, ct_dir, uid_seed=f"theranet-dose|{ct_dir.name}")
        _move_into(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    files = {
        "csv": out_dir / "doses.csv",
        "nifti": out_dir / "dose.nii.gz",
        "sidecar": out_dir / "dose.json",
        "rtdose": out_dir / "dose.dcm",
        "rtplan": out_dir / "dose_plan.dcm",
    }
    notes = (
        "TIA per region: analytic integral of the selected model, SD by the delta method",
        f"within-region TIA distribution: {within_region}",
        res.kernel,
        *res.notes,
        "mass from CT via a generic bilinear HU-density curve; not used by the dose",
        "dose SD: TIA uncertainty only (mass and S-value uncertainties not included)",
    )
    say(f"wrote {out_dir}")
    return DosimetryResult(
        out_dir=out_dir,
        regions=rows,
        dose=dose_img,
        nuclide=nuc.name,
        times_h=tuple(float(t) for t in times),
        files=files,
        notes=notes,
    )
