"""Response from images: CT studies with lesion segmentations, measured and tracked.

Each study folder holds one CT series (DICOM) and the lesions drawn on it; the
earliest study is the baseline. For every study the lesions are measured
(:func:`~theranet.response.measure.measure_lesions`); every follow-up CT is
registered rigidly to the baseline CT and its lesions are matched to the baseline's
(:func:`~theranet.response.tracking.match_lesions`); the measurements become the
rows of the clinicians' table (:class:`~theranet.response.table.Measurement`) and
are assessed by RECIST 1.1 (:func:`~theranet.response.recist.assess_patient`) and
Choi (:func:`~theranet.response.choi.choi_response`).

Study folder
------------
* the CT: exactly one CT series anywhere under the folder;
* the lesions: ``lesions.nii.gz`` (or ``lesions.nii``) with its JSON sidecar naming
  every label, on the CT grid; otherwise the one DICOM SEG or RTSTRUCT in the folder;
* optionally ``organs.nii.gz``: an organ label map on the CT grid, for the organ of
  lesions whose name does not give it.

Rules (clinical.md §7.1, RECIST 1.1, Eisenhauer et al. 2009)
-------------------------------------------------------------
Organ
    ``lesion_<organ>_<n>`` names give the organ; otherwise the organ label the
    lesion overlaps most in ``organs.nii.gz``; a lesion without either is refused.
    Lymph nodes (names with "node", "nodal", "lymph" or "LN") are measured in short
    axis and grouped as the organ "lymph node".
Baseline target selection
    Measurable lesions (non-nodal LD >= 10 mm, or twice the slice thickness above
    5 mm; nodes SA >= 15 mm) are taken largest first (LD, nodes by SA), at most
    :data:`MAX_TARGETS_PER_ORGAN` per organ and :data:`MAX_TARGETS` in all. Other
    lesions are non-target, except nodes with SA < 10 mm (normal, not lesions).
    Bone lesions are non-target unless ``bone_measurable=True`` (RECIST 1.1: bone
    lesions without a soft-tissue component are not measurable; a segmentation
    cannot tell a lytic soft-tissue component from a blastic lesion).
Follow-up
    Target diameters are booked against baseline ids as RECIST says for splits
    (sum of fragments) and merges
    (:meth:`~theranet.response.tracking.Matching.baseline_diameters_mm`);
    a target not found is 0 mm (``absent``). A non-target lesion is ``present``
    when matched (a node only while its SA is >= 10 mm), ``absent`` otherwise;
    unequivocal progression of non-target disease is a reader's judgement and is
    never inferred from the images. Every follow-up lesion without a baseline
    counterpart is a new lesion (``present``).
Choi
    Size: the RECIST sum of the targets; density: the volume-weighted mean HU of
    the target lesions (portal-venous CT is the user's responsibility).
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np

from theranet.errors import Strictness, TheranetError, TimingError
from theranet.image import Image, Labels
from theranet.response.choi import ChoiResult, ChoiStudy, choi_response
from theranet.response.measure import LesionMeasurement, measure_lesions
from theranet.response.recist import (
    MAX_TARGETS,
    MAX_TARGETS_PER_ORGAN,
    NODE_NORMAL_BELOW_MM,
    Measurability,
    PatientResponse,
    assess_patient,
    measurability,
)
from theranet.response.table import Measurement, ResponseError
from theranet.response.tracking import Matching, match_lesions

__all__ = [
    "ImageResponse",
    "ImagingStudy",
    "assess_studies",
    "read_imaging_study",
]

logger = logging.getLogger(__name__)

#: Organ under which lymph nodes are grouped.
NODE_ORGAN = "lymph node"

_LESION_FILES = ("lesions.nii.gz", "lesions.nii")
_ORGAN_FILES = ("organs.nii.gz", "organs.nii")
_NAMED = re.compile(r"^lesion_(?P<organ>[a-z0-9]+(?:_[a-z0-9]+)*?)_(?P<n>\d+)$", re.IGNORECASE)


@dataclass(frozen=True)
class ImagingStudy:
    """One CT study with its lesions.

    Attributes
    ----------
    folder : Path
    study_date : datetime.date
    patient : str
        Pseudonym of the patient (a hash, never the DICOM Patient ID).
    ct : Image
        HU.
    lesions : Labels
        On the CT grid.
    organs : Labels or None
        On the CT grid.
    slice_thickness_mm : float
        Spacing of the CT slices, mm.
    """

    folder: Path
    study_date: date
    patient: str
    ct: Image
    lesions: Labels
    organs: Labels | None
    slice_thickness_mm: float


def read_imaging_study(folder: str | Path, *, strictness: str = "strict") -> ImagingStudy:
    """Read the CT and the lesion segmentation of one study folder.

    Parameters
    ----------
    folder : path
        See the module notes for its content.
    strictness : {"strict", "lenient"}
        Passed to the DICOM readers.

    Returns
    -------
    ImagingStudy

    Raises
    ------
    ResponseError
        No CT or several, no lesion segmentation or several.
    TimingError
        The CT has no acquisition date.
    """
    from theranet.io import discover, read_series
    from theranet.io.nifti import read_labels
    from theranet.io.regions import read_regions

    folder = Path(folder)
    if not folder.is_dir():
        raise ResponseError("STUDY_DIR", "is not a folder", str(folder), "give a study folder")
    mode = Strictness.parse(strictness)
    groups = discover(folder, strictness=mode)
    cts = [(g, s) for g in groups for st in g.studies for s in st.series if s.kind == "ct"]
    ct_dirs = sorted({s.paths[0].parent for _, s in cts})
    if len(ct_dirs) != 1:
        raise ResponseError(
            "STUDY_DIR",
            "must hold exactly one CT series" if ct_dirs else "holds no CT series",
            [p.name for p in ct_dirs] if ct_dirs else folder.name,
            "give one folder per study, with its CT and its lesion segmentation",
        )
    pseudonyms = {g.pseudonym for g, _ in cts}
    ct = read_series(ct_dirs[0], strictness=mode)
    when = ct.timing.acquisition_start
    if when is None:
        raise TimingError(
            "AcquisitionDate (0008,0022)",
            "the CT has no acquisition date, needed to order the studies",
            None,
            "give CT series with their acquisition (or series) date",
            folder.name,
        )
    lesion_file = next((folder / n for n in _LESION_FILES if (folder / n).exists()), None)
    if lesion_file is None:
        regions = [
            s.paths[0]
            for g in groups
            for st in g.studies
            for s in st.series
            if s.modality in ("SEG", "RTSTRUCT")
        ]
        if len(regions) != 1:
            raise ResponseError(
                "STUDY_DIR",
                "needs one lesion segmentation"
                + (f", found {len(regions)} SEG/RTSTRUCT files" if regions else ""),
                folder.name,
                "add lesions.nii.gz (label map on the CT grid, names in its JSON sidecar) "
                "or one DICOM SEG or RTSTRUCT of the lesions",
            )
        lesion_file = regions[0]
    lesions = read_regions(lesion_file, ct)
    organ_file = next((folder / n for n in _ORGAN_FILES if (folder / n).exists()), None)
    organs = None
    if organ_file is not None:
        organs = read_labels(organ_file)
        if not organs.image.same_grid(ct):
            organs = organs.resample_to(ct)
    slice_axis_ = int(np.argmax(np.abs(ct.affine[2, :3])))
    return ImagingStudy(
        folder=folder,
        study_date=when.date(),
        patient=sorted(pseudonyms)[0] if pseudonyms else folder.name,
        ct=ct,
        lesions=lesions,
        organs=organs,
        slice_thickness_mm=float(ct.spacing_mm[slice_axis_]),
    )


@dataclass(frozen=True)
class ImageResponse:
    """RECIST 1.1 and Choi from image studies, with what the assessment was built on.

    Attributes
    ----------
    recist : PatientResponse
    choi : tuple of (datetime.date, ChoiResult)
        Per follow-up study (empty without target disease).
    measurements : tuple of Measurement
        The table the assessment used (the CSV contract of
        :mod:`theranet.response.table`).
    tracking : tuple of dict
        Per follow-up lesion: study date, follow-up label and name, lesion id,
        how it was linked (overlap, distance, split, merge, new) and the Dice.
    registrations : tuple of (datetime.date, str)
        Per follow-up study, the registration to the baseline CT (one line).
    """

    recist: PatientResponse
    choi: tuple[tuple[date, ChoiResult], ...]
    measurements: tuple[Measurement, ...]
    tracking: tuple[dict[str, Any], ...]
    registrations: tuple[tuple[date, str], ...]

    def measurement_rows(self) -> list[dict[str, Any]]:
        """The measurement table as CSV rows (:data:`theranet.response.table.COLUMNS`)."""
        return [
            {
                "patient_id": m.patient_id,
                "study_date": m.study_date.isoformat(),
                "lesion_id": m.lesion_id,
                "organ": m.organ,
                "is_node": str(m.is_node).lower(),
                "role": m.role,
                "longest_diameter_mm": _mm(m.longest_diameter_mm),
                "short_axis_mm": _mm(m.short_axis_mm),
                "status": m.status,
                "slice_thickness_mm": _mm(m.slice_thickness_mm),
            }
            for m in self.measurements
        ]

    def choi_rows(self) -> list[dict[str, Any]]:
        return [
            {
                "patient_id": self.recist.patient_id,
                "study_date": d.isoformat(),
                "choi": str(c.category),
                "size_change_pct": _round(c.size_change_pct),
                "density_change_pct": _round(c.density_change_pct),
                "reasons": "; ".join(c.reasons),
            }
            for d, c in self.choi
        ]


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def _mm(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}"


def _organ(m: LesionMeasurement, study: ImagingStudy) -> str:
    if m.is_node:
        return NODE_ORGAN
    named = _NAMED.match(m.name)
    if named:
        return named.group("organ").lower().replace("_", " ")
    if m.site:
        return m.site
    raise ResponseError(
        f"lesion {m.name!r}",
        "has no organ",
        m.name,
        "name lesions lesion_<organ>_<n> or add organs.nii.gz (organ label map on the CT grid)",
        study.folder.name,
    )


def _measure(study: ImagingStudy) -> dict[int, LesionMeasurement]:
    found = measure_lesions(study.lesions, study.ct, organs=study.organs)
    return {m.label: m for m in found}


def _select_targets(
    baseline: Sequence[LesionMeasurement],
    organs: dict[int, str],
    slice_thickness_mm: float,
    *,
    bone_measurable: bool,
) -> tuple[set[int], set[int]]:
    """Baseline (targets, non-targets) by label; normal nodes are in neither."""
    measurable: list[LesionMeasurement] = []
    non_target: set[int] = set()
    for m in baseline:
        cls = measurability(
            is_node=m.is_node,
            longest_diameter_mm=None if m.is_node else m.longest_diameter_mm,
            short_axis_mm=m.short_axis_mm if m.is_node else None,
            slice_thickness_mm=slice_thickness_mm,
        )
        if cls is Measurability.NORMAL_NODE:
            continue
        if cls is Measurability.MEASURABLE and (organs[m.label] != "bone" or bone_measurable):
            measurable.append(m)
        else:
            non_target.add(m.label)
    measurable.sort(key=lambda m: (-m.recist_diameter_mm, m.label))
    targets: set[int] = set()
    per_organ: dict[str, int] = {}
    for m in measurable:
        organ = organs[m.label]
        if len(targets) < MAX_TARGETS and per_organ.get(organ, 0) < MAX_TARGETS_PER_ORGAN:
            targets.add(m.label)
            per_organ[organ] = per_organ.get(organ, 0) + 1
        else:
            non_target.add(m.label)
    return targets, non_target


def _registration(fixed: Image, moving: Image, method: str):
    from theranet.imaging.register import identity, register_rigid, working_copy

    if method == "none":
        return identity(fixed)
    return register_rigid(
        working_copy(fixed), working_copy(moving), metric="correlation", shrink_factors=(2, 1),
        initializer="geometry",
    )  # fmt: skip


def assess_studies(
    folders: Sequence[str | Path],
    *,
    patient_id: str | None = None,
    register: str = "rigid",
    confirmation: bool = False,
    bone_measurable: bool = False,
    max_distance_mm: float = 15.0,
    strictness: str = "strict",
    progress: Callable[[str], None] | None = None,
) -> ImageResponse:
    """RECIST 1.1 and Choi from CT studies with lesion segmentations.

    Parameters
    ----------
    folders : sequence of path
        One folder per study (module notes); the order does not matter, the
        earliest is the baseline.
    patient_id : str, optional
        Pseudonymous id for the outputs; default the hash of the DICOM identity.
    register : {"rigid", "none"}
        Follow-up CT to baseline CT (``"none"``: the studies share a frame of
        reference, e.g. already registered).
    confirmation : bool
        Require confirmation of CR/PR for the best overall response.
    bone_measurable : bool
        Take bone lesions as measurable (lytic with a soft-tissue component).
    max_distance_mm : float
        Centroid distance fallback of the lesion matching, mm.
    strictness : {"strict", "lenient"}
    progress : callable, optional
        Called with a short message at each step.

    Returns
    -------
    ImageResponse

    Raises
    ------
    ResponseError
        Fewer than two studies, two studies on one date, studies of different
        patients, a lesion without an organ.
    """
    say = progress or (lambda msg: logger.info(msg))
    if register not in ("rigid", "none"):
        raise ResponseError("register", "unknown method", register, "use 'rigid' or 'none'")
    if len(folders) < 2:
        raise ResponseError(
            "STUDY_DIR", "a baseline and at least one follow-up study are needed", len(folders),
            "give two or more study folders",
        )  # fmt: skip
    studies = []
    for f in folders:
        say(f"reading {Path(f).name}")
        studies.append(read_imaging_study(f, strictness=strictness))
    studies.sort(key=lambda s: s.study_date)
    dates = [s.study_date for s in studies]
    if len(set(dates)) != len(dates):
        raise ResponseError(
            "STUDY_DIR", "two studies on the same date", [d.isoformat() for d in dates],
            "give one study per date",
        )  # fmt: skip
    patients = {s.patient for s in studies}
    if len(patients) > 1 and patient_id is None:
        raise ResponseError(
            "STUDY_DIR",
            "the studies belong to different patients",
            sorted(patients),
            "give the studies of one patient (or --patient-id if the CTs were pseudonymised "
            "differently)",
        )
    pid = patient_id or studies[0].patient
    baseline = studies[0]
    say(f"measuring {baseline.folder.name}")
    bl = _measure(baseline)
    if not bl:
        raise ResponseError(
            "lesions", "the baseline segmentation holds no lesion", baseline.folder.name,
            "segment the lesions on the baseline CT",
        )  # fmt: skip
    organs = {label: _organ(m, baseline) for label, m in bl.items()}
    targets, non_targets = _select_targets(
        list(bl.values()), organs, baseline.slice_thickness_mm, bone_measurable=bone_measurable
    )
    names = {label: m.name for label, m in bl.items()}
    rows: list[Measurement] = []

    def add(
        study: ImagingStudy,
        label: int,
        role: str,
        m: LesionMeasurement | None,
        diameter_mm: float | None,
        status: str,
        lesion_id: str,
        organ: str,
        node: bool,
    ):
        ld = sa = None
        if role == "target":
            if diameter_mm is not None and status == "":
                ld, sa = (None, diameter_mm) if node else (diameter_mm, None)
            elif status == "absent":
                ld, sa = (None, 0.0) if node else (0.0, None)
            if m is not None and not node and ld is not None:
                sa = m.short_axis_mm
        rows.append(
            Measurement(
                patient_id=pid, study_date=study.study_date, lesion_id=lesion_id, organ=organ,
                is_node=node, role=role, longest_diameter_mm=ld, short_axis_mm=sa,
                status=status, slice_thickness_mm=study.slice_thickness_mm,
            )
        )  # fmt: skip

    for label, m in bl.items():
        if label in targets:
            add(baseline, label, "target", m, m.recist_diameter_mm, "", m.name, organs[label],
                m.is_node)  # fmt: skip
        elif label in non_targets:
            add(baseline, label, "non_target", m, None, "present", m.name, organs[label],
                m.is_node)  # fmt: skip

    tracking: list[dict[str, Any]] = []
    registrations: list[tuple[date, str]] = []
    hu_by_study: dict[date, float | None] = {baseline.study_date: _mean_hu(bl, targets)}
    new_by_study: dict[date, bool] = {}
    for study in studies[1:]:
        say(f"registering {study.folder.name} to the baseline")
        reg = _registration(baseline.ct, study.ct, register)
        registrations.append((study.study_date, reg.describe()))
        say(f"measuring {study.folder.name}")
        fu = _measure(study)
        matching = match_lesions(
            baseline.lesions, study.lesions, transform=reg, max_distance_mm=max_distance_mm
        )
        ids = matching.lesion_ids()
        tracking.extend(_tracking_rows(study, matching, ids, fu, names))
        booked = matching.baseline_diameters_mm(
            {label: m.recist_diameter_mm for label, m in fu.items()}
        )
        present = _present_baselines(matching)
        for label, m in bl.items():
            organ, node = organs[label], m.is_node
            if label in targets:
                d = booked.get(label, 0.0)
                add(study, label, "target", _matched(matching, fu, label), d,
                    "" if d > 0 else "absent", m.name, organ, node)  # fmt: skip
            elif label in non_targets:
                fm = _matched(matching, fu, label)
                still = label in present and not (
                    node and fm is not None and fm.short_axis_mm < NODE_NORMAL_BELOW_MM
                )
                add(study, label, "non_target", fm, None, "present" if still else "absent",
                    m.name, organ, node)  # fmt: skip
        for f_label in matching.new:
            fm = fu[f_label]
            organ = _organ(fm, study) if not fm.is_node else NODE_ORGAN
            new_id = f"new_{study.study_date.isoformat()}_{ids[f_label]}"
            add(study, f_label, "new", fm, None, "present", new_id, organ, fm.is_node)
        new_by_study[study.study_date] = bool(matching.new)
        fu_targets = {f for f, b in ids.items() if f not in matching.new and b in targets}
        hu_by_study[study.study_date] = _mean_hu(fu, fu_targets)

    say("assessing RECIST 1.1 and Choi")
    recist = assess_patient(rows, confirmation=confirmation)
    choi: list[tuple[date, ChoiResult]] = []
    if recist.has_target_disease:
        base = recist.studies[0]
        b = ChoiStudy(sum_mm=base.sum_mm, mean_hu=hu_by_study[baseline.study_date])
        for s in recist.followups:
            if s.sum_mm is None:
                continue
            f = ChoiStudy(
                sum_mm=s.sum_mm,
                mean_hu=hu_by_study.get(s.study_date),
                new_lesions=new_by_study.get(s.study_date, False),
            )
            try:
                choi.append((s.study_date, choi_response(b, f)))
            except TheranetError as exc:  # e.g. baseline HU <= 0: Choi not applicable
                logger.info("Choi not assessed at %s: %s", s.study_date, exc)
    return ImageResponse(
        recist=recist,
        choi=tuple(choi),
        measurements=tuple(rows),
        tracking=tuple(tracking),
        registrations=tuple(registrations),
    )


def _mean_hu(measured: dict[int, LesionMeasurement], labels: set[int]) -> float | None:
    chosen = [measured[k] for k in labels if k in measured and measured[k].mean_hu is not None]
    vol = sum(m.volume_ml for m in chosen)
    if vol <= 0:
        return None
    return float(sum(m.mean_hu * m.volume_ml for m in chosen) / vol)


def _present_baselines(matching: Matching) -> set[int]:
    out = {m.baseline for m in matching.matched}
    out |= {s.baseline for s in matching.splits}
    for m in matching.merges:
        out |= set(m.baselines)
    return out


def _matched(
    matching: Matching, fu: dict[int, LesionMeasurement], baseline_label: int
) -> LesionMeasurement | None:
    for m in matching.matched:
        if m.baseline == baseline_label:
            return fu.get(m.follow_up)
    return None


def _tracking_rows(
    study: ImagingStudy,
    matching: Matching,
    ids: dict[int, int],
    fu: dict[int, LesionMeasurement],
    baseline_names: dict[int, str],
) -> list[dict[str, Any]]:
    rows = []

    def row(f_label: int, link: str, baseline: str, dice: float | None) -> dict[str, Any]:
        m = fu.get(f_label)
        return {
            "study_date": study.study_date.isoformat(),
            "follow_up_label": f_label,
            "follow_up_name": m.name if m else "",
            "lesion_id": baseline or f"new {ids.get(f_label)}",
            "link": link,
            "dice": None if dice is None or math.isnan(dice) else round(dice, 3),
        }

    for m in matching.matched:
        rows.append(row(m.follow_up, m.by, baseline_names.get(m.baseline, ""), m.dice))
    for s in matching.splits:
        for f, d in zip(s.follow_ups, s.dice, strict=True):
            rows.append(row(f, "split", baseline_names.get(s.baseline, ""), d))
    for m in matching.merges:
        names = "+".join(baseline_names.get(b, str(b)) for b in m.baselines)
        rows.append(row(m.follow_up, "merge", names, max(m.dice)))
    for f in matching.new:
        rows.append(row(f, "new", "", None))
    for b in matching.disappeared:
        rows.append(
            {
                "study_date": study.study_date.isoformat(),
                "follow_up_label": None,
                "follow_up_name": "",
                "lesion_id": baseline_names.get(b, str(b)),
                "link": "disappeared",
                "dice": None,
            }
        )
    return rows
