"""A diagnostic scan, assessed: lesions, uptake scores and therapy eligibility.

``theranet assess SCAN_DIR --out OUT`` runs :func:`run_assessment`:

1. **Scan.** The one emission series of the folder (SSTR PET, 111In-pentetreotide
   SPECT, MIBG SPECT), its tracer from the header (it must be in the catalogue),
   and the CT beside it.
2. **Question.** ``prrt`` needs an SSTR tracer, ``mibg`` a norepinephrine-transporter
   tracer (123I/131I-MIBG); another tracer cannot answer it and is refused.
3. **Organs.** A label map (NIfTI, DICOM SEG or RTSTRUCT on the CT) with at least the
   liver. Labels named ``lesion*`` are not organs: each is given to the organ label
   most frequent around it (an organ segmentation includes its metastases), never to
   a physiological-uptake organ, or to no organ when none surrounds it.
4. **Lesions.** :func:`theranet.imaging.lesions.detect_lesions`: a threshold
   relative to the normal liver (uptake above liver, Krenning >= 3),
   physiological-uptake organs excluded, per lesion volume, max/mean/peak uptake,
   SUV (PET: needs the patient's weight), tumour-to-liver and tumour-to-spleen
   ratios and site. Then a second pass over the soft tissue only (no organ label,
   or remainder, muscle, fat: where lymph-node metastases lie and the normal
   uptake is far below the liver's) at the Krenning >= 2 level, ``k1`` x liver mean
   + 2 SD (``k1`` = 0.5, clinical.md §3.1 [UNCERTAIN]), adds the lesions with
   uptake between ``k1`` x liver and liver that stand out there; the marrow,
   pancreas and other organs are not searched at that level (their normal uptake
   reaches it). Lesions at or below liver uptake inside the liver (Krenning 0-2)
   are iso- or hypo-intense and are not found on the uptake image.
5. **Scores.** Semi-automatic Krenning-equivalent grade per lesion (lesion maximum
   against the liver and spleen means, clinical.md §3.1) and per patient. A lesion
   smaller than about three FWHM (the maximum of a uniform sphere of its
   half-maximum volume recovers less than :data:`PV_RECOVERY_LIMIT`,
   :func:`theranet.imaging.partial_volume.sphere_centre_recovery`) is flagged
   ``pv_limited``: its grade may be too low.
6. **Dual tracer** (``fdg_dir``, an 18F-FDG PET/CT of the same patient): the FDG CT
   is registered rigidly to the SSTR CT, the FDG PET resampled onto the SSTR grid
   and searched with the same organ labels (brain and heart wall excluded as well);
   each SSTR lesion is FDG-positive where an FDG lesion overlaps it, every FDG
   lesion overlapping no SSTR lesion is SSTR-negative/FDG-positive (NETPET P5), and
   FDG is "higher", "equal" or "lower" than SSTR by the ratio of the lesion's
   tumour-to-liver ratios on the two scans, "equal" within
   :data:`NETPET_EQUAL_TLR_RATIO` [UNCERTAIN: NETPET compares the intensities
   visually; this quantitative stand-in is an implementation choice]. The patient
   NETPET grade is the worst lesion's (clinical.md §3.3) and enters the PRRT
   eligibility.
7. **Eligibility.** PRRT (clinical.md §5.1) or 131I-MIBG therapy (§5.4) with every
   reason and its source; what was not supplied (laboratory values, performance
   status) leaves the verdict undetermined, never eligible.
8. **Outputs** (written to a temporary folder, moved into OUT only when complete):
   ``lesions.csv``, ``assessment.json``, ``lesions.nii.gz`` (the lesion label map
   on the scan grid) and ``assessment.html`` / ``assessment.pdf`` (MIP with the
   lesions, lesion table, scores, eligibility).
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import shutil
import tempfile
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from theranet import radiopharmaceuticals as rp
from theranet.errors import Strictness, TheranetError
from theranet.image import Image, Labels, Quantity

__all__ = [
    "NETPET_EQUAL_TLR_RATIO",
    "PV_RECOVERY_LIMIT",
    "QUESTIONS",
    "AssessmentError",
    "AssessmentResult",
    "read_clinical_file",
    "run_assessment",
]

logger = logging.getLogger(__name__)

#: Questions an assessment answers, and the molecular target the scan must image.
QUESTIONS: Mapping[str, str] = {"prrt": "SSTR2", "mibg": "norepinephrine transporter (NET)"}
_QUESTION_TRACERS = {
    "prrt": "an SSTR scan (68Ga-DOTATATE/-DOTATOC PET or 111In-pentetreotide SPECT)",
    "mibg": "a 123I- or 131I-MIBG scan",
}


#: FDG and SSTR uptake of a lesion are "equal" (NETPET P3) when the ratio of its
#: tumour-to-liver ratios (FDG / SSTR) lies within [1 / r, r] [UNCERTAIN].
NETPET_EQUAL_TLR_RATIO = 1.2
#: Organs with physiological FDG uptake excluded from the FDG search, besides the
#: SSTR exclusions (clinical.md §1.7: brain and myocardium take up FDG normally).
FDG_EXTRA_EXCLUDED = ("brain*", "heart_wall", "myocardium*")


class AssessmentError(TheranetError, ValueError):
    """The scan folder or an option cannot give an assessment (nothing is written)."""


@dataclass(frozen=True)
class AssessmentResult:
    """What :func:`run_assessment` found and wrote.

    Attributes
    ----------
    out_dir : Path
    tracer, modality : str
    question : str or None
    lesions : LesionTable
    krenning : tuple of KrenningScore
        Per lesion, in the order of ``lesions.lesions``.
    patient_krenning : PatientKrenning or None
        None when no lesion was found.
    eligibility : Eligibility or None
        None without a question.
    warnings : tuple of str
    half_max_volumes_ml : tuple of float
        Per lesion, the volume at or above half its maximum, mL.
    max_recoveries : tuple of float
        Per lesion, the recovery of the maximum of a uniform sphere of that volume
        (the partial-volume flag compares it with :data:`PV_RECOVERY_LIMIT`).
    dual_tracer : DualTracer or None
        The FDG comparison when an FDG scan was given.
    files : dict of str to Path
    """

    out_dir: Path
    tracer: str
    modality: str
    question: str | None
    lesions: Any
    krenning: tuple[Any, ...]
    patient_krenning: Any
    eligibility: Any
    warnings: tuple[str, ...] = ()
    half_max_volumes_ml: tuple[float, ...] = ()
    max_recoveries: tuple[float, ...] = ()
    dual_tracer: Any = None
    files: dict[str, Path] = field(default_factory=dict)


def read_clinical_file(path: str | Path) -> dict[str, Any]:
    """Laboratory values and clinical facts from a TOML or JSON file.

    Tables (all optional): ``[labs]`` (:class:`theranet.therapy.eligibility.Labs`
    fields, units in the names, e.g. ``platelets_per_nl = 180``), ``[clinical]``
    (:class:`~theranet.therapy.eligibility.Clinical`), and for 131I-MIBG the top-level
    ``medications = ["labetalol", ...]`` and ``thyroid_blockade = true``.

    Returns
    -------
    dict
        ``{"labs": Labs, "clinical": Clinical, "medications": list or None}``.
    """
    from theranet.therapy.eligibility import Clinical, Labs

    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
        doc = json.loads(text) if p.suffix.lower() == ".json" else tomllib.loads(text)
    except FileNotFoundError:
        raise AssessmentError(
            "--clinical", "file not found", str(p), "give a TOML or JSON file"
        ) from None
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise AssessmentError("--clinical", f"not valid TOML/JSON ({exc})", p.name) from None
    out: dict[str, Any] = {
        "medications": doc.get("medications"),
        "thyroid_blockade": doc.get("thyroid_blockade"),
    }
    for key, cls in (("labs", Labs), ("clinical", Clinical)):
        section = doc.get(key, {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(section) - known)
        if unknown:
            raise AssessmentError(
                f"--clinical [{key}]",
                "unknown fields",
                unknown,
                f"use the fields of {cls.__name__}: {', '.join(sorted(known))}",
                p.name,
            )
        out[key] = cls(**section)
    unknown_top = sorted(set(doc) - {"labs", "clinical", "medications", "thyroid_blockade"})
    if unknown_top:
        raise AssessmentError(
            "--clinical", "unknown tables", unknown_top,
            "use [labs], [clinical], medications, thyroid_blockade",
        )  # fmt: skip
    return out


# ----------------------------------------------------------------------------- inputs


def _find_scan(scan_dir: Path, mode: Strictness):
    from theranet.io import discover

    groups = discover(scan_dir, strictness=mode)
    series = [s for g in groups for tp in g.time_points for s in tp.series]
    emission = [s for s in series if s.kind in ("pet", "spect")]
    if not emission:
        raise AssessmentError(
            "SCAN_DIR",
            "holds no PET or SPECT series",
            str(scan_dir),
            "give the folder of one diagnostic PET/CT or SPECT/CT",
        )
    if len(emission) > 1:
        raise AssessmentError(
            "SCAN_DIR",
            "holds several emission series",
            [f"{s.kind}: {s.description}" for s in emission],
            "give the folder of one scan (one PET or one SPECT)",
        )
    cts = [s for s in series if s.kind == "ct"]
    return emission[0], (cts[0].paths[0].parent if cts else None)


def _read_emission(ref, mode: Strictness) -> Image:
    from theranet.io import read_nm_spect, read_series

    if ref.kind == "pet":
        return read_series(ref.paths[0].parent, strictness=mode)
    return read_nm_spect(ref.paths[0], strictness=mode)


def _tracer(image: Image, question: str | None) -> rp.Radiopharmaceutical:
    if not image.tracer:
        raise AssessmentError(
            "Radiopharmaceutical (0018,0031)",
            "the scan does not name its tracer",
            None,
            "use a scan whose header names the radiopharmaceutical",
        )
    try:
        entry = rp.get(image.tracer)
    except (KeyError, ValueError, TheranetError):
        raise AssessmentError(
            "tracer", "not in the catalogue", image.tracer, "see `theranet info` for the tracers"
        ) from None
    if question is not None and entry.target != QUESTIONS[question]:
        raise AssessmentError(
            "--question",
            f"a {entry.name} scan (target {entry.target}) cannot answer the question {question!r}",
            entry.name,
            f"give {_QUESTION_TRACERS[question]}",
        )
    return entry


def _organ_labels(path: Path, ct: Image | None, image: Image) -> tuple[Labels, list[str]]:
    from theranet.io.nifti import read_labels
    from theranet.io.regions import read_regions

    if ct is not None:
        labels = read_regions(path, ct)
    elif path.name.endswith((".nii", ".nii.gz")):
        labels = read_labels(path)
    else:
        labels = read_regions(path, image)
    lesion_values = [v for v, n in labels.names.items() if n.lower().startswith("lesion")]
    if not lesion_values:
        return labels, []
    from scipy import ndimage

    from theranet.imaging.lesions import DEFAULT_EXCLUDED_ORGANS, matches_any

    keep = {v: n for v, n in labels.names.items() if v not in lesion_values}
    # a lesion is never given to a physiological-uptake organ (it would be excluded)
    hosts = [v for v, n in keep.items() if not matches_any(n, DEFAULT_EXCLUDED_ORGANS)]
    data = np.array(labels.image.data)
    for value in lesion_values:
        mask = data == value
        if not mask.any():
            continue
        around = data[ndimage.binary_dilation(mask) & ~mask]
        around = around[np.isin(around, hosts)].astype(np.int64)
        data[mask] = np.bincount(around).argmax() if around.size else 0
    dropped = [labels.names[v] for v in lesion_values]
    return Labels(labels.image.replace(data=data), keep), dropped


# ----------------------------------------------------------------------------- the run


def run_assessment(
    scan_dir: str | Path,
    out_dir: str | Path,
    *,
    labels_path: str | Path | None = None,
    fwhm_mm: float,
    question: str | None = "prrt",
    weight_kg: float | None = None,
    height_cm: float | None = None,
    sex: str | None = None,
    clinical: Mapping[str, Any] | None = None,
    fdg_dir: str | Path | None = None,
    fdg_fwhm_mm: float | None = None,
    known_lesions: int | None = None,
    strictness: str = "strict",
    report: bool = True,
    progress: Callable[[str], None] | None = None,
) -> AssessmentResult:
    """Assess one diagnostic scan (module notes give the steps).

    Parameters
    ----------
    scan_dir : path
        One diagnostic PET/CT or SPECT/CT (DICOM).
    out_dir : path
        Created if needed; files in it of the same names are replaced.
    labels_path : path, optional
        Organ label map (NIfTI, SEG, RTSTRUCT) on the CT; default ``labels.nii.gz``
        in ``scan_dir`` or its parent.
    fwhm_mm : float
        Reconstructed system resolution, mm (erosion of the liver reference,
        dilation of the excluded organs).
    question : {"prrt", "mibg"} or None
        Which therapy's eligibility to decide; None: lesions and scores only.
    weight_kg, height_cm, sex : optional
        Patient data where the header lacks them (SUV needs the weight).
    clinical : mapping, optional
        :func:`read_clinical_file` output (labs, clinical facts, medications).
    fdg_dir : path, optional
        An 18F-FDG PET/CT of the same patient, for the dual-tracer (NETPET) grade.
    fdg_fwhm_mm : float, optional
        Resolution of the FDG PET, mm; default ``fwhm_mm``.
    known_lesions : int, optional
        Lesions known from CT/MR, for the MIBG-avid fraction of 131I-MIBG
        eligibility (not given: that criterion is undetermined).
    strictness : {"strict", "lenient"}
    report : bool
        Write the HTML and PDF report.
    progress : callable, optional

    Returns
    -------
    AssessmentResult
    """
    from theranet.imaging.lesions import detect_lesions
    from theranet.imaging.score import krenning_score, patient_krenning

    say = progress or (lambda msg: logger.info(msg))
    scan_dir, out_dir = Path(scan_dir), Path(out_dir)
    if question is not None and question not in QUESTIONS:
        raise AssessmentError("--question", "unknown", question, f"use one of {list(QUESTIONS)}")
    if not scan_dir.is_dir():
        raise AssessmentError("SCAN_DIR", "is not a folder", str(scan_dir), "give a scan folder")
    mode = Strictness.parse(strictness)
    say("finding the scan")
    ref, ct_dir = _find_scan(scan_dir, mode)
    image = _read_emission(ref, mode)
    entry = _tracer(image, question)
    modality = "PET" if ref.kind == "pet" else "SPECT"
    fdg_scan = None if fdg_dir is None else _fdg_scan(Path(fdg_dir), mode)
    image = _with_patient(image, weight_kg, height_cm, sex)
    if image.quantity is not Quantity.ACTIVITY_CONCENTRATION:
        raise AssessmentError(
            "quantity",
            "the scan is not quantitative (activity concentration)",
            image.quantity.value,
            "use a reconstruction in Bq/mL (PET units BQML, SPECT with Real World Values "
            "or a calibration)",
        )
    if modality == "PET":
        # a PET assessment reports SUV: refused here, naming what to supply (weight,
        # injection time, administered activity, attenuation/decay correction)
        image.to_suv("bw")
    ct = None
    if ct_dir is not None:
        from theranet.io import read_series

        ct = read_series(ct_dir, strictness=mode)
    if labels_path is None:
        candidates = [scan_dir / "labels.nii.gz", scan_dir.parent / "labels.nii.gz"]
        labels_path = next((p for p in candidates if p.exists()), None)
        if labels_path is None:
            raise AssessmentError(
                "--labels",
                "no organ label map",
                None,
                "give --labels (NIfTI, DICOM SEG or RTSTRUCT of the organs on the CT, with "
                "at least the liver)",
            )
    say("organ labels")
    organs, dropped = _organ_labels(Path(labels_path), ct, image)
    warnings: list[str] = []
    if dropped:
        warnings.append(
            f"{len(dropped)} labels named lesion* were merged into the organ around them"
        )
    say("detecting lesions")
    settings = None
    if entry.target == QUESTIONS["mibg"]:
        from theranet.imaging.lesions import MIBG_EXCLUDED_ORGANS, DetectionSettings

        # adrenal tumours take up MIBG: the adrenals are searched, the myocardium not
        settings = DetectionSettings(excluded_organs=MIBG_EXCLUDED_ORGANS)
    table = detect_lesions(image, organs, fwhm_mm=fwhm_mm, settings=settings)
    table = _soft_tissue_pass(image, organs, table, fwhm_mm)
    warnings.extend(table.notes)
    use_suv = modality == "PET"
    liver, spleen = _reference_means(table, use_suv)
    scores = []
    for les in table.lesions:
        uptake = les.suv_max if use_suv else les.max_mbq_per_ml
        scores.append(krenning_score(uptake, liver, spleen, modality=modality))
    pk = patient_krenning(scores) if scores else None
    dual = None
    if fdg_dir is not None:
        if ct is None:
            raise AssessmentError(
                "SCAN_DIR", "a dual-tracer assessment needs the CT of the SSTR scan",
                str(scan_dir), "give the SSTR PET/CT with its CT",
            )  # fmt: skip
        say("FDG scan")
        dual = _dual_tracer(fdg_scan, image, ct, organs, table, fdg_fwhm_mm or fwhm_mm, mode)
        warnings.extend(dual.notes)
    half_max = _half_max_volumes_ml(image, table)
    recovery = [_max_recovery(v, fwhm_mm) for v in half_max]
    limited = [les.name for les, rc in zip(table.lesions, recovery, strict=True)
               if rc < PV_RECOVERY_LIMIT]  # fmt: skip
    if limited:
        warnings.append(
            f"{len(limited)} lesions smaller than about three FWHM ({', '.join(limited)}): "
            f"their maximum recovers less than {PV_RECOVERY_LIMIT:g} of the true uptake "
            "(partial volume), so their Krenning-equivalent grade may be too low"
        )
    eligibility = None
    if question is not None:
        say("eligibility")
        eligibility = _eligibility(question, scores, table, clinical or {}, dual, known_lesions)
    result = AssessmentResult(
        out_dir=out_dir,
        tracer=entry.name,
        modality=modality,
        question=question,
        lesions=table,
        krenning=tuple(scores),
        patient_krenning=pk,
        eligibility=eligibility,
        warnings=tuple(warnings),
        half_max_volumes_ml=tuple(half_max),
        max_recoveries=tuple(recovery),
        dual_tracer=dual,
    )
    say("writing")
    files = _write(result, image, ct, report=report, scan=ref.description)
    return replace(result, files=files)


def _with_patient(image: Image, weight_kg, height_cm, sex) -> Image:
    given = {"weight_kg": weight_kg, "height_cm": height_cm, "sex": sex}
    changes = {k: v for k, v in given.items() if v is not None}
    if not changes:
        return image
    for k, v in changes.items():
        old = getattr(image.patient, k)
        if old is not None and old != v:
            logger.info("patient %s: header %r replaced by %r", k, old, v)
    return image.replace(patient=replace(image.patient, **changes))


def _reference_means(table, use_suv: bool) -> tuple[float, float | None]:
    if use_suv:
        liver, spleen = table.liver_mean_suv, table.spleen_mean_suv
    else:
        liver = table.liver.mean if table.liver is not None else None
        spleen = table.spleen.mean if table.spleen is not None else None
    if liver is None or not math.isfinite(liver) or liver <= 0:
        raise AssessmentError(
            "labels",
            "no usable normal-liver uptake for the Krenning reference",
            liver,
            "give organ labels with the liver (label named 'liver')",
        )
    return float(liver), (None if spleen is None else float(spleen))


def _eligibility(question: str, scores, table, clinical: Mapping[str, Any], dual=None,
                 known_lesions: int | None = None):  # fmt: skip
    from theranet.therapy.eligibility import Labs, mibg_eligibility, prrt_eligibility

    labs = clinical.get("labs") or Labs()
    if question == "prrt":
        return prrt_eligibility(
            [s.grade for s in scores], labs, clinical.get("clinical"),
            fdg_positive_sstr_negative=None if dual is None else bool(dual.fdg_only),
            netpet=None if dual is None else dual.netpet,
        )  # fmt: skip
    if known_lesions is not None and known_lesions < len(table.lesions):
        raise AssessmentError(
            "--known-lesions",
            f"fewer than the {len(table.lesions)} MIBG-avid lesions found",
            known_lesions,
            "give the number of lesions known from CT/MR",
        )
    return mibg_eligibility(
        len(table.lesions) if known_lesions is not None else None, known_lesions, labs,
        clinical.get("clinical"), medications=clinical.get("medications"),
        thyroid_blockade=clinical.get("thyroid_blockade"),
    )  # fmt: skip


def _soft_tissue_pass(image: Image, organs: Labels, table, fwhm_mm: float):
    """Add the soft-tissue lesions above ``k1`` x liver (module notes, step 4)."""
    from theranet.imaging.lesions import (
        SOFT_TISSUE_REGIONS,
        DetectionSettings,
        ThresholdRule,
        detect_lesions,
        matches_any,
    )
    from theranet.imaging.score import score_thresholds

    k1 = score_thresholds().value("krenning_k1")
    rule = ThresholdRule(
        "liver", k1, 2.0,
        f"Krenning >= 2 in soft tissue: {k1:g} x liver mean + 2 SD (clinical.md §3.1)",
    )  # fmt: skip
    on_grid = organs if organs.image.same_grid(image) else organs.resample_to(image)
    lab = np.asarray(on_grid.image.data)
    soft = [v for v, n in on_grid.names.items() if matches_any(n, SOFT_TISSUE_REGIONS)]
    within = np.isin(lab, soft) | (lab == 0)
    first = np.asarray(table.labels.image.data)
    extra = detect_lesions(
        image, organs, fwhm_mm=fwhm_mm, settings=DetectionSettings(rule=rule), within=within
    )
    found = np.asarray(extra.labels.image.data)
    merged = first.astype(np.int32).copy()
    lesions = list(table.lesions)
    names = dict(table.labels.names)
    added = []
    for les in extra.lesions:
        mask = found == les.lesion_id
        if np.any(first[mask] > 0):
            continue  # already found by the first pass
        new_id = len(lesions) + 1
        merged[mask] = new_id
        lesions.append(replace(les, lesion_id=new_id, name=f"lesion_{new_id}"))
        names[new_id] = f"lesion_{new_id}"
        added.append(f"lesion_{new_id}")
    if not added:
        return table
    labels = Labels(table.labels.image.replace(data=merged), names)
    note = (
        f"soft-tissue pass ({rule.source}, level {extra.threshold:.4g} {extra.unit}): "
        f"added {', '.join(added)}"
    )
    return replace(table, lesions=tuple(lesions), labels=labels, notes=(*table.notes, note))


@dataclass(frozen=True)
class DualTracer:
    """The SSTR lesions on the FDG scan, and the FDG-only lesions.

    Attributes
    ----------
    per_lesion : tuple of dict
        One per SSTR lesion: ``fdg_positive``, ``fdg_suv_max``, ``fdg_tlr``,
        ``fdg_vs_sstr`` and ``netpet`` (lesion grade).
    fdg_only : tuple of dict
        FDG lesions overlapping no SSTR lesion (NETPET P5): volume, SUVmax, TLR,
        centroid.
    netpet : NetpetResult or None
        Patient grade (None without any lesion).
    registration : str
        The FDG-to-SSTR CT registration (one line).
    notes : tuple of str
    """

    per_lesion: tuple[dict[str, Any], ...]
    fdg_only: tuple[dict[str, Any], ...]
    netpet: Any
    registration: str
    notes: tuple[str, ...] = ()


def _fdg_scan(fdg_dir: Path, mode: Strictness) -> tuple[Image, Path]:
    """The FDG PET and its CT folder, checked before any work is done."""
    if not fdg_dir.is_dir():
        raise AssessmentError(
            "--fdg", "is not a folder", str(fdg_dir), "give the FDG PET/CT folder"
        )
    ref, ct_dir = _find_scan(fdg_dir, mode)
    fdg = _read_emission(ref, mode)
    try:
        entry = rp.get(fdg.tracer) if fdg.tracer else None
    except (KeyError, ValueError, TheranetError):
        entry = None
    if entry is None or entry.name != "18F-FDG":
        raise AssessmentError(
            "--fdg", "is not an 18F-FDG scan", fdg.tracer, "give the patient's FDG PET/CT"
        )
    if ct_dir is None:
        raise AssessmentError(
            "--fdg", "holds no CT", str(fdg_dir), "give the FDG PET/CT with its CT"
        )
    return fdg, ct_dir


def _dual_tracer(fdg_scan: tuple[Image, Path], sstr: Image, sstr_ct: Image, organs: Labels,
                 sstr_table, fwhm_mm: float, mode: Strictness) -> DualTracer:  # fmt: skip
    from theranet.imaging.lesions import DEFAULT_EXCLUDED_ORGANS, DetectionSettings, detect_lesions
    from theranet.imaging.register import apply, register_rigid, working_copy
    from theranet.imaging.score import netpet_lesion_grade, netpet_patient
    from theranet.io import read_series

    fdg, ct_dir = fdg_scan
    fdg_ct = read_series(ct_dir, strictness=mode)
    reg = register_rigid(working_copy(sstr_ct), working_copy(fdg_ct), shrink_factors=(2, 1))
    on_sstr = apply(reg, fdg, sstr)
    settings = DetectionSettings(excluded_organs=(*DEFAULT_EXCLUDED_ORGANS, *FDG_EXTRA_EXCLUDED))
    table = detect_lesions(on_sstr, organs, fwhm_mm=fwhm_mm, settings=settings)
    found = np.asarray(table.labels.image.data)
    sstr_found = np.asarray(sstr_table.labels.image.data)
    by_id = {les.lesion_id: les for les in table.lesions}
    per_lesion = []
    grades = []
    touched: set[int] = set()
    for les in sstr_table.lesions:
        overlap = found[sstr_found == les.lesion_id]
        ids = sorted({int(v) for v in overlap[overlap > 0]})
        touched.update(ids)
        row: dict[str, Any] = {"lesion_id": les.lesion_id, "fdg_positive": bool(ids)}
        relation = None
        if ids:
            best = max((by_id[i] for i in ids), key=lambda f: f.suv_max or 0.0)
            row.update(fdg_suv_max=best.suv_max, fdg_tlr=best.tlr)
            if best.tlr is not None and les.tlr:
                r = best.tlr / les.tlr
                relation = ("higher" if r > NETPET_EQUAL_TLR_RATIO else
                            "lower" if r < 1.0 / NETPET_EQUAL_TLR_RATIO else "equal")  # fmt: skip
        row["fdg_vs_sstr"] = relation
        grade = netpet_lesion_grade(True, bool(ids), relation or "equal")
        row["netpet"] = grade
        grades.append(grade)
        per_lesion.append(row)
    fdg_only = []
    for les in table.lesions:
        if les.lesion_id in touched:
            continue
        fdg_only.append({"fdg_lesion": les.name, "site": les.site, "volume_ml": les.volume_ml,
                         "suv_max": les.suv_max, "tlr": les.tlr,
                         "centroid_mm": list(les.centroid_mm), "netpet": "P5"})  # fmt: skip
        grades.append(netpet_lesion_grade(False, True))
    notes = [f"FDG: {len(table.lesions)} lesions, {len(fdg_only)} without SSTR uptake (P5)"]
    return DualTracer(
        per_lesion=tuple(per_lesion),
        fdg_only=tuple(fdg_only),
        netpet=netpet_patient(grades) if grades else None,
        registration=reg.describe(),
        notes=tuple(notes),
    )


# ----------------------------------------------------------------------------- outputs


#: A lesion whose maximum recovers less than this (uniform sphere of the detected
#: volume, Gaussian PSF of the system FWHM) is flagged: its maximum-based score may
#: be too low.
PV_RECOVERY_LIMIT = 0.99


def _max_recovery(volume_ml: float, fwhm_mm: float) -> float:
    from theranet.imaging.partial_volume import sphere_centre_recovery

    diameter_mm = (6.0 * volume_ml * 1000.0 / math.pi) ** (1.0 / 3.0)
    return sphere_centre_recovery(diameter_mm, fwhm_mm)


def _half_max_volumes_ml(image: Image, table) -> list[float]:
    """Volume of each lesion's voxels at or above half its maximum, mL.

    The threshold-detected volume of a small hot lesion is inflated by the blur
    (its tails rise above a liver-relative threshold); the half-maximum isocontour
    is the usual size estimate of a blurred object and is used for the
    partial-volume flag.
    """
    data = np.asarray(image.data)
    found = np.asarray(table.labels.image.data)
    out = []
    for les in table.lesions:
        values = data[found == les.lesion_id]
        top = float(values.max()) if values.size else 0.0
        out.append(float(np.count_nonzero(values >= 0.5 * top)) * image.voxel_volume_ml)
    return out


def _lesion_rows(result: AssessmentResult) -> list[dict[str, Any]]:
    rows = result.lesions.rows()
    per_lesion = zip(rows, result.krenning, result.half_max_volumes_ml, result.max_recoveries,
                     strict=True)  # fmt: skip
    for row, s, v, rc in per_lesion:
        row["krenning_grade"] = s.grade
        row["krenning_reference"] = s.reference
        row["half_max_volume_ml"] = round(v, 3)
        row["max_recovery"] = round(rc, 4)
        row["pv_limited"] = rc < PV_RECOVERY_LIMIT
    if result.dual_tracer is not None:
        for row, d in zip(rows, result.dual_tracer.per_lesion, strict=True):
            row.update({k: d.get(k) for k in _DUAL_COLUMNS})
    return rows


_DUAL_COLUMNS = ("fdg_positive", "fdg_suv_max", "fdg_tlr", "fdg_vs_sstr", "netpet")


def _summary(result: AssessmentResult, scan: str) -> dict[str, Any]:
    from theranet._version import __version__

    t = result.lesions
    pk = result.patient_krenning
    return {
        "theranet_version": __version__,
        "generated": datetime.now(UTC).isoformat(timespec="seconds"),
        "scan": {"description": scan, "tracer": result.tracer, "modality": result.modality},
        "question": result.question,
        "detection": {
            "threshold": t.threshold,
            "unit": t.unit,
            "reference": {
                "name": t.reference.name,
                "method": t.reference.method,
                "mean": t.reference.mean,
                "sd": t.reference.sd,
            },
            "liver_mean": None if t.liver is None else t.liver.mean,
            "spleen_mean": None if t.spleen is None else t.spleen.mean,
            "liver_mean_suv": t.liver_mean_suv,
            "spleen_mean_suv": t.spleen_mean_suv,
            "excluded_regions": list(t.excluded_regions),
            "fwhm_mm": t.fwhm_mm,
        },
        "lesions": len(t.lesions),
        "krenning": {
            "label": "semi-automatic Krenning-equivalent (clinical.md §3.1); never replaces "
            "the reader's visual score",
            "per_lesion": {
                les.name: s.grade for les, s in zip(t.lesions, result.krenning, strict=True)
            },
            "patient": None if pk is None else _plain(pk),
        },
        "dual_tracer": None if result.dual_tracer is None else _dual_summary(result.dual_tracer),
        "eligibility": None if result.eligibility is None else result.eligibility.to_dict(),
        "warnings": list(result.warnings),
    }


def _dual_summary(d: DualTracer) -> dict[str, Any]:
    return {
        "netpet": None if d.netpet is None else _plain(d.netpet),
        "fdg_only_lesions": [_plain(x) for x in d.fdg_only],
        "registration": d.registration,
        "rule": f"FDG vs SSTR by the ratio of tumour-to-liver ratios, equal within "
        f"x{NETPET_EQUAL_TLR_RATIO:g} [UNCERTAIN: implementation choice]",
    }


def _plain(obj: Any) -> Any:
    if hasattr(obj, "to_dict"):
        return obj.to_dict()
    if hasattr(obj, "__dataclass_fields__"):
        return {f: _plain(getattr(obj, f)) for f in obj.__dataclass_fields__}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, (set, frozenset)):
        return sorted(_plain(v) for v in obj)
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def _write(result: AssessmentResult, image: Image, ct, *, report: bool, scan: str):
    from theranet.io.nifti import write_nifti

    out = result.out_dir
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".assess-", dir=out.parent))
    try:
        rows = _lesion_rows(result)
        columns = [*result.lesions.columns, "krenning_grade", "krenning_reference",
                   "half_max_volume_ml", "max_recovery", "pv_limited"]  # fmt: skip
        if result.dual_tracer is not None:
            columns += list(_DUAL_COLUMNS)
        with open(tmp / "lesions.csv", "w", newline="", encoding="utf-8") as fh:
            w = csv.DictWriter(fh, fieldnames=columns)
            w.writeheader()
            w.writerows(rows)
        summary = _summary(result, scan)
        (tmp / "assessment.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
        write_nifti(result.lesions.labels, tmp / "lesions.nii.gz")
        if report:
            from theranet.report.assessment import write_assessment_report

            write_assessment_report(tmp, summary, rows, image, result.lesions.labels)
        names = sorted(p.name for p in tmp.iterdir())
        out.mkdir(parents=True, exist_ok=True)
        for name in names:
            os.replace(tmp / name, out / name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {n: out / n for n in names}
