"""Tests of theranet.response.choi and theranet.response.percist.

Sources of the rules tested here:

* Choi H, Charnsangavej C, Faria SC, et al. J Clin Oncol 2007;25:1753–1759 ("Choi
  2007"), and the modified Choi criteria (PR needs both size and density decrease), as
  specified in clinical.md §7.2.
* Wahl RL, Jacene H, Kasamon Y, Lodge MA. From RECIST to PERCIST. J Nucl Med 2009;50
  Suppl 1:122S–150S ("PERCIST 1.0"), and O JH, Lodge MA, Wahl RL. Practical PERCIST.
  Radiology 2016;280:576–584, as specified in clinical.md §7.3.
"""

from __future__ import annotations

import pytest

from theranet.response.choi import ChoiStudy, choi_response
from theranet.response.percist import (
    PercistResponse,
    PercistScan,
    PercistSettings,
    measurability_threshold_sul,
    percist_response,
    quality_problems,
)
from theranet.response.recist import Response
from theranet.response.table import ResponseError

BASE = ChoiStudy(sum_mm=100.0, mean_hu=80.0)

# --- Choi / modified Choi ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("follow_up", "choi", "mchoi"),
    [
        # >= 10 % size decrease only: Choi PR (either), mChoi needs both -> SD
        (ChoiStudy(90.0, 80.0), Response.PR, Response.SD),
        # >= 15 % density decrease only (80 -> 68 HU): Choi PR, mChoi SD
        (ChoiStudy(100.0, 68.0), Response.PR, Response.SD),
        # both decreases: PR under both
        (ChoiStudy(90.0, 68.0), Response.PR, Response.PR),
        # just below both thresholds: SD
        (ChoiStudy(90.1, 68.1), Response.SD, Response.SD),
        # >= 10 % size increase, density not a PR: PD
        (ChoiStudy(110.0, 80.0), Response.PD, Response.PD),
        # +12 % size but -20 % density: Choi PR by density; mChoi not PR, and not PD
        # because PR by density is met -> SD
        (ChoiStudy(112.0, 64.0), Response.PR, Response.SD),
        # +9.9 % size: SD
        (ChoiStudy(109.9, 80.0), Response.SD, Response.SD),
        # all lesions gone: CR
        (ChoiStudy(0.0, None), Response.CR, Response.CR),
        # new lesions: PD whatever the size and density
        (ChoiStudy(50.0, 40.0, new_lesions=True), Response.PD, Response.PD),
        # new or enlarging intratumoral nodules: PD
        (ChoiStudy(95.0, 80.0, intratumoral_nodules=True), Response.PD, Response.PD),
        # obvious progression of non-measurable disease excludes PR
        (ChoiStudy(80.0, 60.0, non_measurable_progression=True), Response.SD, Response.SD),
    ],
)
def test_choi_and_modified_choi(follow_up, choi, mchoi):
    """Choi 2007 (clinical.md §7.2): PR = >= 10 % size OR >= 15 % density decrease (mChoi:
    AND), no new lesions, no non-measurable progression; PD = >= 10 % size increase and not
    PR by density, or new lesions / intratumoral nodules; CR = all gone; else SD."""
    assert choi_response(BASE, follow_up).category is choi
    result = choi_response(BASE, follow_up, modified=True)
    assert result.category is mchoi and result.modified


def test_choi_reports_changes():
    """Choi 2007 (clinical.md §7.2): size and density changes are relative to the reference."""
    result = choi_response(BASE, ChoiStudy(90.0, 68.0))
    assert result.size_change_pct == pytest.approx(-10.0)
    assert result.density_change_pct == pytest.approx(-15.0)
    assert result.reasons and "Choi PR" in result.reasons[-1]


def test_choi_refuses_bad_input():
    """Density change needs a positive baseline HU; mean HU is required while lesions remain."""
    with pytest.raises(ResponseError, match=r"baseline\.mean_hu"):
        choi_response(ChoiStudy(100.0, -5.0), ChoiStudy(90.0, 60.0))
    with pytest.raises(ResponseError, match="mean_hu"):
        ChoiStudy(50.0, None)
    with pytest.raises(ResponseError, match="sum_mm"):
        ChoiStudy(-1.0, 50.0)
    with pytest.raises(ResponseError, match=r"baseline\.sum_mm"):
        choi_response(ChoiStudy(0.0, None), ChoiStudy(10.0, 50.0))


# --- PERCIST 1.0 -------------------------------------------------------------------------


def scan(sul_peak, liver=2.0, sd=0.2, uptake=60.0, **kwargs):
    return PercistScan(
        sul_peak=sul_peak, liver_sul_mean=liver, liver_sul_sd=sd, uptake_time_min=uptake, **kwargs
    )


def test_measurability_threshold_liver():
    """PERCIST 1.0 (clinical.md §7.3): baseline SULpeak >= 1.5 x liver SULmean + 2 SD."""
    threshold, variant = measurability_threshold_sul(scan(5.0, liver=2.0, sd=0.3))
    assert threshold == pytest.approx(3.6)
    assert variant == "1.5 x liver SULmean + 2 SD"


def test_measurability_threshold_blood_pool_variants():
    """PERCIST 1.0 (clinical.md §7.3): blood-pool alternative 2.0 x SULmean + 2 SD, the
    + 2 SD term configurable (the text and table of PERCIST 1.0 disagree)."""
    s = scan(5.0, blood_pool_sul_mean=1.5, blood_pool_sul_sd=0.25)
    threshold, variant = measurability_threshold_sul(s, PercistSettings(reference="blood_pool"))
    assert threshold == pytest.approx(3.5) and variant == "2 x blood-pool SULmean + 2 SD"
    settings = PercistSettings(reference="blood_pool", blood_pool_add_2sd=False)
    threshold, variant = measurability_threshold_sul(s, settings)
    assert threshold == pytest.approx(3.0) and variant == "2 x blood-pool SULmean"
    with pytest.raises(ResponseError, match="blood_pool_sul_mean"):
        measurability_threshold_sul(scan(5.0), PercistSettings(reference="blood_pool"))


def test_non_measurable_baseline_is_not_assessable():
    """PERCIST 1.0: a baseline lesion below the threshold (3.4 SUL here) is not measurable."""
    result = percist_response(scan(3.3), scan(1.0))
    assert result.category is PercistResponse.NA and not result.measurable and result.assessable


@pytest.mark.parametrize(
    ("base", "follow", "expected"),
    [
        (4.0, 2.8, PercistResponse.PMR),  # -30 %, -1.2 SUL
        (4.0, 2.81, PercistResponse.SMD),  # -29.75 %
        (4.0, 5.2, PercistResponse.PMD),  # +30 %, +1.2 SUL
        (4.0, 5.19, PercistResponse.SMD),  # +29.75 %
        (2.5, 1.7, PercistResponse.PMR),  # -32 %, exactly -0.8 SUL
        (2.5, 1.75, PercistResponse.SMD),  # -30 % but only -0.75 SUL (0.8 SUL rule)
        (2.5, 3.3, PercistResponse.PMD),  # +32 %, exactly +0.8 SUL
        (2.5, 3.25, PercistResponse.SMD),  # +30 % but only +0.75 SUL (0.8 SUL rule)
    ],
)
def test_percist_30_percent_and_08_sul_rules(base, follow, expected):
    """PERCIST 1.0 (clinical.md §7.3): PMR = >= 30 % AND >= 0.8 SUL decrease of the hottest
    lesion SULpeak; PMD = >= 30 % AND >= 0.8 SUL increase; else SMD."""
    # liver 1.0 +- 0.1 SUL: threshold 1.5 x 1.0 + 2 x 0.1 = 1.7 SUL, both baselines measurable
    result = percist_response(scan(base, liver=1.0, sd=0.1), scan(follow, liver=1.0))
    assert result.category is expected, result.reasons


def test_cmr():
    """PERCIST 1.0: CMR = uptake <= liver SULmean and indistinguishable from blood pool."""
    follow = scan(1.9, indistinguishable_from_blood_pool=True)
    assert percist_response(scan(6.0), follow).category is PercistResponse.CMR
    not_visual = percist_response(scan(6.0), scan(1.9))
    assert not_visual.category is PercistResponse.PMR
    assert any("not CMR" in r for r in not_visual.reasons)


def test_new_lesions_are_pmd():
    """PERCIST 1.0: new FDG-avid lesions are PMD, even with a metabolic response."""
    result = percist_response(scan(6.0), scan(2.5, new_lesions=True))
    assert result.category is PercistResponse.PMD


def test_other_lesions_increasing_prevent_pmr():
    """PERCIST 1.0: PMR requires no > 30 % increase in SUL or size of other lesions."""
    result = percist_response(scan(6.0), scan(3.0, other_lesions_increased=True))
    assert result.category is PercistResponse.SMD


def test_tlg_increase_is_pmd():
    """PERCIST 1.0: visible increase in extent, e.g. > 75 % increase in TLG, is PMD."""
    base = scan(6.0, tlg_sul_ml=100.0)
    assert percist_response(base, scan(6.0, tlg_sul_ml=176.0)).category is PercistResponse.PMD
    assert percist_response(base, scan(6.0, tlg_sul_ml=175.0)).category is PercistResponse.SMD


@pytest.mark.parametrize(
    ("liver_base", "liver_follow", "ok"),
    [
        (2.0, 2.3, True),  # 0.3 SUL, 13 % of 2.3
        (2.0, 2.31, False),  # > 0.3 SUL
        (1.0, 1.25, True),  # 0.25 SUL = 20 % of the larger (1.25)
        (1.0, 1.26, False),  # 0.26 SUL > 20 % of 1.26
    ],
)
def test_liver_drift_quality(liver_base, liver_follow, ok):
    """PERCIST 1.0 / Practical PERCIST (clinical.md §7.3): liver SULmean may differ by
    <= 20 % of the larger value and <= 0.3 SUL; otherwise not assessable."""
    base = scan(6.0, liver=liver_base, sd=0.1)
    follow = scan(3.0, liver=liver_follow, sd=0.1)
    result = percist_response(base, follow)
    assert result.assessable is ok
    if not ok:
        assert result.category is PercistResponse.NA
        assert any("liver SULmean" in r for r in result.reasons)


@pytest.mark.parametrize(
    ("uptake_base", "uptake_follow", "ok"),
    [(50.0, 62.0, True), (49.0, 55.0, False), (60.0, 71.0, False), (52.0, 68.0, False)],
)
def test_uptake_time_quality(uptake_base, uptake_follow, ok):
    """Practical PERCIST: uptake 50–70 min at both scans; PERCIST 1.0: within 15 min of
    each other (52 vs 68 min fails)."""
    problems = quality_problems(scan(6.0, uptake=uptake_base), scan(3.0, uptake=uptake_follow))
    assert (not problems) is ok
    if not ok:
        result = percist_response(scan(6.0, uptake=uptake_base), scan(3.0, uptake=uptake_follow))
        assert result.category is PercistResponse.NA


def test_injected_activity_quality():
    """Practical PERCIST: injected activity within 20 %."""
    base = scan(6.0, injected_activity_mbq=300.0)
    assert not quality_problems(base, scan(3.0, injected_activity_mbq=240.0))
    assert quality_problems(base, scan(3.0, injected_activity_mbq=230.0))


def test_percist_refuses_bad_input():
    with pytest.raises(ResponseError, match="reference"):
        PercistSettings(reference="spleen")
    with pytest.raises(ResponseError, match="sul_peak"):
        scan(-1.0)
    with pytest.raises(ResponseError, match="uptake_time_min"):
        scan(3.0, uptake=0.0)
    with pytest.raises(ResponseError, match="liver_sul_sd"):
        measurability_threshold_sul(scan(3.0, sd=None))
