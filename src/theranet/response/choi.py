"""Choi and modified Choi response criteria on CT (clinical.md §7.2).

Proposed for GIST treated with imatinib and used for hypervascular NET liver
metastases, Choi combines size (sum of longest diameters, RECIST style) with tumour
attenuation (mean HU over the lesion in the portal-venous phase, same contrast
protocol at both studies):

* **CR**: all lesions gone (sum 0 mm) and no new lesions;
* **PR**: >= 10 % decrease in size **or** >= 15 % decrease in attenuation; no new
  lesions; no obvious progression of non-measurable disease. Modified Choi (mChoi)
  requires **both** decreases;
* **PD**: >= 10 % increase in size **and** not PR by attenuation; or new lesions; or
  new or enlarging intratumoral nodules;
* **SD**: none of the above.

Changes are taken relative to the reference study passed as ``baseline``. Inclusive
thresholds are compared with a relative tolerance of 1e-9 (binary rounding).

References
----------
Choi H, Charnsangavej C, Faria SC, et al. Correlation of computed tomography and
positron emission tomography in patients with metastatic gastrointestinal stromal
tumor treated at a single institution with imatinib mesylate: proposal of new computed
tomography response criteria. J Clin Oncol 2007;25:1753–1759.

Examples
--------
>>> base = ChoiStudy(sum_mm=100.0, mean_hu=80.0)
>>> choi_response(base, ChoiStudy(sum_mm=95.0, mean_hu=64.0)).category
<Response.PR: 'PR'>
>>> choi_response(base, ChoiStudy(sum_mm=95.0, mean_hu=64.0), modified=True).category
<Response.SD: 'SD'>
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from theranet.response.recist import Response
from theranet.response.table import ResponseError

__all__ = [
    "DENSITY_PR_DECREASE_PCT",
    "SIZE_PD_INCREASE_PCT",
    "SIZE_PR_DECREASE_PCT",
    "ChoiResult",
    "ChoiStudy",
    "choi_response",
]

#: PR: decrease in size (sum of LD), percent (inclusive).
SIZE_PR_DECREASE_PCT: float = 10.0
#: PR: decrease in attenuation (mean HU), percent (inclusive).
DENSITY_PR_DECREASE_PCT: float = 15.0
#: PD: increase in size, percent (inclusive).
SIZE_PD_INCREASE_PCT: float = 10.0

_REL_TOL = 1e-9


def _at_least(value: float, threshold: float) -> bool:
    return value >= threshold - _REL_TOL * max(1.0, abs(threshold))


def _number(name: str, value: object, *, minimum: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ResponseError(name, "must be a finite number", value)
    if minimum is not None and value < minimum:
        raise ResponseError(name, f"must be >= {minimum:g}", value)
    return float(value)


@dataclass(frozen=True)
class ChoiStudy:
    """Inputs of one CT study.

    Parameters
    ----------
    sum_mm : float
        Sum of the longest diameters of the target lesions, mm (RECIST style).
    mean_hu : float or None
        Mean attenuation over the target lesions, HU (portal-venous phase); may be
        ``None`` only when ``sum_mm`` is 0 (nothing left to measure).
    new_lesions : bool
        New lesions seen.
    intratumoral_nodules : bool
        New or enlarging intratumoral nodules (Choi PD).
    non_measurable_progression : bool
        Obvious progression of non-measurable disease (excludes PR and CR).
    """

    sum_mm: float
    mean_hu: float | None
    new_lesions: bool = False
    intratumoral_nodules: bool = False
    non_measurable_progression: bool = False

    def __post_init__(self) -> None:
        _number("sum_mm", self.sum_mm, minimum=0.0)
        if self.mean_hu is None:
            if self.sum_mm != 0:
                raise ResponseError(
                    "mean_hu",
                    "missing",
                    None,
                    "give the mean attenuation (HU) of the lesions; Choi needs it",
                )
        else:
            _number("mean_hu", self.mean_hu)


@dataclass(frozen=True)
class ChoiResult:
    """Choi (or mChoi) response at one follow-up study.

    Attributes
    ----------
    category : Response
        CR, PR, SD or PD.
    modified : bool
        Modified Choi was applied.
    size_change_pct : float
        Change of the sum vs the reference study, percent.
    density_change_pct : float or None
        Change of the mean HU vs the reference study, percent (``None`` when the
        follow-up has no lesion left).
    reasons : tuple of str
    """

    category: Response
    modified: bool
    size_change_pct: float
    density_change_pct: float | None
    reasons: tuple[str, ...]


def choi_response(
    baseline: ChoiStudy, follow_up: ChoiStudy, *, modified: bool = False
) -> ChoiResult:
    """Choi / modified Choi response (Choi 2007; clinical.md §7.2).

    Parameters
    ----------
    baseline : ChoiStudy
        Reference study (sum > 0, mean HU > 0).
    follow_up : ChoiStudy
    modified : bool
        Modified Choi: PR needs both the size and the density decrease.

    Returns
    -------
    ChoiResult
    """
    if baseline.sum_mm <= 0:
        raise ResponseError(
            "baseline.sum_mm", "must be > 0", baseline.sum_mm, "measure the baseline lesions"
        )
    if baseline.mean_hu is None or baseline.mean_hu <= 0:
        raise ResponseError(
            "baseline.mean_hu",
            "must be > 0 HU for a relative density change",
            baseline.mean_hu,
            "use enhancing lesions measured in the portal-venous phase",
        )
    if baseline.new_lesions:
        raise ResponseError("baseline.new_lesions", "no new lesions at the reference study", True)
    size = (follow_up.sum_mm - baseline.sum_mm) / baseline.sum_mm * 100.0
    density = (
        None
        if follow_up.mean_hu is None
        else (follow_up.mean_hu - baseline.mean_hu) / baseline.mean_hu * 100.0
    )
    name = "mChoi" if modified else "Choi"
    reasons: list[str] = []
    size_pr = _at_least(-size, SIZE_PR_DECREASE_PCT)
    density_pr = density is not None and _at_least(-density, DENSITY_PR_DECREASE_PCT)
    shown = "n/a" if density is None else f"{density:+.1f} %"
    if follow_up.new_lesions or follow_up.intratumoral_nodules:
        what = "new lesions" if follow_up.new_lesions else "new or enlarging intratumoral nodules"
        reasons.append(f"{name} PD: {what}")
        return ChoiResult(Response.PD, modified, size, density, tuple(reasons))
    if follow_up.sum_mm == 0 and not follow_up.non_measurable_progression:
        reasons.append(f"{name} CR: all lesions gone, no new lesions")
        return ChoiResult(Response.CR, modified, size, density, tuple(reasons))
    pr = (size_pr and density_pr) if modified else (size_pr or density_pr)
    if pr and not follow_up.non_measurable_progression:
        rule = "both" if modified else "either"
        reasons.append(
            f"{name} PR: size {size:+.1f} %, density {shown} ({rule} of >= 10 % size, "
            ">= 15 % density decrease)"
        )
        return ChoiResult(Response.PR, modified, size, density, tuple(reasons))
    if pr:
        reasons.append("PR criteria met but non-measurable disease progressed: not PR")
    if _at_least(size, SIZE_PD_INCREASE_PCT) and not density_pr:
        reasons.append(
            f"{name} PD: size {size:+.1f} % (>= 10 % increase) and density {shown} "
            "(not a PR by density)"
        )
        return ChoiResult(Response.PD, modified, size, density, tuple(reasons))
    reasons.append(f"{name} SD: size {size:+.1f} %, density {shown}")
    return ChoiResult(Response.SD, modified, size, density, tuple(reasons))
