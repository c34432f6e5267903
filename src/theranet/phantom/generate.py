"""The digital NET patient, end to end: anatomy -> kinetics -> images -> DICOM + truth.

:func:`generate_study` writes one folder per time point (CT series, quantitative
SPECT as NM RECON TOMO, planar whole-body views for tracers imaged that way, PET
series for PET tracers), ``labels.nii.gz`` (the true regions on the native grid,
which is the CT grid, names in the sidecar) and ``ground_truth.json`` with, per
region, the true
mass, the activity at every time point, the analytic time-integrated activity,
the true mean absorbed dose and the recovery the simulated SPECT/PET shows.
Everything derives from the seed: the same seed gives byte-identical files.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

from theranet import radiopharmaceuticals as rp
from theranet._version import __version__
from theranet.image import DecayCorrection, Image, PatientInfo, Provenance, Quantity, Timing
from theranet.io._atomic import atomic_paths
from theranet.io.nifti import write_nifti
from theranet.phantom import imaging, truth
from theranet.phantom.anatomy import Anatomy, build_anatomy
from theranet.phantom.dicom_export import (
    DicomContext,
    write_ct_series,
    write_nm_planar,
    write_nm_spect,
    write_pet_series,
)
from theranet.phantom.kinetics import PatientKinetics, patient_kinetics

logger = logging.getLogger(__name__)

__all__ = [
    "CYCLE_INTERVAL_WEEKS",
    "DEFAULT_INJECTION",
    "PhantomStudy",
    "default_activity_mbq",
    "generate_study",
    "true_activity_image",
]

#: Injection datetime of every phantom study (synthetic), first cycle.
DEFAULT_INJECTION = datetime(2026, 3, 2, 9, 0, 0)
#: Interval between therapy cycles: 177Lu-DOTATATE is given every 8 weeks
#: (Lutathera SmPC/PI, 4 x 7.4 GBq; clinical.md §5).
CYCLE_INTERVAL_WEEKS = 8
_PET_TRACER_NUCLIDES = ("Ga-68", "F-18", "Cu-64")
_PLANAR_NUCLIDES = ("In-111", "I-123", "I-131")
_DOSE_KERNEL_MM = 30.0  # extent of the dose kernel around each voxel
# 90Y has no photopeak: a wide bremsstrahlung window (an assumption; clinical
# windows vary between centres)
_BREMSSTRAHLUNG_WINDOW = (("Y90_bremsstrahlung", 105.0, 195.0),)


@dataclass(frozen=True)
class PhantomStudy:
    """What :func:`generate_study` wrote.

    Attributes
    ----------
    out_dir : Path
    time_point_dirs : tuple of Path
    ground_truth_path : Path
    truth : dict
        The content of ``ground_truth.json``.
    anatomy : Anatomy
    kinetics : PatientKinetics
    """

    out_dir: Path
    time_point_dirs: tuple[Path, ...]
    ground_truth_path: Path
    truth: dict
    anatomy: Anatomy
    kinetics: PatientKinetics


def true_activity_image(
    anatomy: Anatomy, kinetics: PatientKinetics, time_h: float, injection: datetime
) -> Image:
    """True activity concentration (MBq/mL) at ``time_h`` after injection, native grid.

    Each region's activity is spread uniformly over its voxels.
    """
    lab = np.asarray(anatomy.labels.image.data).astype(np.int64)
    per_label = np.zeros(int(lab.max()) + 1)
    for name, info in anatomy.regions.items():
        if name in kinetics.regions and info.volume_ml > 0:
            per_label[info.label] = float(kinetics.activity_mbq(name, time_h)) / info.volume_ml
    data = per_label[lab].astype(np.float32)
    return Image(
        data, anatomy.affine, Quantity.ACTIVITY_CONCENTRATION, modality="OT",
        nuclide=kinetics.nuclide, tracer=kinetics.tracer,
        timing=Timing(
            acquisition_start=injection + timedelta(hours=time_h), injection=injection,
            administered_activity_mbq=kinetics.administered_mbq,
            decay_correction=DecayCorrection.START,
        ),
        patient=PatientInfo(anatomy.weight_kg, anatomy.height_cm, anatomy.sex),
        provenance=Provenance(source=f"digital patient seed {anatomy.seed}, truth"),
    )  # fmt: skip


# catalogue entry used as the default administered activity of each tracer
_DEFAULT_ACTIVITY_KEYS = {
    "177Lu-DOTATATE": ("per_cycle", None),
    "90Y-DOTATOC": ("cycle1_adult", None),
    "131I-MIBG": ("azedra_dosimetric_max", None),
    "123I-MIBG": ("adult", None),
    "111In-pentetreotide": ("spect", None),
    "68Ga-DOTATATE": ("per_kg", "max"),
    "68Ga-DOTATOC": ("adult", None),
    "64Cu-DOTATATE": ("adult", None),
    "18F-DOPA": ("per_kg_min", None),
}


def default_activity_mbq(tracer: str, weight_kg: float) -> float:
    """Typical administered activity of ``tracer`` from the radiopharmaceutical
    catalogue (per-kg rules applied with ``weight_kg`` and capped at the maximum)."""
    entry = rp.get(tracer)
    keys = _DEFAULT_ACTIVITY_KEYS.get(entry.name)
    if keys is None or keys[0] not in entry.activities:
        raise ValueError(
            f"activity_gbq: the catalogue gives no typical activity for {entry.name}; "
            "give it (CLI --activity-gbq)"
        )
    value = entry.activities[keys[0]]
    mbq = value.value * weight_kg if value.unit == "MBq/kg" else value.value
    if keys[1] is not None and keys[1] in entry.activities:
        mbq = min(mbq, entry.activities[keys[1]].value)
    return float(mbq)


def _true_doses(anatomy: Anatomy, kinetics: PatientKinetics) -> tuple[dict[str, float], str]:
    from theranet.physics.kernels import voxel_s_values

    v = float(anatomy.voxel_mm)
    n = max(5, math.ceil(_DOSE_KERNEL_MM / v))
    s = voxel_s_values(kinetics.nuclide, v, material="soft_tissue", n_voxels=n)
    tia = {name: float(kinetics.tia_mbq_h(name)) for name in kinetics.regions}
    lab = np.asarray(anatomy.labels.image.data)
    tia_map = truth.tia_map_mbq_h(lab, anatomy.labels.names, tia)
    dose = truth.dose_map_gy(tia_map, s.full())
    method = (
        f"true TIA map (uniform per region, native {v:g} mm voxels) convolved with theranet "
        f"voxel S-values ({kinetics.nuclide}, soft tissue, kernel extent +-{n} voxels = "
        f"{n * v:g} mm; photon cross-dose from farther is not included)"
    )
    return truth.region_means(dose, lab, anatomy.labels.names), method


def _check_times(times_h: Sequence[float]) -> list[float]:
    t = [float(x) for x in times_h]
    if not t:
        raise ValueError("times_h: give at least one time point")
    if any(not math.isfinite(x) or x <= 0 for x in t):
        raise ValueError(f"times_h: must be positive hours after injection, got {t}")
    if any(b <= a for a, b in itertools.pairwise(t)):
        raise ValueError(f"times_h: must be strictly increasing, got {t}")
    return t


def generate_study(
    out_dir: str | Path,
    *,
    tracer: str = "177Lu-DOTATATE",
    activity_gbq: float | None = None,
    times_h: Sequence[float] = (4.0, 24.0, 96.0, 168.0),
    seed: int = 0,
    height_cm: float = 175.0,
    weight_kg: float = 73.0,
    sex: str = "M",
    spect_variant: str = "rwvm",
    with_dose: bool = True,
    cycle: int = 1,
    progress: Callable[[str], None] | None = None,
) -> PhantomStudy:
    """Image the digital patient at ``times_h`` and write DICOM and the ground truth.

    Parameters
    ----------
    out_dir : path
        Created if needed; one sub-folder per time point (``tp1_4h``...).
    tracer : str
        A catalogue tracer (177Lu-DOTATATE, 90Y-DOTATOC, 131I-MIBG, 123I-MIBG,
        111In-pentetreotide, 68Ga-DOTATATE, 18F-FDG, 18F-DOPA).
    activity_gbq : float, optional
        Administered activity, GBq; default the catalogue's typical activity of the
        tracer (:func:`default_activity_mbq`).
    times_h : sequence of float
        Acquisition start times after injection, h.
    seed : int
        Varies the patient, the kinetics and the noise; fixes every UID.
    spect_variant : {"rwvm", "counts"}
        SPECT values in Bq/mL (Real World Value Mapping), or counts with the
        calibration factor given in ``ground_truth.json`` only.
    with_dose : bool
        Compute the true absorbed doses (a few seconds).
    cycle : int
        Therapy cycle of the same patient (same anatomy and Patient ID):
        administered ``CYCLE_INTERVAL_WEEKS`` after the previous one, with its
        own draw of the kinetics variability (seed ``seed + 7919 (cycle - 1)``),
        its own noise and its own study UIDs.
    progress : callable, optional
        Called with a short message at each step (the CLI renders it).
    """
    say = progress or (lambda msg: logger.info(msg))
    entry = rp.get(tracer)
    if activity_gbq is None:
        activity_gbq = default_activity_mbq(entry.name, weight_kg) / 1000.0
    if not (math.isfinite(activity_gbq) and activity_gbq > 0):
        raise ValueError(f"activity_gbq: must be a positive activity in GBq, got {activity_gbq!r}")
    if spect_variant not in ("rwvm", "counts"):
        raise ValueError(f"spect_variant: {spect_variant!r}; use 'rwvm' or 'counts'")
    times = _check_times(times_h)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    say("building the patient")
    if isinstance(cycle, bool) or not isinstance(cycle, int) or cycle < 1:
        raise ValueError(f"cycle: a therapy cycle number >= 1, got {cycle!r}")
    anatomy = build_anatomy(height_cm=height_cm, weight_kg=weight_kg, sex=sex, seed=seed)
    kin_seed = seed + 7919 * (cycle - 1)
    kin = patient_kinetics(entry.name, anatomy.regions, activity_gbq * 1000.0, seed=kin_seed)
    inj = DEFAULT_INJECTION + timedelta(weeks=CYCLE_INTERVAL_WEEKS * (cycle - 1))
    ctx = DicomContext(
        seed=seed, tracer=entry.name, study_datetime=inj + timedelta(hours=times[0]),
        patient_sex=sex, patient_weight_kg=weight_kg, patient_size_m=height_cm / 100.0,
        study_id=str(cycle),
    )  # fmt: skip
    noise_seed = seed * 1000 + 100_000 * (cycle - 1)
    nuclide = kin.nuclide
    is_pet = nuclide in _PET_TRACER_NUCLIDES
    spect = None if is_pet else imaging.spect_model(nuclide)
    planar = nuclide in _PLANAR_NUCLIDES
    mu = None
    if planar:
        energy_mev = float(entry.photopeaks_kev[0]) / 1000.0
        mu = imaging.linear_attenuation_map(anatomy.density_g_per_cm3, anatomy.labels, energy_mev)
    grid = None
    tp_dirs: list[Path] = []
    recovery: dict[str, dict[str, float]] = {}
    calibration: dict[str, float] = {}
    for i, t in enumerate(times):
        name = f"tp{i + 1}_{t:g}h"
        say(f"time point {name}")
        tp = out / name
        tp.mkdir(exist_ok=True)
        acq = inj + timedelta(hours=t)
        true_img = true_activity_image(anatomy, kin, t, inj)
        ct = imaging.simulate_ct(anatomy.hu, seed=noise_seed + i, affine=anatomy.affine)
        write_ct_series(tp / "ct", ct, ctx, series_number=1, acquisition_datetime=acq)
        if is_pet:
            model = imaging.pet_model(nuclide)
            img = imaging.simulate_pet(
                true_img, fwhm_mm=model.fwhm_mm, voxel_mm=model.voxel_mm, seed=noise_seed + i,
                noise_level=model.noise_level, grid=grid, nuclide=nuclide,
            )  # fmt: skip
            grid = grid or img
            frame_s = 15.0 * 60.0
            write_pet_series(
                tp / "pet", img, ctx, tracer=entry.name, series_datetime=acq,
                injection_datetime=inj, administered_activity_mbq=kin.administered_mbq,
                frame_duration_s=frame_s, series_number=3,
            )  # fmt: skip
            measured = img
        else:
            acq_s = imaging.protocol_acquisition_s(spect, t)
            res = imaging.simulate_spect(
                true_img, spect, acquisition_s=acq_s, seed=noise_seed + i, grid=grid
            )
            grid = grid or res.activity_concentration
            calibration[name] = res.calibration_cps_per_mbq
            write_nm_spect(
                tp / "spect.dcm", res.activity_concentration, ctx, variant=spect_variant,
                tracer=entry.name, acquisition_datetime=acq, frame_duration_s=acq_s,
                injection_datetime=inj, administered_activity_mbq=kin.administered_mbq,
                calibration_cps_per_mbq=res.calibration_cps_per_mbq, series_number=2,
                energy_windows=_BREMSSTRAHLUNG_WINDOW if nuclide == "Y-90" else None,
            )  # fmt: skip
            measured = res.activity_concentration
            if planar:
                pl = imaging.simulate_planar(
                    true_img, mu, spect, acquisition_s=600.0, seed=noise_seed + 500 + i
                )
                # the writer takes rows towards the feet (Patient Orientation L\F);
                # the projection keeps the volume's slice order
                ant, post = pl.anterior, pl.posterior
                if anatomy.affine[2, 0] > 0:  # slice index runs towards the head
                    ant, post = np.flip(ant, axis=0), np.flip(post, axis=0)
                write_nm_planar(
                    tp / "planar.dcm", ant, post, ctx, pixel_mm=pl.pixel_mm,
                    tracer=entry.name, acquisition_datetime=acq, frame_duration_s=600.0,
                    injection_datetime=inj, administered_activity_mbq=kin.administered_mbq,
                    series_number=4,
                )  # fmt: skip
        rc = imaging.measure_recovery(true_img, measured, anatomy.labels, on="measured")
        recovery[name] = {k: round(float(v), 4) for k, v in rc.items()}
        tp_dirs.append(tp)

    doses, dose_method = ({}, "not computed")
    if with_dose:
        say("true absorbed doses")
        doses, dose_method = _true_doses(anatomy, kin)
    gt = _ground_truth(anatomy, kin, times, inj, doses, dose_method, recovery, calibration,
                       entry.name, spect_variant, seed)  # fmt: skip
    # the true regions on the native (= CT) grid, for pipelines that take the phantom's labels
    write_nifti(anatomy.labels, out / "labels.nii.gz")
    gt["labels_file"] = "labels.nii.gz"
    if spect is not None:
        gt["spect_fwhm_mm"] = spect.fwhm_mm
    if is_pet:
        gt["pet_fwhm_mm"] = imaging.pet_model(nuclide).fwhm_mm
    if planar:
        # the planar system sensitivity (cps/MBq) of the views in planar.dcm, as a site
        # measures it with a source in air (clinical.md §4.5)
        gt["planar_sensitivity_cps_per_mbq"] = spect.planar_sensitivity_cps_per_mbq
    gt["blood_samples_file"] = _write_blood_samples(out / "blood_samples.csv", kin, times)
    gt["cycle"] = cycle
    gt_path = out / "ground_truth.json"
    with atomic_paths([gt_path]) as (tmp,):
        tmp.write_text(json.dumps(gt, indent=2, sort_keys=False) + "\n")
    return PhantomStudy(out, tuple(tp_dirs), gt_path, gt, anatomy, kin)


#: Blood sampling times besides the imaging times, h: 5, 15 and 30 min, 1 and 2 h
#: (early samples capture the fast plasma phases).
_EARLY_BLOOD_SAMPLES_H = (5 / 60, 0.25, 0.5, 1.0, 2.0)


def _write_blood_samples(path: Path, kin: PatientKinetics, times: Sequence[float]) -> str:
    """Whole-blood concentration at sampling (not decay-corrected), noise-free, MBq/mL."""
    sample_h = sorted({*_EARLY_BLOOD_SAMPLES_H, *times})
    conc = kin.blood_concentration_mbq_per_ml(np.array(sample_h))
    lines = ["hours_after_injection,activity_concentration_mbq_per_ml"]
    lines += [f"{t:.6g},{c:.6g}" for t, c in zip(sample_h, conc, strict=True)]
    with atomic_paths([path]) as (tmp,):
        tmp.write_text("\n".join(lines) + "\n")
    return path.name


def _ground_truth(anatomy, kin, times, inj, doses, dose_method, recovery, calibration,
                  tracer, spect_variant, seed) -> dict:  # fmt: skip
    regions = {}
    for name, info in anatomy.regions.items():
        if name not in kin.regions:
            continue
        act = [float(kin.activity_mbq(name, t)) for t in times]
        regions[name] = {
            "kind": info.kind,
            "site": info.site,
            "label": int(info.label),
            "mass_g": round(float(info.mass_g), 4),
            "volume_ml": round(float(info.volume_ml), 4),
            "density_g_per_cm3": float(info.density_g_per_cm3),
            "krenning_grade": kin.lesion_grade.get(name),
            "activity_mbq": [round(a, 6) for a in act],
            "tia_mbq_h": round(float(kin.tia_mbq_h(name)), 4),
            "mean_dose_gy": None if name not in doses else round(doses[name], 6),
            "kinetics_source": kin.sources.get(name),
        }
    return {
        "theranet_version": __version__,
        "seed": seed,
        "tracer": tracer,
        "nuclide": kin.nuclide,
        "administered_activity_mbq": kin.administered_mbq,
        "injection_datetime": inj.isoformat(),
        "times_h": list(times),
        "whole_body_activity_mbq": [round(float(kin.whole_body_mbq(t)), 6) for t in times],
        "patient": {
            "height_cm": anatomy.height_cm,
            "weight_kg": anatomy.weight_kg,
            "sex": anatomy.sex,
        },
        "voxel_mm": float(anatomy.voxel_mm),
        "spect_variant": spect_variant,
        "calibration_cps_per_mbq": calibration,
        "dose_method": dose_method,
        "units": {
            "activity": "MBq (at acquisition start, not decay-corrected)",
            "tia": "MBq h (0 to infinity)",
            "dose": "Gy",
            "mass": "g",
            "volume": "mL",
        },
        "recovery_measured_over_true": recovery,
        "regions": regions,
    }
