"""RECIST 1.1 response assessment (Eisenhauer 2009; clinical.md §7.1).

Rules, as published
-------------------
Baseline (measurability, target selection)
    Non-nodal lesion measurable when its longest diameter (LD) is >= 10 mm, or
    >= 2 x the CT slice thickness when that exceeds 5 mm. Lymph nodes are measured in
    short axis (SA): >= 15 mm measurable (target-eligible), 10 to < 15 mm pathological
    but non-measurable (non-target), < 10 mm normal. At most 5 target lesions, at most
    2 per organ. Problems are refused, or flagged with ``on_baseline_problem="flag"``.
Sum of diameters (SoD)
    LD of non-nodal targets plus SA of nodal targets. A lesion "too small to measure"
    counts 5 mm (``too_small_mm``); a disappeared lesion 0 mm; target nodes keep their
    actual SA, so the sum may be > 0 at CR.
Target response
    CR: every non-nodal target gone and every target node SA < 10 mm. PR: SoD >= 30 %
    below the baseline SoD. PD: SoD >= 20 % above the nadir (smallest SoD on study,
    baseline included) **and** >= 5 mm above it. SD: neither. NE: a target not
    evaluated, unless PD is established from the measured ones (missing lesions can
    only add to the sum).
Non-target response
    PD: unequivocal progression of a non-target lesion. NE: a non-target lesion not
    evaluated. CR: all non-target lesions absent, nodes SA < 10 mm, tumour markers
    normal. Otherwise non-CR/non-PD.
New lesions
    An unequivocal new lesion is PD. An equivocal one is PD once a later study
    confirms it, dated to the study where it first appeared.
Overall response
    The time-point tables for patients with target disease and with non-target disease
    only (:func:`overall_response`).
Best overall response
    Best time-point response until progression; with ``confirmation=True`` CR and PR
    need a confirming study >= 4 weeks later, following the best-overall-response
    table; SD (non-CR/non-PD) counts only at >= ``sd_min_weeks`` after baseline
    (:func:`best_overall_response`).

Inclusive thresholds (>= 30 %, >= 20 %, >= 5 mm) are compared with a relative
tolerance of 1e-9 so that binary rounding of decimal inputs (e.g. 23.1 mm / 33 mm)
does not move a boundary case.

References
----------
Eisenhauer EA, Therasse P, Bogaerts J, et al. New response evaluation criteria in solid
tumours: revised RECIST guideline (version 1.1). Eur J Cancer 2009;45:228–247.

Examples
--------
>>> from datetime import date
>>> from theranet.response.table import Measurement
>>> def row(day, ld):
...     return Measurement("P1", day, "L1", "liver", False, "target", longest_diameter_mm=ld)
>>> result = assess_patient([row(date(2024, 1, 1), 50.0), row(date(2024, 3, 1), 30.0)])
>>> [(s.study_date.isoformat(), s.overall) for s in result.followups]
[('2024-03-01', <Response.PR: 'PR'>)]
>>> result.best_overall
<Response.PR: 'PR'>
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from os import PathLike
from typing import Any

from theranet.response.table import (
    Measurement,
    ResponseError,
    Study,
    group_studies,
    read_measurements,
)

__all__ = [
    "CONFIRMATION_WEEKS",
    "MAX_TARGETS",
    "MAX_TARGETS_PER_ORGAN",
    "MIN_LONGEST_DIAMETER_MM",
    "NODE_NORMAL_BELOW_MM",
    "NODE_TARGET_MIN_SHORT_AXIS_MM",
    "PD_MIN_INCREASE_MM",
    "PD_MIN_INCREASE_PCT",
    "PR_MIN_DECREASE_PCT",
    "SD_MIN_WEEKS",
    "TOO_SMALL_TO_MEASURE_MM",
    "LesionRow",
    "Measurability",
    "NonTargetValue",
    "PatientResponse",
    "Response",
    "StudyResponse",
    "TargetValue",
    "assess_csv",
    "assess_measurements",
    "assess_patient",
    "best_overall_response",
    "measurability",
    "non_target_response",
    "overall_response",
    "target_response",
]

logger = logging.getLogger(__name__)

#: Minimum LD of a measurable non-nodal lesion on CT with slices <= 5 mm, mm.
MIN_LONGEST_DIAMETER_MM: float = 10.0
#: Slice thickness above which the minimum LD is twice the slice thickness, mm.
_SLICE_THICKNESS_LIMIT_MM = 5.0
#: Minimum SA of a measurable (target-eligible) lymph node, mm.
NODE_TARGET_MIN_SHORT_AXIS_MM: float = 15.0
#: A node with SA below this is normal (not pathological), mm.
NODE_NORMAL_BELOW_MM: float = 10.0
#: At most this many target lesions in total, and per organ.
MAX_TARGETS: int = 5
MAX_TARGETS_PER_ORGAN: int = 2
#: PR: decrease of the SoD vs baseline, percent (inclusive).
PR_MIN_DECREASE_PCT: float = 30.0
#: PD: increase of the SoD vs nadir, percent and mm (both, inclusive).
PD_MIN_INCREASE_PCT: float = 20.0
PD_MIN_INCREASE_MM: float = 5.0
#: Default diameter of a lesion reported "too small to measure", mm.
TOO_SMALL_TO_MEASURE_MM: float = 5.0
#: Minimum interval of a confirming study for CR/PR, weeks.
CONFIRMATION_WEEKS: float = 4.0
#: Default minimum interval from baseline for SD to count as best response, weeks.
SD_MIN_WEEKS: float = 6.0

_REL_TOL = 1e-9
_POLICIES = ("raise", "flag")
_CR_THEN_PR = ("pd", "pr")


def _at_least(value: float, threshold: float) -> bool:
    return value >= threshold - _REL_TOL * max(1.0, abs(threshold))


class Response(StrEnum):
    """Response categories of RECIST 1.1 (time point and best overall)."""

    CR = "CR"
    PR = "PR"
    SD = "SD"
    PD = "PD"
    NE = "NE"
    NON_CR_NON_PD = "non-CR/non-PD"


class Measurability(StrEnum):
    """Baseline class of a lesion (RECIST 1.1 measurability)."""

    MEASURABLE = "measurable"
    NON_MEASURABLE = "non-measurable"
    NORMAL_NODE = "normal node"


def measurability(
    *,
    is_node: bool,
    longest_diameter_mm: float | None = None,
    short_axis_mm: float | None = None,
    slice_thickness_mm: float | None = None,
) -> Measurability:
    """Classify a lesion at baseline (RECIST 1.1; clinical.md §7.1).

    Parameters
    ----------
    is_node : bool
        Lymph node (classified by ``short_axis_mm``).
    longest_diameter_mm : float, optional
        Longest diameter of a non-nodal lesion, mm.
    short_axis_mm : float, optional
        Short axis of a node, mm.
    slice_thickness_mm : float, optional
        CT slice thickness, mm; when > 5 mm the minimum LD is twice this value. Not
        given: slices <= 5 mm are assumed (minimum 10 mm).

    Returns
    -------
    Measurability
        Nodes: SA >= 15 mm measurable, 10 to < 15 mm non-measurable, < 10 mm normal.
        Other lesions: LD >= max(10 mm, 2 x slice thickness if > 5 mm) measurable.

    Examples
    --------
    >>> measurability(is_node=True, short_axis_mm=12.0)
    <Measurability.NON_MEASURABLE: 'non-measurable'>
    >>> measurability(is_node=False, longest_diameter_mm=12.0, slice_thickness_mm=7.0)
    <Measurability.NON_MEASURABLE: 'non-measurable'>
    """
    if is_node:
        if short_axis_mm is None:
            raise ResponseError(
                "short_axis_mm",
                "a lymph node is classified by its short axis",
                None,
                "give the short axis in mm",
            )
        if _at_least(short_axis_mm, NODE_TARGET_MIN_SHORT_AXIS_MM):
            return Measurability.MEASURABLE
        if _at_least(short_axis_mm, NODE_NORMAL_BELOW_MM):
            return Measurability.NON_MEASURABLE
        return Measurability.NORMAL_NODE
    if longest_diameter_mm is None:
        raise ResponseError(
            "longest_diameter_mm",
            "a non-nodal lesion is classified by its longest diameter",
            None,
            "give the longest diameter in mm",
        )
    minimum = MIN_LONGEST_DIAMETER_MM
    if slice_thickness_mm is not None and slice_thickness_mm > _SLICE_THICKNESS_LIMIT_MM:
        minimum = 2.0 * slice_thickness_mm
    if _at_least(longest_diameter_mm, minimum):
        return Measurability.MEASURABLE
    return Measurability.NON_MEASURABLE


@dataclass(frozen=True)
class TargetValue:
    """A target lesion's contribution to the sum at one study.

    Parameters
    ----------
    lesion_id : str
    is_node : bool
    diameter_mm : float or None
        LD (non-nodal) or SA (node), mm, after the "too small" (5 mm) and
        "disappeared" (0 mm) conventions; ``None`` when not evaluated.
    """

    lesion_id: str
    is_node: bool
    diameter_mm: float | None


@dataclass(frozen=True)
class NonTargetValue:
    """A non-target lesion's state at one study.

    Parameters
    ----------
    lesion_id : str
    is_node : bool
    status : {"present", "absent", "unequivocal_progression", "not_evaluated"}
    short_axis_mm : float, optional
        A node with SA < 10 mm counts as resolved (non-pathological).
    """

    lesion_id: str
    is_node: bool
    status: str
    short_axis_mm: float | None = None


def target_response(
    lesions: Sequence[TargetValue],
    *,
    baseline_sum_mm: float,
    nadir_sum_mm: float,
) -> tuple[Response, tuple[str, ...]]:
    """Target-lesion response at one follow-up study (RECIST 1.1; clinical.md §7.1).

    Parameters
    ----------
    lesions : sequence of TargetValue
        Every baseline target lesion, ``diameter_mm=None`` when not evaluated.
    baseline_sum_mm : float
        Baseline sum of diameters, mm (> 0).
    nadir_sum_mm : float
        Smallest sum on study before this study, baseline included, mm.

    Returns
    -------
    response : Response
        PD (>= 20 % and >= 5 mm above the nadir, also from the measured lesions alone
        when some are missing), NE (a lesion not evaluated), CR (non-nodal targets 0 mm
        and target nodes SA < 10 mm), PR (>= 30 % below baseline), else SD.
    reasons : tuple of str
    """
    if not lesions:
        raise ResponseError("lesions", "no target lesions", fix="give the baseline targets")
    if not baseline_sum_mm > 0:
        raise ResponseError(
            "baseline_sum_mm", "must be > 0", baseline_sum_mm, "measure the baseline targets"
        )
    if not nadir_sum_mm >= 0:
        raise ResponseError("nadir_sum_mm", "must be >= 0", nadir_sum_mm)
    missing = [v.lesion_id for v in lesions if v.diameter_mm is None]
    measured = math.fsum(v.diameter_mm for v in lesions if v.diameter_mm is not None)
    increase_mm = measured - nadir_sum_mm
    increase_pct = increase_mm / nadir_sum_mm * 100.0 if nadir_sum_mm > 0 else math.inf
    reasons = []
    what = "sum of measured targets" if missing else "sum"
    relative_ok = nadir_sum_mm == 0 or _at_least(increase_pct, PD_MIN_INCREASE_PCT)
    absolute_ok = _at_least(increase_mm, PD_MIN_INCREASE_MM)
    change = f"{increase_pct:+.1f} %" if nadir_sum_mm > 0 else "rise from 0"
    if relative_ok and absolute_ok and increase_mm > 0:
        reasons.append(
            f"target PD: {what} {measured:.1f} mm is {change} and {increase_mm:+.1f} mm vs "
            f"nadir {nadir_sum_mm:.1f} mm (RECIST 1.1: >= 20 % and >= 5 mm)"
        )
        if missing:
            reasons.append(
                f"PD stands although {', '.join(missing)} not evaluated: missing lesions can "
                "only add to the sum"
            )
        return Response.PD, tuple(reasons)
    if missing:
        reasons.append(
            f"target NE: {', '.join(missing)} not evaluated and PD not established from "
            "the measured lesions"
        )
        return Response.NE, tuple(reasons)
    if relative_ok and increase_mm > 0:
        reasons.append(
            f"not PD: sum is {change} vs nadir {nadir_sum_mm:.1f} mm but only "
            f"{increase_mm:+.1f} mm (< 5 mm absolute)"
        )
    if all(
        (v.diameter_mm < NODE_NORMAL_BELOW_MM) if v.is_node else v.diameter_mm == 0 for v in lesions
    ):
        reasons.append(
            f"target CR: non-nodal targets gone, target nodes SA < 10 mm (sum {measured:.1f} mm)"
        )
        return Response.CR, tuple(reasons)
    change_pct = (measured - baseline_sum_mm) / baseline_sum_mm * 100.0
    if _at_least(-change_pct, PR_MIN_DECREASE_PCT):
        reasons.append(
            f"target PR: sum {measured:.1f} mm is {change_pct:+.1f} % vs baseline "
            f"{baseline_sum_mm:.1f} mm (RECIST 1.1: >= 30 % decrease)"
        )
        return Response.PR, tuple(reasons)
    reasons.append(
        f"target SD: sum {measured:.1f} mm is {change_pct:+.1f} % vs baseline and {change} vs nadir"
    )
    return Response.SD, tuple(reasons)


def non_target_response(
    lesions: Sequence[NonTargetValue],
    *,
    tumour_markers_normal: bool | None = None,
) -> tuple[Response, tuple[str, ...]]:
    """Non-target response at one follow-up study (RECIST 1.1; clinical.md §7.1).

    Parameters
    ----------
    lesions : sequence of NonTargetValue
        Every baseline non-target lesion (``status="not_evaluated"`` when missing).
    tumour_markers_normal : bool, optional
        ``False`` prevents CR; ``None`` (not supplied) lets CR stand with a note.

    Returns
    -------
    response : Response
        PD (unequivocal progression), NE (a lesion not evaluated), CR (all absent,
        nodes SA < 10 mm, markers normal) or NON_CR_NON_PD.
    reasons : tuple of str
    """
    if not lesions:
        raise ResponseError("lesions", "no non-target lesions", fix="give the baseline non-targets")
    progressed = [v.lesion_id for v in lesions if v.status == "unequivocal_progression"]
    if progressed:
        return Response.PD, (f"non-target PD: unequivocal progression of {', '.join(progressed)}",)
    missing = [v.lesion_id for v in lesions if v.status == "not_evaluated"]
    if missing:
        return Response.NE, (f"non-target NE: {', '.join(missing)} not evaluated",)
    unknown = [v.status for v in lesions if v.status not in ("present", "absent")]
    if unknown:
        raise ResponseError(
            "status",
            "not a non-target status",
            unknown[0],
            "use present, absent, unequivocal_progression or not_evaluated",
        )

    def resolved(v: NonTargetValue) -> bool:
        if v.status == "absent":
            return True
        return v.is_node and v.short_axis_mm is not None and v.short_axis_mm < NODE_NORMAL_BELOW_MM

    persisting = [v.lesion_id for v in lesions if not resolved(v)]
    if persisting:
        return Response.NON_CR_NON_PD, (
            f"non-target non-CR/non-PD: {', '.join(persisting)} persist",
        )
    if tumour_markers_normal is False:
        return Response.NON_CR_NON_PD, (
            "non-target non-CR/non-PD: lesions gone but tumour markers above normal",
        )
    reasons = ["non-target CR: all non-target lesions gone, nodes SA < 10 mm"]
    if tumour_markers_normal is None:
        reasons.append("tumour markers not supplied: CR assumes they are normal")
    return Response.CR, tuple(reasons)


_TARGET_CATEGORIES = frozenset({Response.CR, Response.PR, Response.SD, Response.PD, Response.NE})
_NON_TARGET_CATEGORIES = frozenset({Response.CR, Response.NON_CR_NON_PD, Response.PD, Response.NE})


def overall_response(
    target: Response | None,
    non_target: Response | None,
    new_lesions: bool,
) -> Response:
    """Time-point overall response (RECIST 1.1 tables; clinical.md §7.1).

    Parameters
    ----------
    target : Response or None
        CR, PR, SD, PD or NE; ``None`` for a patient without target disease.
    non_target : Response or None
        CR, NON_CR_NON_PD, PD or NE; ``None`` for a patient without non-target
        disease (then a target CR is an overall CR).
    new_lesions : bool
        An unequivocal new lesion.

    Returns
    -------
    Response
        Target disease: PD if any PD or a new lesion; CR + CR = CR; CR + non-CR/non-PD
        or NE = PR; PR + non-PD or NE = PR; SD + non-PD or NE = SD; NE + non-PD = NE.
        Non-target disease only: CR, NON_CR_NON_PD or NE as the non-target response.
    """
    if target is None and non_target is None:
        raise ResponseError(
            "target, non_target", "no disease to assess", fix="record baseline lesions"
        )
    if target is not None and target not in _TARGET_CATEGORIES:
        raise ResponseError("target", "not a target response", target, "use CR, PR, SD, PD, NE")
    if non_target is not None and non_target not in _NON_TARGET_CATEGORIES:
        raise ResponseError(
            "non_target",
            "not a non-target response",
            non_target,
            "use CR, non-CR/non-PD, PD, NE",
        )
    if new_lesions or target is Response.PD or non_target is Response.PD:
        return Response.PD
    if target is None:
        return Response(non_target)
    if target is Response.CR:
        return Response.CR if non_target in (None, Response.CR) else Response.PR
    return Response(target)


def best_overall_response(
    timepoints: Sequence[tuple[date, Response]],
    *,
    baseline_date: date,
    confirmation: bool = False,
    confirmation_weeks: float = CONFIRMATION_WEEKS,
    sd_min_weeks: float = SD_MIN_WEEKS,
    cr_then_pr: str = "pd",
    non_target_only: bool = False,
) -> tuple[Response, tuple[str, ...]]:
    """Best overall response (RECIST 1.1 §4.4 and the BOR table; clinical.md §7.1).

    Parameters
    ----------
    timepoints : sequence of (datetime.date, Response)
        Overall responses of the follow-up studies.
    baseline_date : datetime.date
        Study entry (baseline study); the SD minimum interval runs from it.
    confirmation : bool
        Require CR/PR to be confirmed by a study >= ``confirmation_weeks`` later
        (non-randomised trials with response as primary endpoint).
    confirmation_weeks : float
        Minimum interval of the confirming study, weeks (RECIST: 4).
    sd_min_weeks : float
        Minimum interval from baseline for SD (or non-CR/non-PD) to count, weeks
        (protocol-defined; RECIST: in general not less than 6–8 weeks).
    cr_then_pr : {"pd", "pr"}
        With confirmation, a PR after a CR: ``"pd"`` (default) takes the CR as true, so
        the reappeared disease is PD at that study; ``"pr"`` re-labels the first CR as
        PR (small lesions were likely still present), as the RECIST footnote allows.
    non_target_only : bool
        The patient has non-target disease only: the SD level is called non-CR/non-PD.

    Returns
    -------
    response : Response
        Only studies up to the first PD count. Without confirmation: CR, else PR, else
        SD when a CR/PR/SD study is >= ``sd_min_weeks`` after baseline, else PD when
        progression was seen, else NE. With confirmation, CR/PR count only when
        confirmed by the first study >= ``confirmation_weeks`` later (CR by CR; PR by
        PR or CR; studies in between must also be CR, or CR/PR), and after a CR any PR/SD
        is progression (CR->SD, CR->PD: SD if the minimum was met, else PD; CR->NE,
        PR->NE: SD, else NE).
    reasons : tuple of str
    """
    if cr_then_pr not in _CR_THEN_PR:
        raise ResponseError("cr_then_pr", "unknown option", cr_then_pr, "use 'pd' or 'pr'")
    for name, weeks in (("confirmation_weeks", confirmation_weeks), ("sd_min_weeks", sd_min_weeks)):
        if isinstance(weeks, bool) or not isinstance(weeks, int | float) or not weeks >= 0:
            raise ResponseError(name, "must be a number of weeks >= 0", weeks)
    points = sorted(timepoints, key=lambda tp: tp[0])
    for day, response in points:
        if day <= baseline_date:
            raise ResponseError(
                "timepoints",
                "a follow-up study is not after baseline",
                day.isoformat(),
                "give follow-up studies only",
            )
        if response not in Response.__members__.values():
            raise ResponseError(
                "timepoints",
                "not a RECIST response",
                response,
                f"use one of {', '.join(r.value for r in Response)}",
            )
    sd_label = Response.NON_CR_NON_PD if non_target_only else Response.SD
    reasons: list[str] = []
    seq: list[list[Any]] = []
    for day, response in points:
        seq.append([day, Response(response)])
        if seq[-1][1] is Response.PD:
            break
    if len(seq) < len(points):
        reasons.append(f"studies after the first PD ({seq[-1][0].isoformat()}) ignored")

    def weeks_between(a: date, b: date) -> float:
        return (b - a).days / 7.0

    if not confirmation:
        for level in (Response.CR, Response.PR):
            hits = [d for d, r in seq if r is level]
            if hits:
                reasons.append(f"best response {level} on {hits[0].isoformat()} (no confirmation)")
                return level, tuple(reasons)
    else:
        seen_cr = False
        for i, (day, response) in enumerate(seq):
            if seen_cr and response in (Response.PR, Response.SD, Response.NON_CR_NON_PD):
                if response is Response.PR and cr_then_pr == "pr":
                    for item in seq[:i]:
                        if item[1] is Response.CR:
                            item[1] = Response.PR
                            reasons.append(
                                f"CR on {item[0].isoformat()} re-labelled PR: PR followed "
                                "(small lesions likely still present)"
                            )
                    seen_cr = False
                    continue
                seq[i][1] = Response.PD
                del seq[i + 1 :]
                reasons.append(
                    f"{response} on {day.isoformat()} after a CR: disease reappeared, "
                    "counted as PD (RECIST 1.1 BOR table)"
                )
                break
            if response is Response.CR:
                seen_cr = True
        for level, confirming in (
            (Response.CR, {Response.CR}),
            (Response.PR, {Response.CR, Response.PR}),
        ):
            for i, (day, response) in enumerate(seq):
                if response is not level:
                    continue
                later = [
                    (d, r) for d, r in seq[i + 1 :] if weeks_between(day, d) >= confirmation_weeks
                ]
                between = [r for d, r in seq[i + 1 :] if weeks_between(day, d) < confirmation_weeks]
                if later and later[0][1] in confirming and all(r in confirming for r in between):
                    reasons.append(
                        f"{level} on {day.isoformat()} confirmed by {later[0][1]} on "
                        f"{later[0][0].isoformat()} (>= {confirmation_weeks:g} weeks)"
                    )
                    return level, tuple(reasons)
                reasons.append(
                    f"{level} on {day.isoformat()} not confirmed by a study >= "
                    f"{confirmation_weeks:g} weeks later"
                )
    qualifying = [
        d
        for d, r in seq
        if r in (Response.CR, Response.PR, Response.SD, Response.NON_CR_NON_PD)
        and weeks_between(baseline_date, d) >= sd_min_weeks
    ]
    if qualifying:
        reasons.append(
            f"{sd_label}: criteria met on {qualifying[0].isoformat()}, >= {sd_min_weeks:g} "
            "weeks after baseline"
        )
        return sd_label, tuple(reasons)
    early = [d for d, r in seq if r is not Response.PD and r is not Response.NE]
    if early:
        reasons.append(
            f"stable/response studies all < {sd_min_weeks:g} weeks after baseline: "
            "SD minimum duration not met"
        )
    if any(r is Response.PD for _, r in seq):
        reasons.append(f"PD on {seq[-1][0].isoformat()}")
        return Response.PD, tuple(reasons)
    reasons.append("no evaluable response: NE")
    return Response.NE, tuple(reasons)


@dataclass(frozen=True)
class StudyResponse:
    """RECIST 1.1 result of one study (time point) of a patient.

    Attributes
    ----------
    study_date : datetime.date
    weeks_from_baseline : float
    is_baseline : bool
    sum_mm : float or None
        Sum of diameters, mm; ``None`` when a target was not evaluated or the patient
        has no target disease.
    measured_sum_mm : float or None
        Sum over the evaluated targets, mm (a lower bound when some are missing).
    change_from_baseline_pct : float or None
        Of ``sum_mm`` vs the baseline sum, percent (PR reference).
    nadir_mm : float or None
        Smallest complete sum before this study, baseline included, mm (PD reference).
    change_from_nadir_pct, change_from_nadir_mm : float or None
        Of ``measured_sum_mm`` vs ``nadir_mm``.
    target, non_target : Response or None
        ``None`` at baseline or without that kind of disease.
    new_lesions : bool
        An unequivocal (or later confirmed) new lesion at this study.
    overall : Response or None
        ``None`` at baseline.
    reasons : tuple of str
    """

    study_date: date
    weeks_from_baseline: float
    is_baseline: bool
    sum_mm: float | None
    measured_sum_mm: float | None
    change_from_baseline_pct: float | None
    nadir_mm: float | None
    change_from_nadir_pct: float | None
    change_from_nadir_mm: float | None
    target: Response | None
    non_target: Response | None
    new_lesions: bool
    overall: Response | None
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class LesionRow:
    """One lesion at one study, as used by the assessment.

    Attributes
    ----------
    study_date : datetime.date
    lesion_id, organ : str
    is_node : bool
    role : str
    measure : str or None
        ``"short axis"`` (nodes) or ``"longest diameter"``; ``None`` for non-target
        and new lesions.
    diameter_mm : float or None
        Target: the value entering the sum (5 mm "too small", 0 mm disappeared);
        others: the recorded diameter, if any.
    status : str
        Recorded status; ``"not_evaluated"`` for a baseline lesion without a row.
    change_from_baseline_mm : float or None
        Targets only.
    baseline_class : Measurability or None
        Baseline studies only.
    note : str
    """

    study_date: date
    lesion_id: str
    organ: str
    is_node: bool
    role: str
    measure: str | None
    diameter_mm: float | None
    status: str
    change_from_baseline_mm: float | None
    baseline_class: Measurability | None
    note: str


@dataclass(frozen=True)
class PatientResponse:
    """RECIST 1.1 assessment of one patient.

    Attributes
    ----------
    patient_id : str
    baseline_date : datetime.date
    has_target_disease : bool
    studies : tuple of StudyResponse
        Baseline first.
    lesions : tuple of LesionRow
        Per lesion per study.
    best_overall : Response
    best_overall_reasons : tuple of str
    flags : tuple of str
        Baseline problems kept with ``on_baseline_problem="flag"``.
    confirmation : bool
    sd_min_weeks : float
    """

    patient_id: str
    baseline_date: date
    has_target_disease: bool
    studies: tuple[StudyResponse, ...]
    lesions: tuple[LesionRow, ...]
    best_overall: Response
    best_overall_reasons: tuple[str, ...]
    flags: tuple[str, ...]
    confirmation: bool
    sd_min_weeks: float

    @property
    def followups(self) -> tuple[StudyResponse, ...]:
        """The follow-up studies (baseline left out)."""
        return tuple(s for s in self.studies if not s.is_baseline)

    def study_rows(self) -> list[dict[str, Any]]:
        """One flat dict per study (for a CSV or a printed table)."""
        return [
            {
                "patient_id": self.patient_id,
                "study_date": s.study_date.isoformat(),
                "weeks_from_baseline": round(s.weeks_from_baseline, 2),
                "sum_mm": s.sum_mm,
                "measured_sum_mm": s.measured_sum_mm,
                "change_from_baseline_pct": s.change_from_baseline_pct,
                "nadir_mm": s.nadir_mm,
                "change_from_nadir_pct": s.change_from_nadir_pct,
                "change_from_nadir_mm": s.change_from_nadir_mm,
                "target": "baseline" if s.is_baseline else _text(s.target),
                "non_target": "baseline" if s.is_baseline else _text(s.non_target),
                "new_lesions": s.new_lesions,
                "overall": "baseline" if s.is_baseline else _text(s.overall),
                "reasons": "; ".join(s.reasons),
            }
            for s in self.studies
        ]

    def lesion_rows(self) -> list[dict[str, Any]]:
        """One flat dict per lesion per study (for a CSV or a printed table)."""
        return [
            {
                "patient_id": self.patient_id,
                "study_date": r.study_date.isoformat(),
                "lesion_id": r.lesion_id,
                "organ": r.organ,
                "is_node": r.is_node,
                "role": r.role,
                "measure": r.measure or "",
                "diameter_mm": r.diameter_mm,
                "status": r.status,
                "change_from_baseline_mm": r.change_from_baseline_mm,
                "baseline_class": _text(r.baseline_class),
                "note": r.note,
            }
            for r in self.lesions
        ]


def _text(value: object) -> str:
    return "" if value is None else str(value)


def _measured(m: Measurement) -> float | None:
    return m.short_axis_mm if m.is_node else m.longest_diameter_mm


def _target_value(m: Measurement | None, too_small_mm: float) -> tuple[float | None, str, str]:
    """(diameter used, status, note) of a target lesion at a study."""
    if m is None:
        return None, "not_evaluated", "no record at this study"
    if m.status == "not_evaluated":
        return None, m.status, "not evaluated"
    if m.status == "too_small":
        return too_small_mm, m.status, f"too small to measure: {too_small_mm:g} mm default"
    if m.status == "absent":
        return 0.0, m.status, "disappeared: 0 mm"
    value = _measured(m)
    if value is None:
        other = m.longest_diameter_mm if m.is_node else m.short_axis_mm
        if other is not None:
            need = "short_axis_mm" if m.is_node else "longest_diameter_mm"
            why = "nodes are followed in short axis" if m.is_node else "non-nodal lesions by LD"
            raise ResponseError(
                f"{need} (row {m.row})" if m.row is not None else need,
                f"missing for target {m.label} ({why})",
                None,
                f"give {need}",
            )
        return None, "not_evaluated", "no diameter recorded"
    return value, m.status, ""


def _baseline_checks(
    targets: Sequence[Measurement],
    non_targets: Sequence[Measurement],
    on_problem: str,
) -> tuple[list[str], dict[str, Measurability]]:
    flags: list[str] = []
    classes: dict[str, Measurability] = {}

    def problem(error: ResponseError) -> None:
        if on_problem == "raise":
            raise error
        logger.warning("RECIST baseline: %s", error)
        flags.append(str(error))

    for m in targets:
        where = f"row {m.row}" if m.row is not None else m.label
        if m.status or _measured(m) is None:
            need = "short_axis_mm" if m.is_node else "longest_diameter_mm"
            raise ResponseError(
                f"{need} ({where})",
                f"target {m.label} is not measured at baseline",
                m.status or None,
                f"give {need}; a lesion that cannot be measured is a non_target lesion",
            )
        cls = measurability(
            is_node=m.is_node,
            longest_diameter_mm=m.longest_diameter_mm,
            short_axis_mm=m.short_axis_mm,
            slice_thickness_mm=m.slice_thickness_mm,
        )
        classes[m.lesion_id] = cls
        if cls is not Measurability.MEASURABLE:
            if m.is_node:
                rule = "a target node needs short axis >= 15 mm"
            elif m.slice_thickness_mm and m.slice_thickness_mm > _SLICE_THICKNESS_LIMIT_MM:
                rule = f"LD >= 2 x slice thickness = {2 * m.slice_thickness_mm:g} mm"
            else:
                rule = "a target needs LD >= 10 mm"
            problem(
                ResponseError(
                    f"role ({where})",
                    f"target {m.label} is {cls} at baseline ({rule}, RECIST 1.1)",
                    _measured(m),
                    "record it as non_target, or pass on_baseline_problem='flag'",
                )
            )
    if len(targets) > MAX_TARGETS:
        problem(
            ResponseError(
                "role",
                f"{len(targets)} target lesions at baseline (RECIST 1.1: at most {MAX_TARGETS})",
                len(targets),
                "keep the 5 largest reproducible lesions as targets, the rest as non_target",
            )
        )
    per_organ: dict[str, list[str]] = {}
    for m in targets:
        per_organ.setdefault(" ".join(m.organ.lower().split()), []).append(m.lesion_id)
    for organ, ids in per_organ.items():
        if len(ids) > MAX_TARGETS_PER_ORGAN:
            problem(
                ResponseError(
                    "organ",
                    f"{len(ids)} targets in {organ!r} (RECIST 1.1: at most "
                    f"{MAX_TARGETS_PER_ORGAN} per organ)",
                    ids,
                    "keep two targets in this organ, the others as non_target",
                )
            )
    for m in non_targets:
        where = f"row {m.row}" if m.row is not None else m.label
        if m.status != "present":
            problem(
                ResponseError(
                    f"status ({where})",
                    f"non-target {m.label} must be present at baseline",
                    m.status,
                    "record only disease present at baseline",
                )
            )
        elif m.is_node and m.short_axis_mm is not None:
            cls = measurability(is_node=True, short_axis_mm=m.short_axis_mm)
            classes[m.lesion_id] = cls
            if cls is Measurability.NORMAL_NODE:
                problem(
                    ResponseError(
                        f"short_axis_mm ({where})",
                        f"node {m.label} with SA < 10 mm is normal (RECIST 1.1), not a lesion",
                        m.short_axis_mm,
                        "leave normal nodes out of the table",
                    )
                )
    return flags, classes


def _new_lesion_dates(studies: Sequence[Study]) -> tuple[set[date], dict[date, list[str]]]:
    """Studies with an unequivocal new lesion, and retro-dated equivocal ones."""
    first_seen: dict[str, date] = {}
    confirmed_on: dict[str, date] = {}
    unequivocal: set[date] = set()
    for study in studies[1:]:
        for m in study.measurements:
            if m.role != "new":
                continue
            first_seen.setdefault(m.lesion_id, study.study_date)
            if m.status in ("", "present"):
                unequivocal.add(study.study_date)
                confirmed_on.setdefault(m.lesion_id, study.study_date)
    retro: dict[date, list[str]] = {}
    for lesion_id, confirmed in confirmed_on.items():
        first = first_seen[lesion_id]
        if first < confirmed:
            retro.setdefault(first, []).append(
                f"new lesion {lesion_id} equivocal here, confirmed on {confirmed.isoformat()}: "
                "PD dated to its first appearance (RECIST 1.1)"
            )
    return unequivocal, retro


def assess_patient(
    measurements: Iterable[Measurement],
    *,
    confirmation: bool = False,
    sd_min_weeks: float = SD_MIN_WEEKS,
    confirmation_weeks: float = CONFIRMATION_WEEKS,
    too_small_mm: float = TOO_SMALL_TO_MEASURE_MM,
    on_baseline_problem: str = "raise",
    cr_then_pr: str = "pd",
    tumour_markers_normal: Mapping[date, bool] | None = None,
) -> PatientResponse:
    """Assess one patient's studies by RECIST 1.1 (clinical.md §7.1).

    Parameters
    ----------
    measurements : iterable of Measurement
        All rows of one patient; the earliest study is the baseline.
    confirmation : bool
        Require confirmation of CR/PR for the best overall response.
    sd_min_weeks : float
        Minimum interval from baseline for SD to count as best response, weeks.
    confirmation_weeks : float
        Minimum interval of a confirming study, weeks (RECIST: 4).
    too_small_mm : float
        Diameter of a lesion reported "too small to measure", mm (RECIST: 5).
    on_baseline_problem : {"raise", "flag"}
        Measurability and target-selection problems at baseline raise
        :class:`ResponseError`, or are kept in ``flags`` and the assessment goes on.
    cr_then_pr : {"pd", "pr"}
        See :func:`best_overall_response`.
    tumour_markers_normal : mapping of datetime.date to bool, optional
        Tumour markers normal at a follow-up study (needed for non-target CR);
        studies not given are noted as "not supplied".

    Returns
    -------
    PatientResponse
    """
    measurements = list(measurements)
    if not measurements:
        raise ResponseError("measurements", "empty", fix="give the patient's lesion rows")
    patients = sorted({m.patient_id for m in measurements})
    if len(patients) > 1:
        raise ResponseError(
            "patient_id",
            "rows of several patients",
            patients,
            "use assess_measurements or assess_csv for several patients",
        )
    if on_baseline_problem not in _POLICIES:
        raise ResponseError(
            "on_baseline_problem", "unknown policy", on_baseline_problem, "use 'raise' or 'flag'"
        )
    if cr_then_pr not in _CR_THEN_PR:
        raise ResponseError("cr_then_pr", "unknown option", cr_then_pr, "use 'pd' or 'pr'")
    if (
        isinstance(too_small_mm, bool)
        or not isinstance(too_small_mm, int | float)
        or not (0 < too_small_mm < math.inf)
    ):
        raise ResponseError(
            "too_small_mm", "must be a diameter > 0 in mm", too_small_mm, "RECIST default is 5"
        )
    markers = dict(tumour_markers_normal or {})
    studies = group_studies(measurements)[patients[0]]
    baseline = studies[0]
    targets = [m for m in baseline.measurements if m.role == "target"]
    non_targets = [m for m in baseline.measurements if m.role == "non_target"]
    if not targets and not non_targets:
        raise ResponseError(
            "role",
            "no target or non-target lesion at baseline",
            patients[0],
            "record the baseline disease",
        )
    flags, classes = _baseline_checks(targets, non_targets, on_baseline_problem)
    baseline_values = {m.lesion_id: _measured(m) for m in targets}
    baseline_sum = math.fsum(baseline_values.values()) if targets else None
    unequivocal_new, retro_new = _new_lesion_dates(studies)

    results: list[StudyResponse] = []
    lesions: list[LesionRow] = []
    for m in baseline.measurements:
        is_target = m.role == "target"
        lesions.append(
            LesionRow(
                baseline.study_date,
                m.lesion_id,
                m.organ,
                m.is_node,
                m.role,
                _measure_name(m) if is_target else None,
                _measured(m)
                if is_target
                else (m.short_axis_mm if m.is_node else m.longest_diameter_mm),
                m.status,
                0.0 if is_target else None,
                classes.get(m.lesion_id),
                "baseline",
            )
        )
    results.append(
        StudyResponse(
            baseline.study_date,
            0.0,
            True,
            baseline_sum,
            baseline_sum,
            0.0 if targets else None,
            None,
            None,
            None,
            None,
            None,
            False,
            None,
            (f"baseline sum {baseline_sum:.1f} mm",) if targets else ("baseline",),
        )
    )
    nadir = baseline_sum
    for study in studies[1:]:
        by_lesion = study.by_lesion()
        reasons: list[str] = []
        target = non_target = None
        sum_mm = measured_sum = change_b = change_n_pct = change_n_mm = None
        nadir_before = nadir
        if targets:
            values = []
            for t in targets:
                value, status, note = _target_value(by_lesion.get(t.lesion_id), too_small_mm)
                values.append(TargetValue(t.lesion_id, t.is_node, value))
                base = baseline_values[t.lesion_id]
                lesions.append(
                    LesionRow(
                        study.study_date,
                        t.lesion_id,
                        t.organ,
                        t.is_node,
                        "target",
                        _measure_name(t),
                        value,
                        status,
                        None if value is None else value - base,
                        None,
                        note,
                    )
                )
            target, why = target_response(
                values, baseline_sum_mm=baseline_sum, nadir_sum_mm=nadir_before
            )
            reasons.extend(why)
            measured_sum = math.fsum(v.diameter_mm for v in values if v.diameter_mm is not None)
            change_n_mm = measured_sum - nadir_before
            change_n_pct = change_n_mm / nadir_before * 100.0 if nadir_before > 0 else None
            if all(v.diameter_mm is not None for v in values):
                sum_mm = measured_sum
                change_b = (sum_mm - baseline_sum) / baseline_sum * 100.0
                nadir = min(nadir, sum_mm)
        if non_targets:
            states = []
            for n in non_targets:
                m = by_lesion.get(n.lesion_id)
                status = "not_evaluated" if m is None else m.status
                states.append(
                    NonTargetValue(
                        n.lesion_id, n.is_node, status, None if m is None else m.short_axis_mm
                    )
                )
                lesions.append(
                    LesionRow(
                        study.study_date,
                        n.lesion_id,
                        n.organ,
                        n.is_node,
                        "non_target",
                        None,
                        None
                        if m is None
                        else (m.short_axis_mm if m.is_node else m.longest_diameter_mm),
                        status,
                        None,
                        None,
                        "no record at this study" if m is None else "",
                    )
                )
            non_target, why = non_target_response(
                states, tumour_markers_normal=markers.get(study.study_date)
            )
            reasons.extend(why)
        new_rows = [m for m in study.measurements if m.role == "new"]
        for m in new_rows:
            lesions.append(
                LesionRow(
                    study.study_date,
                    m.lesion_id,
                    m.organ,
                    m.is_node,
                    "new",
                    None,
                    m.short_axis_mm if m.is_node else m.longest_diameter_mm,
                    m.status or "present",
                    None,
                    None,
                    "",
                )
            )
        new = study.study_date in unequivocal_new or study.study_date in retro_new
        present = [m.lesion_id for m in new_rows if m.status in ("", "present")]
        if present:
            reasons.append(f"new lesion(s) {', '.join(present)}: PD")
        reasons.extend(retro_new.get(study.study_date, []))
        equivocal = [m.lesion_id for m in new_rows if m.status == "equivocal"]
        if equivocal and study.study_date not in retro_new:
            reasons.append(
                f"equivocal new lesion(s) {', '.join(equivocal)}: not PD unless confirmed later"
            )
        overall = overall_response(target, non_target, new)
        results.append(
            StudyResponse(
                study.study_date,
                (study.study_date - baseline.study_date).days / 7.0,
                False,
                sum_mm,
                measured_sum,
                change_b,
                nadir_before,
                change_n_pct,
                change_n_mm,
                target,
                non_target,
                new,
                overall,
                tuple(reasons),
            )
        )
    best, why = best_overall_response(
        [(s.study_date, s.overall) for s in results[1:]],
        baseline_date=baseline.study_date,
        confirmation=confirmation,
        confirmation_weeks=confirmation_weeks,
        sd_min_weeks=sd_min_weeks,
        cr_then_pr=cr_then_pr,
        non_target_only=not targets,
    )
    return PatientResponse(
        patient_id=patients[0],
        baseline_date=baseline.study_date,
        has_target_disease=bool(targets),
        studies=tuple(results),
        lesions=tuple(lesions),
        best_overall=best,
        best_overall_reasons=why,
        flags=tuple(flags),
        confirmation=confirmation,
        sd_min_weeks=float(sd_min_weeks),
    )


def _measure_name(m: Measurement) -> str:
    return "short axis" if m.is_node else "longest diameter"


def assess_measurements(
    measurements: Iterable[Measurement],
    *,
    tumour_markers_normal: Mapping[str, Mapping[date, bool]] | None = None,
    **options: Any,
) -> dict[str, PatientResponse]:
    """Assess every patient of a measurement table.

    Parameters
    ----------
    measurements : iterable of Measurement
    tumour_markers_normal : mapping of patient id to (date -> bool), optional
    **options
        Keywords of :func:`assess_patient` (``confirmation``, ``sd_min_weeks``...).

    Returns
    -------
    dict of str to PatientResponse
        In order of first appearance of each patient.
    """
    by_patient: dict[str, list[Measurement]] = {}
    for m in measurements:
        by_patient.setdefault(m.patient_id, []).append(m)
    markers = tumour_markers_normal or {}
    return {
        pid: assess_patient(rows, tumour_markers_normal=markers.get(pid), **options)
        for pid, rows in by_patient.items()
    }


def assess_csv(
    path: str | PathLike[str],
    *,
    baseline_dates: Mapping[str, date] | None = None,
    **options: Any,
) -> dict[str, PatientResponse]:
    """Read a measurement CSV and assess every patient by RECIST 1.1.

    Parameters
    ----------
    path : path-like
        Table in the format of :mod:`theranet.response.table`.
    baseline_dates : mapping of str to datetime.date, optional
        See :func:`~theranet.response.table.read_measurements`.
    **options
        Keywords of :func:`assess_measurements` / :func:`assess_patient`.

    Returns
    -------
    dict of str to PatientResponse
        Use :meth:`PatientResponse.study_rows` and :meth:`PatientResponse.lesion_rows`
        for per-study categories and the per-lesion table.
    """
    return assess_measurements(read_measurements(path, baseline_dates=baseline_dates), **options)
