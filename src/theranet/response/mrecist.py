"""mRECIST: response of arterially enhancing (viable) tumour (Lencioni & Llovet 2010).

Rules (clinical.md §7.4; Lencioni R, Llovet JM, Semin Liver Dis 2010;30:52-60)
-------------------------------------------------------------------------------
Targets
    Measurable (viable longest diameter >= 10 mm), well delineated and arterially
    enhancing at baseline; the longest diameter of the *viable* (arterial-phase
    enhancing) part is measured, necrosis excluded
    (:func:`theranet.response.measure.enhancing_longest_diameter_mm`). A porta
    hepatis lymph node is malignant (target-eligible) only with a short axis of
    20 mm or more.
Target response
    CR: no intratumoral arterial enhancement left in any target (every viable
    diameter 0). PR: the sum of viable diameters at least 30 % below the baseline
    sum. PD: at least 20 % above the nadir (the smallest sum since treatment started,
    baseline included); unlike RECIST 1.1 there is no absolute minimum. SD:
    otherwise. NE: a target not evaluated, unless PD stands on the measured ones.
New lesions
    PD when a new lesion is at least 10 mm with the typical vascular pattern
    (arterial hyperenhancement and washout); a smaller or atypical one is equivocal
    (reported, not PD).
Overall
    As RECIST 1.1 (:func:`theranet.response.recist.overall_response`); a non-target
    PD from an effusion or ascites needs cytological proof (the caller's
    judgement, passed as the non-target response).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date

from theranet.errors import ResponseError
from theranet.response.recist import (
    TOO_SMALL_TO_MEASURE_MM,
    NonTargetValue,
    Response,
    _at_least,
    non_target_response,
    overall_response,
)
from theranet.response.table import Measurement, group_studies

__all__ = [
    "MIN_NEW_LESION_MM",
    "MIN_TARGET_VIABLE_MM",
    "PORTA_HEPATIS_NODE_MIN_SA_MM",
    "MrecistBaseline",
    "MrecistResult",
    "MrecistStudy",
    "assess_mrecist",
    "mrecist_from_measurements",
    "mrecist_target_response",
]

#: A target's viable longest diameter at baseline is at least this, mm.
MIN_TARGET_VIABLE_MM = 10.0
#: A porta hepatis node is malignant from this short axis, mm.
PORTA_HEPATIS_NODE_MIN_SA_MM = 20.0
#: A typical new lesion of at least this size is PD, mm.
MIN_NEW_LESION_MM = 10.0
#: PR: decrease of the sum vs baseline, percent (inclusive).
PR_MIN_DECREASE_PCT = 30.0
#: PD: increase of the sum vs nadir, percent (inclusive).
PD_MIN_INCREASE_PCT = 20.0


def _length(name: str, value: object, *, allow_none: bool = False) -> float | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ResponseError(name, "must be a length in mm", value, "give a number in mm")
    if not (math.isfinite(value) and value >= 0):
        raise ResponseError(name, "must be a finite length >= 0 mm", value)
    return float(value)


@dataclass(frozen=True)
class MrecistBaseline:
    """The baseline targets.

    Parameters
    ----------
    viable_diameters_mm : mapping of str to float
        Target id -> viable longest diameter, mm (each >= 10 mm).
    porta_hepatis_nodes_sa_mm : mapping of str to float
        Short axis of the targets that are porta hepatis nodes, mm (each >= 20 mm).
    """

    viable_diameters_mm: Mapping[str, float]
    porta_hepatis_nodes_sa_mm: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.viable_diameters_mm:
            raise ResponseError(
                "viable_diameters_mm", "no target lesion", fix="give the baseline targets"
            )
        for k, v in self.viable_diameters_mm.items():
            d = _length(f"viable_diameters_mm[{k!r}]", v)
            if not _at_least(d, MIN_TARGET_VIABLE_MM):
                raise ResponseError(
                    f"viable_diameters_mm[{k!r}]",
                    "an mRECIST target needs a viable (arterially enhancing) diameter >= 10 mm",
                    v,
                    "make it a non-target lesion",
                )
        for k, v in self.porta_hepatis_nodes_sa_mm.items():
            if k not in self.viable_diameters_mm:
                raise ResponseError(
                    "porta_hepatis_nodes_sa_mm", "names a lesion that is not a target", k
                )
            sa = _length(f"porta_hepatis_nodes_sa_mm[{k!r}]", v)
            if not _at_least(sa, PORTA_HEPATIS_NODE_MIN_SA_MM):
                raise ResponseError(
                    f"porta_hepatis_nodes_sa_mm[{k!r}]",
                    "a porta hepatis node is malignant only with a short axis >= 20 mm (mRECIST)",
                    v,
                    "do not take it as a target",
                )

    @property
    def sum_mm(self) -> float:
        return math.fsum(self.viable_diameters_mm.values())


@dataclass(frozen=True)
class MrecistStudy:
    """One follow-up study.

    Parameters
    ----------
    study_date : datetime.date
    viable_diameters_mm : mapping of str to float or None
        Every baseline target -> viable longest diameter, mm (0: no enhancement
        left; None or absent: not evaluated).
    new_lesions_mm : sequence of float
        Longest diameter of each new lesion with the typical vascular pattern, mm.
    atypical_new_lesions : int
        New lesions without the typical pattern (equivocal).
    non_target : Response or None
        The non-target response (CR, NON_CR_NON_PD, PD, NE), or None without
        non-target disease.
    """

    study_date: date
    viable_diameters_mm: Mapping[str, float | None]
    new_lesions_mm: Sequence[float] = ()
    atypical_new_lesions: int = 0
    non_target: Response | None = None


@dataclass(frozen=True)
class MrecistResult:
    """mRECIST at one follow-up study."""

    study_date: date
    sum_mm: float
    change_from_baseline_pct: float
    nadir_mm: float
    change_from_nadir_pct: float | None
    target: Response
    overall: Response
    reasons: tuple[str, ...]


def mrecist_target_response(
    viable_diameters_mm: Mapping[str, float | None],
    *,
    baseline_sum_mm: float,
    nadir_sum_mm: float,
) -> tuple[Response, tuple[str, ...]]:
    """Target response by mRECIST at one study (module notes give the rules).

    Parameters
    ----------
    viable_diameters_mm : mapping of str to float or None
        Every baseline target; None when not evaluated.
    baseline_sum_mm : float
        > 0.
    nadir_sum_mm : float
        Smallest sum before this study, baseline included, >= 0.

    Returns
    -------
    (Response, tuple of str)
    """
    if not baseline_sum_mm > 0:
        raise ResponseError("baseline_sum_mm", "must be > 0", baseline_sum_mm)
    if not nadir_sum_mm >= 0:
        raise ResponseError("nadir_sum_mm", "must be >= 0", nadir_sum_mm)
    values = {
        k: _length(f"viable_diameters_mm[{k!r}]", v, allow_none=True)
        for k, v in viable_diameters_mm.items()
    }
    missing = [k for k, v in values.items() if v is None]
    total = math.fsum(v for v in values.values() if v is not None)
    if nadir_sum_mm > 0:
        up_pct = (total - nadir_sum_mm) / nadir_sum_mm * 100.0
        pd = _at_least(up_pct, PD_MIN_INCREASE_PCT)
        up_text = f"{up_pct:+.1f} %"
    else:
        pd, up_text = total > 0, "rise from 0"
    if pd:
        reasons = [
            f"mRECIST target PD: viable sum {total:.1f} mm is {up_text} vs nadir "
            f"{nadir_sum_mm:.1f} mm (>= 20 %)"
        ]
        if missing:
            reasons.append(f"PD stands although {', '.join(missing)} not evaluated")
        return Response.PD, tuple(reasons)
    if missing:
        return Response.NE, (f"mRECIST target NE: {', '.join(missing)} not evaluated",)
    if total == 0:
        return Response.CR, ("mRECIST target CR: no intratumoral arterial enhancement left",)
    change = (total - baseline_sum_mm) / baseline_sum_mm * 100.0
    if _at_least(-change, PR_MIN_DECREASE_PCT):
        return Response.PR, (
            f"mRECIST target PR: viable sum {total:.1f} mm is {change:+.1f} % vs baseline "
            f"{baseline_sum_mm:.1f} mm (>= 30 % decrease)",
        )
    return Response.SD, (
        f"mRECIST target SD: viable sum {change:+.1f} % vs baseline, {up_text} vs nadir",
    )


def assess_mrecist(
    baseline: MrecistBaseline, studies: Sequence[MrecistStudy]
) -> list[MrecistResult]:
    """mRECIST per follow-up study, in date order.

    Parameters
    ----------
    baseline : MrecistBaseline
    studies : sequence of MrecistStudy
        Follow-up studies (any order; sorted by date).

    Returns
    -------
    list of MrecistResult

    Raises
    ------
    ResponseError
        A follow-up names a lesion that was not a baseline target, or two studies
        share a date.
    """
    ordered = sorted(studies, key=lambda s: s.study_date)
    dates = [s.study_date for s in ordered]
    if len(set(dates)) != len(dates):
        raise ResponseError("studies", "two studies on the same date", dates)
    targets = set(baseline.viable_diameters_mm)
    nadir = baseline.sum_mm
    out = []
    for s in ordered:
        unknown = sorted(set(s.viable_diameters_mm) - targets)
        if unknown:
            raise ResponseError(
                f"study {s.study_date.isoformat()}",
                "names lesions that were not baseline targets",
                unknown,
                "record new lesions in new_lesions_mm",
            )
        values = {k: s.viable_diameters_mm.get(k) for k in baseline.viable_diameters_mm}
        target, reasons = mrecist_target_response(
            values, baseline_sum_mm=baseline.sum_mm, nadir_sum_mm=nadir
        )
        reasons = list(reasons)
        new = [_length("new_lesions_mm", d) for d in s.new_lesions_mm]
        typical_pd = [d for d in new if _at_least(d, MIN_NEW_LESION_MM)]
        if typical_pd:
            reasons.append(
                f"new lesion >= 10 mm with the typical vascular pattern ({len(typical_pd)}): PD"
            )
        equivocal = len(new) - len(typical_pd) + int(s.atypical_new_lesions)
        if equivocal:
            reasons.append(f"{equivocal} equivocal new lesion(s) (< 10 mm or atypical): not PD")
        overall = overall_response(target, s.non_target, bool(typical_pd))
        total = math.fsum(v for v in values.values() if v is not None)
        out.append(
            MrecistResult(
                study_date=s.study_date,
                sum_mm=total,
                change_from_baseline_pct=(total - baseline.sum_mm) / baseline.sum_mm * 100.0,
                nadir_mm=nadir,
                change_from_nadir_pct=(total - nadir) / nadir * 100.0 if nadir > 0 else None,
                target=target,
                overall=overall,
                reasons=tuple(reasons),
            )
        )
        if not any(v is None for v in values.values()):
            nadir = min(nadir, total)
    return out


def mrecist_from_measurements(
    measurements: Sequence[Measurement],
) -> dict[str, tuple[MrecistBaseline, list[MrecistResult]]]:
    """mRECIST from the measurement table (:mod:`theranet.response.table`).

    The table is read as for RECIST 1.1 with one difference: the
    ``longest_diameter_mm`` of a target row is the *viable* (arterially enhancing)
    longest diameter, and of a ``new`` row the new lesion's longest diameter (status
    ``present``: typical vascular pattern; ``equivocal``: atypical). Target nodes
    are porta hepatis nodes measured by ``short_axis_mm``; a target "too small to
    measure" counts 5 mm and one "absent" 0 mm, as in RECIST 1.1. Non-target lesions
    are assessed as in RECIST 1.1.

    Returns
    -------
    dict
        Patient id -> (baseline, results per follow-up study).
    """
    out = {}
    for pid, studies in group_studies(measurements).items():
        base = studies[0].by_lesion()
        targets = {k: m for k, m in base.items() if m.role == "target"}
        viable = {}
        nodes = {}
        for k, m in targets.items():
            if m.is_node:  # a porta hepatis node, measured in short axis
                nodes[k] = m.short_axis_mm
            viable[k] = m.short_axis_mm if m.is_node else m.longest_diameter_mm
        baseline = MrecistBaseline(viable, nodes)
        non_targets = [k for k, m in base.items() if m.role == "non_target"]
        follow = []
        for st in studies[1:]:
            rows = st.by_lesion()
            values = {}
            for k in targets:
                m = rows.get(k)
                if m is None or m.status == "not_evaluated":
                    values[k] = None
                elif m.status == "absent":
                    values[k] = 0.0
                elif m.status == "too_small":  # RECIST 1.1 convention: 5 mm
                    values[k] = TOO_SMALL_TO_MEASURE_MM
                else:
                    values[k] = m.short_axis_mm if m.is_node else m.longest_diameter_mm
            nt = None
            if non_targets:
                nt, _ = non_target_response([
                    NonTargetValue(k, base[k].is_node,
                                   rows[k].status if k in rows else "not_evaluated",
                                   rows[k].short_axis_mm if k in rows else None)
                    for k in non_targets
                ])  # fmt: skip
            new = [m for m in rows.values() if m.role == "new" and m.status != "absent"]
            typical = [m.longest_diameter_mm or 0.0 for m in new if m.status in ("", "present")]
            follow.append(
                MrecistStudy(
                    st.study_date, values, new_lesions_mm=typical,
                    atypical_new_lesions=sum(1 for m in new if m.status == "equivocal"),
                    non_target=nt,
                )
            )  # fmt: skip
        out[pid] = (baseline, assess_mrecist(baseline, follow))
    return out
