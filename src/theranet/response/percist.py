"""PERCIST 1.0 FDG PET response (Wahl 2009; clinical.md §7.3).

Primary analysis on the SULpeak (1 cm³ sphere, SUV normalised to lean body mass) of
the single hottest lesion on each scan, which need not be the same lesion.

Rules, as published
-------------------
Measurability
    Baseline hottest-lesion SULpeak >= 1.5 x liver SULmean + 2 SD (liver: 3 cm sphere
    in the normal right lobe). When the liver is abnormal, the blood pool (1 cm x 2 cm
    VOI in the descending thoracic aorta): 2.0 x SULmean + 2 SD; the PERCIST 1.0 text
    and table disagree on the + 2 SD term, so both the factor and the term are
    settings, and the variant used is reported.
Quality (assessability)
    Liver SULmean of the two scans differs by <= 20 % of the larger **and** <= 0.3 SUL;
    uptake time 50–70 min at both scans (Practical PERCIST) and within 15 min of each
    other (PERCIST 1.0); injected activity within 20 % (when given). A failure makes
    the pair not assessable (``NA``) with the reasons.
Categories
    * CMR: hottest-lesion uptake <= liver SULmean and indistinguishable from the
      blood-pool background (visual: ``indistinguishable_from_blood_pool``), no new
      lesions;
    * PMD: SULpeak >= 30 % **and** >= 0.8 SUL above baseline, or a > 75 % increase in
      TLG of the (up to 5) hottest lesions, or new FDG-avid lesions;
    * PMR: SULpeak >= 30 % **and** >= 0.8 SUL below baseline, no > 30 % increase in
      SUL or size of other lesions, no new lesions;
    * SMD: none of the above.

Inclusive thresholds are compared with a relative tolerance of 1e-9 (binary rounding
of decimal inputs, e.g. 2.5 - 1.7 = 0.7999999999999998).

References
----------
Wahl RL, Jacene H, Kasamon Y, Lodge MA. From RECIST to PERCIST: evolving
considerations for PET response criteria in solid tumors. J Nucl Med 2009;50 Suppl
1:122S–150S.

O JH, Lodge MA, Wahl RL. Practical PERCIST: a simplified guide to PET Response
Criteria in Solid Tumors 1.0. Radiology 2016;280:576–584.

Examples
--------
>>> base = PercistScan(sul_peak=4.0, liver_sul_mean=2.0, liver_sul_sd=0.2, uptake_time_min=60)
>>> follow = PercistScan(sul_peak=2.8, liver_sul_mean=2.1, liver_sul_sd=0.2, uptake_time_min=62)
>>> percist_response(base, follow).category
<PercistResponse.PMR: 'PMR'>
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

from theranet.response.table import ResponseError

__all__ = [
    "PercistResponse",
    "PercistResult",
    "PercistScan",
    "PercistSettings",
    "measurability_threshold_sul",
    "percist_response",
    "quality_problems",
]

_REL_TOL = 1e-9
_REFERENCES = ("liver", "blood_pool")


def _at_least(value: float, threshold: float) -> bool:
    return value >= threshold - _REL_TOL * max(1.0, abs(threshold))


def _at_most(value: float, threshold: float) -> bool:
    return value <= threshold + _REL_TOL * max(1.0, abs(threshold))


def _number(name: str, value: object, *, positive: bool = False, optional: bool = False) -> None:
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ResponseError(name, "must be a finite number", value)
    if value < 0 or (positive and value == 0):
        raise ResponseError(name, "must be > 0" if positive else "must be >= 0", value)


class PercistResponse(StrEnum):
    """PERCIST 1.0 categories; ``NA`` = not assessable (quality or measurability)."""

    CMR = "CMR"
    PMR = "PMR"
    SMD = "SMD"
    PMD = "PMD"
    NA = "NA"


@dataclass(frozen=True)
class PercistSettings:
    """Configurable PERCIST parameters (defaults as published; clinical.md §7.3).

    Attributes
    ----------
    reference : {"liver", "blood_pool"}
        Reference region for measurability ("blood_pool" when the liver is abnormal).
    liver_factor : float
        Measurability factor on liver SULmean (1.5).
    blood_pool_factor : float
        Measurability factor on blood-pool SULmean (2.0) [uncertain in the source].
    blood_pool_add_2sd : bool
        Add 2 SD to the blood-pool threshold (text and table of PERCIST 1.0 disagree).
    change_pct : float
        Relative SULpeak change for PMR/PMD, percent (30).
    change_sul : float
        Absolute SULpeak change for PMR/PMD, SUL units (0.8).
    tlg_increase_pct : float
        TLG increase that is PMD, percent (strictly greater than 75).
    max_liver_drift_fraction : float
        Liver SULmean difference limit as a fraction of the larger value (0.20).
    max_liver_drift_sul : float
        Liver SULmean difference limit, SUL units (0.3).
    uptake_window_min : tuple of float
        Accepted injection-to-scan interval, min (50, 70).
    max_uptake_difference_min : float
        Largest difference of the two uptake times, min (15).
    max_activity_difference_fraction : float
        Largest relative difference of the injected activities (0.20).
    """

    reference: str = "liver"
    liver_factor: float = 1.5
    blood_pool_factor: float = 2.0
    blood_pool_add_2sd: bool = True
    change_pct: float = 30.0
    change_sul: float = 0.8
    tlg_increase_pct: float = 75.0
    max_liver_drift_fraction: float = 0.20
    max_liver_drift_sul: float = 0.3
    uptake_window_min: tuple[float, float] = (50.0, 70.0)
    max_uptake_difference_min: float = 15.0
    max_activity_difference_fraction: float = 0.20

    def __post_init__(self) -> None:
        if self.reference not in _REFERENCES:
            raise ResponseError(
                "reference",
                "unknown reference region",
                self.reference,
                "use 'liver' or 'blood_pool'",
            )
        for name in (
            "liver_factor",
            "blood_pool_factor",
            "change_pct",
            "change_sul",
            "tlg_increase_pct",
            "max_liver_drift_fraction",
            "max_liver_drift_sul",
            "max_uptake_difference_min",
            "max_activity_difference_fraction",
        ):
            _number(name, getattr(self, name), positive=True)
        low, high = self.uptake_window_min
        _number("uptake_window_min", low)
        _number("uptake_window_min", high)
        if low >= high:
            raise ResponseError(
                "uptake_window_min", "must be (earliest, latest)", self.uptake_window_min
            )


@dataclass(frozen=True)
class PercistScan:
    """One FDG PET scan, as PERCIST needs it.

    Parameters
    ----------
    sul_peak : float
        SULpeak of the hottest lesion, SUL (g/mL, lean-body-mass normalised).
    liver_sul_mean, liver_sul_sd : float or None
        Liver reference (3 cm sphere, normal right lobe), SUL.
    uptake_time_min : float
        Injection-to-scan interval, min.
    blood_pool_sul_mean, blood_pool_sul_sd : float or None
        Blood-pool reference (descending thoracic aorta), SUL.
    injected_activity_mbq : float or None
        Injected FDG activity, MBq (compared between the scans when both given).
    new_lesions : bool
        New FDG-avid lesions (typical of tumour).
    other_lesions_increased : bool
        Increase > 30 % in SUL or size of other lesions (excludes PMR).
    indistinguishable_from_blood_pool : bool
        Residual uptake visually indistinguishable from blood-pool background (CMR).
    tlg_sul_ml : float or None
        Total lesion glycolysis of up to the 5 hottest lesions, SUL x mL.
    """

    sul_peak: float
    liver_sul_mean: float | None
    liver_sul_sd: float | None
    uptake_time_min: float
    blood_pool_sul_mean: float | None = None
    blood_pool_sul_sd: float | None = None
    injected_activity_mbq: float | None = None
    new_lesions: bool = False
    other_lesions_increased: bool = False
    indistinguishable_from_blood_pool: bool = False
    tlg_sul_ml: float | None = None

    def __post_init__(self) -> None:
        _number("sul_peak", self.sul_peak)
        _number("uptake_time_min", self.uptake_time_min, positive=True)
        _number("liver_sul_mean", self.liver_sul_mean, positive=True, optional=True)
        for name in ("liver_sul_sd", "blood_pool_sul_sd", "tlg_sul_ml"):
            _number(name, getattr(self, name), optional=True)
        _number("blood_pool_sul_mean", self.blood_pool_sul_mean, positive=True, optional=True)
        _number("injected_activity_mbq", self.injected_activity_mbq, positive=True, optional=True)


@dataclass(frozen=True)
class PercistResult:
    """PERCIST 1.0 result of a baseline / follow-up pair.

    Attributes
    ----------
    category : PercistResponse
    assessable : bool
        Quality checks passed.
    measurable : bool
        Baseline hottest lesion at or above the threshold.
    threshold_sul : float or None
        Measurability threshold, SUL.
    threshold_variant : str
        The formula used, e.g. ``"1.5 x liver SULmean + 2 SD"``.
    sul_peak_change_pct, sul_peak_change_sul : float or None
        Change of the hottest-lesion SULpeak vs baseline, percent and SUL.
    reasons : tuple of str
    """

    category: PercistResponse
    assessable: bool
    measurable: bool
    threshold_sul: float | None
    threshold_variant: str
    sul_peak_change_pct: float | None
    sul_peak_change_sul: float | None
    reasons: tuple[str, ...]


def measurability_threshold_sul(
    scan: PercistScan, settings: PercistSettings | None = None
) -> tuple[float, str]:
    """Measurability threshold of a baseline scan (PERCIST 1.0; clinical.md §7.3).

    Returns
    -------
    threshold_sul : float
        ``1.5 x liver SULmean + 2 SD``, or with ``reference="blood_pool"``
        ``2.0 x blood-pool SULmean (+ 2 SD)``; factors from ``settings``.
    variant : str

    Examples
    --------
    >>> scan = PercistScan(sul_peak=5.0, liver_sul_mean=2.0, liver_sul_sd=0.3,
    ...                    uptake_time_min=60)
    >>> measurability_threshold_sul(scan)
    (3.6, '1.5 x liver SULmean + 2 SD')
    """
    settings = settings or PercistSettings()
    if settings.reference == "liver":
        mean, sd, region = scan.liver_sul_mean, scan.liver_sul_sd, "liver"
        factor, add_2sd = settings.liver_factor, True
    else:
        mean, sd, region = scan.blood_pool_sul_mean, scan.blood_pool_sul_sd, "blood_pool"
        factor, add_2sd = settings.blood_pool_factor, settings.blood_pool_add_2sd
    if mean is None or (add_2sd and sd is None):
        missing = f"{region}_sul_mean" if mean is None else f"{region}_sul_sd"
        raise ResponseError(
            missing,
            "missing for the measurability threshold",
            None,
            f"measure the {region.replace('_', ' ')} reference region",
        )
    threshold = factor * mean + (2.0 * sd if add_2sd else 0.0)
    label = "liver" if region == "liver" else "blood-pool"
    variant = f"{factor:g} x {label} SULmean" + (" + 2 SD" if add_2sd else "")
    return threshold, variant


def quality_problems(
    baseline: PercistScan, follow_up: PercistScan, settings: PercistSettings | None = None
) -> tuple[str, ...]:
    """Reasons a scan pair fails the PERCIST comparability rules (empty = assessable).

    Liver SULmean drift <= 20 % of the larger value and <= 0.3 SUL; uptake time within
    the window at both scans and within 15 min of each other; injected activity within
    20 % (when both given). With ``reference="blood_pool"`` the liver drift check is
    skipped and says so.
    """
    settings = settings or PercistSettings()
    problems = []
    a, b = baseline.liver_sul_mean, follow_up.liver_sul_mean
    if settings.reference == "liver":
        if a is None or b is None:
            problems.append("liver SULmean missing: liver drift cannot be checked")
        else:
            drift = abs(a - b)
            limit = min(settings.max_liver_drift_fraction * max(a, b), settings.max_liver_drift_sul)
            if not _at_most(drift, limit):
                problems.append(
                    f"liver SULmean {a:.2f} -> {b:.2f} differs by {drift:.2f} SUL "
                    f"(limit: <= {settings.max_liver_drift_fraction:.0%} of the larger and "
                    f"<= {settings.max_liver_drift_sul:g} SUL)"
                )
    low, high = settings.uptake_window_min
    for name, scan in (("baseline", baseline), ("follow-up", follow_up)):
        t = scan.uptake_time_min
        if not (_at_least(t, low) and _at_most(t, high)):
            problems.append(f"{name} uptake time {t:g} min outside {low:g}–{high:g} min")
    difference = abs(baseline.uptake_time_min - follow_up.uptake_time_min)
    if not _at_most(difference, settings.max_uptake_difference_min):
        problems.append(
            f"uptake times differ by {difference:g} min (limit "
            f"{settings.max_uptake_difference_min:g} min)"
        )
    a_mbq, b_mbq = baseline.injected_activity_mbq, follow_up.injected_activity_mbq
    if a_mbq is not None and b_mbq is not None:
        rel = abs(a_mbq - b_mbq) / max(a_mbq, b_mbq)
        if not _at_most(rel, settings.max_activity_difference_fraction):
            problems.append(
                f"injected activity {a_mbq:g} -> {b_mbq:g} MBq differs by {rel:.0%} "
                f"(limit {settings.max_activity_difference_fraction:.0%})"
            )
    return tuple(problems)


def percist_response(
    baseline: PercistScan,
    follow_up: PercistScan,
    settings: PercistSettings | None = None,
) -> PercistResult:
    """PERCIST 1.0 response of a follow-up scan (Wahl 2009; clinical.md §7.3).

    Parameters
    ----------
    baseline, follow_up : PercistScan
    settings : PercistSettings, optional
        Published defaults when omitted.

    Returns
    -------
    PercistResult
        ``NA`` when a quality check fails or the baseline is not measurable (unless new
        lesions make it PMD).
    """
    settings = settings or PercistSettings()
    if baseline.new_lesions:
        raise ResponseError("baseline.new_lesions", "no new lesions at baseline", True)
    threshold, variant = measurability_threshold_sul(baseline, settings)
    measurable = _at_least(baseline.sul_peak, threshold)
    problems = quality_problems(baseline, follow_up, settings)
    if problems:
        reasons = ["not assessable (PERCIST quality)", *problems]
        if follow_up.new_lesions:
            reasons.append("new lesions reported; confirm on a comparable scan")
        return PercistResult(
            PercistResponse.NA, False, measurable, threshold, variant, None, None, tuple(reasons)
        )
    reasons = [f"threshold {threshold:.2f} SUL ({variant})"]
    if follow_up.new_lesions:
        reasons.append("PMD: new FDG-avid lesions")
        return PercistResult(
            PercistResponse.PMD, True, measurable, threshold, variant, None, None, tuple(reasons)
        )
    if not measurable:
        reasons.append(
            f"baseline SULpeak {baseline.sul_peak:.2f} below the threshold: not measurable"
        )
        return PercistResult(
            PercistResponse.NA, True, False, threshold, variant, None, None, tuple(reasons)
        )
    change = follow_up.sul_peak - baseline.sul_peak
    change_pct = change / baseline.sul_peak * 100.0
    shown = (
        f"SULpeak {baseline.sul_peak:.2f} -> {follow_up.sul_peak:.2f} "
        f"({change_pct:+.1f} %, {change:+.2f} SUL)"
    )

    def result(category: PercistResponse, why: str) -> PercistResult:
        return PercistResult(
            category, True, True, threshold, variant, change_pct, change, (*reasons, why)
        )

    if _at_least(change_pct, settings.change_pct) and _at_least(change, settings.change_sul):
        return result(PercistResponse.PMD, f"PMD: {shown} (>= 30 % and >= 0.8 SUL increase)")
    if baseline.tlg_sul_ml is not None and follow_up.tlg_sul_ml is not None:
        if baseline.tlg_sul_ml > 0:
            tlg_pct = (follow_up.tlg_sul_ml - baseline.tlg_sul_ml) / baseline.tlg_sul_ml * 100.0
            if tlg_pct > settings.tlg_increase_pct:
                return result(
                    PercistResponse.PMD,
                    f"PMD: TLG {tlg_pct:+.0f} % (> {settings.tlg_increase_pct:g} % increase)",
                )
    liver = follow_up.liver_sul_mean
    if liver is not None and _at_most(follow_up.sul_peak, liver):
        if follow_up.indistinguishable_from_blood_pool:
            return result(
                PercistResponse.CMR,
                f"CMR: SULpeak {follow_up.sul_peak:.2f} <= liver SULmean {liver:.2f} and "
                "indistinguishable from blood pool",
            )
        reasons.append(
            "uptake <= liver but not reported indistinguishable from blood pool: not CMR"
        )
    if _at_least(-change_pct, settings.change_pct) and _at_least(-change, settings.change_sul):
        if follow_up.other_lesions_increased:
            reasons.append("PMR criteria met but other lesions increased > 30 %: not PMR")
        else:
            return result(PercistResponse.PMR, f"PMR: {shown} (>= 30 % and >= 0.8 SUL decrease)")
    return result(PercistResponse.SMD, f"SMD: {shown}")
