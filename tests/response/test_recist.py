"""Tests of theranet.response.recist: RECIST 1.1 time-point and best overall response.

Source of every rule tested here: Eisenhauer EA, Therasse P, Bogaerts J, et al. New
response evaluation criteria in solid tumours: revised RECIST guideline (version 1.1).
Eur J Cancer 2009;45:228–247 ("RECIST 1.1" below), as specified in clinical.md §7.1
(measurability, target selection, sum of diameters, target / non-target / new-lesion
categories, time-point tables, missing assessments, confirmation and the
best-overall-response table).
"""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from theranet.response.recist import (
    Measurability,
    NonTargetValue,
    Response,
    TargetValue,
    assess_csv,
    assess_measurements,
    assess_patient,
    best_overall_response,
    measurability,
    non_target_response,
    overall_response,
    target_response,
)
from theranet.response.table import COLUMNS, Measurement, ResponseError, read_measurements

CR, PR, SD, PD, NE = Response.CR, Response.PR, Response.SD, Response.PD, Response.NE
NONCR = Response.NON_CR_NON_PD
D0 = date(2024, 1, 1)


def wk(weeks: float) -> date:
    return D0 + timedelta(weeks=weeks)


def tgt(day, lid, ld=None, *, organ="liver", sa=None, node=False, status="", pid="P1", st=None):
    return Measurement(pid, day, lid, organ, node, "target", ld, sa, status, st)


def node(day, lid, sa, *, status="", pid="P1"):
    return tgt(day, lid, sa=sa, node=True, organ="lymph node", status=status, pid=pid)


def nt(day, lid, status="present", *, is_node=False, sa=None, pid="P1"):
    return Measurement(pid, day, lid, "bone", is_node, "non_target", None, sa, status)


def new(day, lid, status="", pid="P1"):
    return Measurement(pid, day, lid, "lung", False, "new", None, None, status)


def pair(day, a, b):
    """One liver and one lung target, summing to a + b mm."""
    return [tgt(day, "L1", a), tgt(day, "L2", b, organ="lung")]


def at(result, weeks):
    return next(s for s in result.studies if s.study_date == wk(weeks))


# --- measurability and target selection -------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"is_node": False, "longest_diameter_mm": 10.0}, Measurability.MEASURABLE),
        ({"is_node": False, "longest_diameter_mm": 9.9}, Measurability.NON_MEASURABLE),
        (
            {"is_node": False, "longest_diameter_mm": 10.0, "slice_thickness_mm": 5.0},
            Measurability.MEASURABLE,
        ),
        (
            {"is_node": False, "longest_diameter_mm": 11.9, "slice_thickness_mm": 6.0},
            Measurability.NON_MEASURABLE,
        ),
        (
            {"is_node": False, "longest_diameter_mm": 12.0, "slice_thickness_mm": 6.0},
            Measurability.MEASURABLE,
        ),
        ({"is_node": True, "short_axis_mm": 15.0}, Measurability.MEASURABLE),
        ({"is_node": True, "short_axis_mm": 14.9}, Measurability.NON_MEASURABLE),
        ({"is_node": True, "short_axis_mm": 10.0}, Measurability.NON_MEASURABLE),
        ({"is_node": True, "short_axis_mm": 9.9}, Measurability.NORMAL_NODE),
    ],
)
def test_measurability(kwargs, expected):
    """RECIST 1.1 §3.1 (clinical.md §7.1): non-nodal LD >= 10 mm, or >= 2 x slice
    thickness when > 5 mm; nodes SA >= 15 mm measurable, 10–<15 mm non-measurable,
    < 10 mm normal."""
    assert measurability(**kwargs) is expected


def test_measurability_needs_the_right_axis():
    """RECIST 1.1: nodes are measured in short axis, other lesions by longest diameter."""
    with pytest.raises(ResponseError, match="short axis"):
        measurability(is_node=True, longest_diameter_mm=20.0)
    with pytest.raises(ResponseError, match="longest diameter"):
        measurability(is_node=False, short_axis_mm=20.0)


def test_non_measurable_target_is_refused_or_flagged():
    """RECIST 1.1 (clinical.md §7.1): a target must be measurable (LD >= 10 mm)."""
    rows = [tgt(D0, "L1", 9.0), tgt(wk(8), "L1", 9.0)]
    with pytest.raises(ResponseError, match=r"target .*L1 is non-measurable.*LD >= 10 mm"):
        assess_patient(rows)
    result = assess_patient(rows, on_baseline_problem="flag")
    assert len(result.flags) == 1 and "non-measurable" in result.flags[0]


def test_thick_slices_raise_the_minimum():
    """RECIST 1.1: with slice thickness > 5 mm the minimum LD is twice the thickness."""
    rows = [tgt(D0, "L1", 11.0, st=6.0), tgt(wk(8), "L1", 11.0)]
    with pytest.raises(ResponseError, match=r"2 x slice thickness = 12 mm"):
        assess_patient(rows)


def test_node_target_needs_15_mm_short_axis():
    """RECIST 1.1: a node is target-eligible only with SA >= 15 mm (10–15 mm: non-target)."""
    rows = [node(D0, "N1", 12.0), node(wk(8), "N1", 12.0)]
    with pytest.raises(ResponseError, match="short axis >= 15 mm"):
        assess_patient(rows)


def test_at_most_five_targets():
    """RECIST 1.1 (clinical.md §7.1): at most 5 target lesions in total."""
    organs = ["liver", "liver", "lung", "lung", "adrenal", "pancreas"]
    rows = [tgt(D0, f"L{i}", 20.0, organ=o) for i, o in enumerate(organs)]
    with pytest.raises(ResponseError, match=r"6 target lesions.*at most 5"):
        assess_patient(rows)
    assert "at most 5" in assess_patient(rows, on_baseline_problem="flag").flags[0]


def test_at_most_two_targets_per_organ():
    """RECIST 1.1 (clinical.md §7.1): at most 2 target lesions per organ."""
    rows = [tgt(D0, f"L{i}", 20.0, organ="Liver" if i else "liver ") for i in range(3)]
    with pytest.raises(ResponseError, match=r"3 targets in 'liver'.*at most 2 per organ"):
        assess_patient(rows)


def test_baseline_target_must_be_measured():
    """RECIST 1.1: target lesions are measured at baseline (they define the baseline sum)."""
    rows = [tgt(D0, "L1", status="too_small")]
    with pytest.raises(ResponseError, match="not measured at baseline"):
        assess_patient(rows)


def test_normal_node_is_not_a_non_target_lesion():
    """RECIST 1.1: a node with SA < 10 mm is normal, not a lesion."""
    rows = [tgt(D0, "L1", 20.0), nt(D0, "N9", is_node=True, sa=8.0)]
    with pytest.raises(ResponseError, match="SA < 10 mm is normal"):
        assess_patient(rows)
    assert assess_patient(rows, on_baseline_problem="flag").flags


# --- sum of diameters and target response -----------------------------------------------


def test_sum_uses_ld_for_lesions_and_sa_for_nodes():
    """RECIST 1.1 (clinical.md §7.1): SoD = sum of LD (non-nodal) + SA (nodal targets)."""
    rows = [
        Measurement("P1", D0, "L1", "liver", False, "target", 42.0, 30.0),
        Measurement("P1", D0, "N1", "node", True, "target", 30.0, 18.0),
    ]
    assert assess_patient(rows).studies[0].sum_mm == 60.0


def test_node_cr_with_sum_above_zero():
    """RECIST 1.1 (clinical.md §7.1): CR = non-nodal targets gone and every target node
    SA < 10 mm; nodes keep their actual SA, so the sum is > 0 at CR."""
    rows = [tgt(D0, "L1", 30.0), node(D0, "N1", 20.0)]
    rows += [tgt(wk(8), "L1", status="absent"), node(wk(8), "N1", 8.0)]
    study = at(assess_patient(rows), 8)
    assert study.target is CR and study.overall is CR
    assert study.sum_mm == 8.0


def test_node_at_10_mm_is_not_cr():
    """RECIST 1.1: a node is normal only below 10 mm SA; 10 mm is not CR (here PR)."""
    rows = [tgt(D0, "L1", 30.0), node(D0, "N1", 20.0)]
    rows += [tgt(wk(8), "L1", 0.0), node(wk(8), "N1", 10.0)]
    assert at(assess_patient(rows), 8).target is PR


def test_pd_is_measured_against_the_nadir_not_the_baseline():
    """RECIST 1.1 (clinical.md §7.1): PD = >= 20 % and >= 5 mm above the nadir (smallest
    sum on study incl. baseline). Baseline 100, nadir 60: 73 mm is +21.7 % and +13 mm
    -> PD although -27 % vs baseline."""
    rows = pair(D0, 50, 50) + pair(wk(8), 30, 30) + pair(wk(16), 36.5, 36.5)
    result = assess_patient(rows)
    assert at(result, 8).target is PR
    study = at(result, 16)
    assert study.nadir_mm == 60.0
    assert study.change_from_nadir_pct == pytest.approx(21.667, abs=1e-3)
    assert study.change_from_nadir_mm == pytest.approx(13.0)
    assert study.change_from_baseline_pct == pytest.approx(-27.0)
    assert study.target is PD and study.overall is PD


def test_below_20_percent_over_nadir_is_sd():
    """RECIST 1.1: baseline 100, nadir 60, follow-up 71 mm is +18.3 % vs nadir (not PD)
    and -29 % vs baseline (not PR) -> SD."""
    rows = pair(D0, 50, 50) + pair(wk(8), 30, 30) + pair(wk(16), 35.5, 35.5)
    study = at(assess_patient(rows), 16)
    assert study.change_from_nadir_pct == pytest.approx(18.333, abs=1e-3)
    assert study.target is SD


def test_five_mm_absolute_minimum_for_pd():
    """RECIST 1.1 (clinical.md §7.1): PD also needs >= 5 mm absolute increase. Nadir 10 ->
    12.5 mm is +25 % but +2.5 mm -> not PD (here still PR vs baseline 40)."""
    rows = [tgt(D0, "L1", 40.0), tgt(wk(8), "L1", 10.0), tgt(wk(16), "L1", 12.5)]
    study = at(assess_patient(rows), 16)
    assert study.target is PR
    assert any("< 5 mm absolute" in r for r in study.reasons)


def test_twenty_percent_and_five_mm_exactly_is_pd():
    """RECIST 1.1: both thresholds inclusive: nadir 25 -> 30 mm (+20 %, +5 mm) -> PD."""
    rows = [tgt(D0, "L1", 25.0), tgt(wk(8), "L1", 30.0)]
    assert at(assess_patient(rows), 8).target is PD


def test_pr_at_exactly_minus_30_percent():
    """RECIST 1.1 (clinical.md §7.1): PR = >= 30 % decrease vs baseline, inclusive:
    100 -> 70 mm is PR, 100 -> 70.1 mm is SD."""
    assert at(assess_patient(pair(D0, 50, 50) + pair(wk(8), 35, 35)), 8).target is PR
    assert at(assess_patient(pair(D0, 50, 50) + pair(wk(8), 35, 35.1)), 8).target is SD


def test_pr_boundary_survives_binary_rounding():
    """RECIST 1.1: 33 -> 23.1 mm is exactly -30 % (23.1/33 rounds above 0.7 in binary)."""
    rows = [tgt(D0, "L1", 33.0), tgt(wk(8), "L1", 23.1)]
    assert at(assess_patient(rows), 8).target is PR


def test_too_small_to_measure_counts_5_mm():
    """RECIST 1.1 (clinical.md §7.1): a lesion 'too small to measure' counts 5 mm by
    default, so it is not CR."""
    rows = [tgt(D0, "L1", 30.0), node(D0, "N1", 20.0)]
    rows += [tgt(wk(8), "L1", status="too_small"), node(wk(8), "N1", 8.0)]
    study = at(assess_patient(rows), 8)
    assert study.sum_mm == 13.0 and study.target is PR
    assert at(assess_patient(rows, too_small_mm=3.0), 8).sum_mm == 11.0


def test_nadir_zero_reappearance_is_pd():
    """RECIST 1.1: from a nadir of 0 mm any rise of >= 5 mm meets both PD thresholds."""
    rows = [tgt(D0, "L1", 20.0), tgt(wk(8), "L1", 0.0), tgt(wk(16), "L1", 5.0)]
    result = assess_patient(rows)
    assert at(result, 8).target is CR
    assert at(result, 16).target is PD


def test_ne_when_a_target_is_missing():
    """RECIST 1.1 missing assessments (clinical.md §7.1): a target not evaluated -> NE."""
    rows = [*pair(D0, 50, 50), tgt(wk(8), "L1", 30.0)]
    study = at(assess_patient(rows), 8)
    assert study.target is NE and study.overall is NE
    assert study.sum_mm is None and study.measured_sum_mm == 30.0
    assert any("L2 not evaluated" in r for r in study.reasons)


def test_ne_when_a_target_is_marked_not_evaluated():
    """RECIST 1.1 missing assessments (clinical.md §7.1): not evaluated -> NE."""
    rows = [
        *pair(D0, 50, 50),
        tgt(wk(8), "L1", 30.0),
        tgt(wk(8), "L2", organ="lung", status="not_evaluated"),
    ]
    assert at(assess_patient(rows), 8).target is NE


def test_missing_target_does_not_hide_established_pd():
    """RECIST 1.1: a subset measured is NE unless the missing lesions cannot change the
    response — PD from the measured ones (they can only add to the sum)."""
    rows = [*pair(D0, 50, 50), tgt(wk(8), "L1", 130.0)]
    study = at(assess_patient(rows), 8)
    assert study.target is PD and study.overall is PD


def test_missing_targets_do_not_move_the_nadir():
    """RECIST 1.1: the nadir is the smallest *sum*; an incomplete study has none."""
    rows = [*pair(D0, 50, 50), tgt(wk(8), "L1", 10.0), *pair(wk(16), 45, 45)]
    study = at(assess_patient(rows), 16)
    assert study.nadir_mm == 100.0 and study.target is SD


def test_node_target_needs_short_axis_at_follow_up():
    """RECIST 1.1 (clinical.md §7.1): target nodes are followed in short axis only."""
    rows = [node(D0, "N1", 20.0), Measurement("P1", wk(8), "N1", "lymph node", True, "target", 25)]
    with pytest.raises(ResponseError, match=r"short_axis_mm.*nodes are followed in short axis"):
        assess_patient(rows)


def test_target_response_rule_function():
    """RECIST 1.1 rule function: PD is judged before NE and CR."""
    values = [TargetValue("L1", False, 40.0), TargetValue("L2", False, None)]
    assert target_response(values, baseline_sum_mm=60.0, nadir_sum_mm=30.0)[0] is PD
    assert target_response(values, baseline_sum_mm=60.0, nadir_sum_mm=40.0)[0] is NE


# --- non-target and new lesions -----------------------------------------------------------


def test_new_lesion_is_pd():
    """RECIST 1.1 (clinical.md §7.1): an unequivocal new lesion is PD, whatever the targets."""
    rows = [tgt(D0, "L1", 50.0), tgt(wk(8), "L1", 20.0), new(wk(8), "X1")]
    study = at(assess_patient(rows), 8)
    assert study.target is PR and study.new_lesions and study.overall is PD


def test_equivocal_new_lesion_confirmed_later_is_pd_from_first_appearance():
    """RECIST 1.1 (clinical.md §7.1): an equivocal new lesion confirmed on a later scan is
    PD dated to the scan where it first appeared."""
    rows = [tgt(D0, "L1", 50.0), tgt(wk(8), "L1", 40.0), new(wk(8), "X1", "equivocal")]
    unconfirmed = assess_patient(rows)
    assert at(unconfirmed, 8).overall is SD
    rows += [tgt(wk(16), "L1", 40.0), new(wk(16), "X1", "present")]
    confirmed = assess_patient(rows)
    assert at(confirmed, 8).overall is PD and at(confirmed, 16).overall is PD
    assert any("first appearance" in r for r in at(confirmed, 8).reasons)
    assert confirmed.best_overall is PD


def test_non_target_unequivocal_progression_is_pd():
    """RECIST 1.1 (clinical.md §7.1): unequivocal progression of non-target disease is PD
    even with a target PR."""
    rows = [tgt(D0, "L1", 50.0), nt(D0, "B1"), tgt(wk(8), "L1", 20.0)]
    rows.append(nt(wk(8), "B1", "unequivocal_progression"))
    study = at(assess_patient(rows), 8)
    assert study.target is PR and study.non_target is PD and study.overall is PD


def test_target_cr_with_persisting_non_target_is_pr():
    """RECIST 1.1 time-point table: target CR + non-target non-CR/non-PD -> PR."""
    rows = [tgt(D0, "L1", 50.0), nt(D0, "B1"), tgt(wk(8), "L1", 0.0), nt(wk(8), "B1")]
    study = at(assess_patient(rows), 8)
    assert (study.target, study.non_target, study.overall) == (CR, NONCR, PR)


def test_target_cr_with_non_target_not_evaluated_is_pr():
    """RECIST 1.1 time-point table: target CR + non-target NE -> PR."""
    rows = [tgt(D0, "L1", 50.0), nt(D0, "B1"), tgt(wk(8), "L1", 0.0)]
    study = at(assess_patient(rows), 8)
    assert (study.target, study.non_target, study.overall) == (CR, NE, PR)


def test_non_target_cr_needs_nodes_below_10_mm_and_normal_markers():
    """RECIST 1.1 (clinical.md §7.1): non-target CR = all gone, nodes SA < 10 mm and
    tumour markers normal."""
    lesions = [NonTargetValue("B1", False, "absent"), NonTargetValue("N1", True, "present", 9.0)]
    assert non_target_response(lesions)[0] is CR
    assert non_target_response(lesions, tumour_markers_normal=False)[0] is NONCR
    big = [NonTargetValue("N1", True, "present", 10.0)]
    assert non_target_response(big)[0] is NONCR


def test_tumour_markers_prevent_overall_cr():
    """RECIST 1.1 (clinical.md §7.1): CR needs normal tumour markers; otherwise target CR +
    non-target non-CR/non-PD -> PR."""
    rows = [tgt(D0, "L1", 50.0), nt(D0, "B1"), tgt(wk(8), "L1", 0.0), nt(wk(8), "B1", "absent")]
    assert at(assess_patient(rows), 8).overall is CR
    result = assess_patient(rows, tumour_markers_normal={wk(8): False})
    assert at(result, 8).overall is PR


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        (["absent", "absent"], CR),
        (["absent", "present"], NONCR),
        (["absent", None], NE),
        (["present", "unequivocal_progression"], PD),
    ],
)
def test_non_target_only_patient(statuses, expected):
    """RECIST 1.1 table for non-target disease only (clinical.md §7.1): CR -> CR;
    non-CR/non-PD -> non-CR/non-PD; not all evaluated -> NE; unequivocal PD -> PD."""
    rows = [nt(D0, "B1"), nt(D0, "B2")]
    rows += [nt(wk(8), f"B{i + 1}", s) for i, s in enumerate(statuses) if s is not None]
    result = assess_patient(rows)
    assert not result.has_target_disease
    study = at(result, 8)
    assert study.target is None and study.overall is expected


def test_non_target_only_new_lesion_is_pd_and_bor_label():
    """RECIST 1.1: non-target only + new lesion -> PD; best response at the SD level is
    called non-CR/non-PD for these patients."""
    rows = [nt(D0, "B1"), nt(wk(8), "B1")]
    assert assess_patient(rows).best_overall is NONCR
    rows += [nt(wk(16), "B1"), new(wk(16), "X1")]
    assert at(assess_patient(rows), 16).overall is PD


@pytest.mark.parametrize(
    ("target", "non_target", "new_lesions", "expected"),
    [
        (CR, CR, False, CR),
        (CR, NONCR, False, PR),
        (CR, NE, False, PR),
        (PR, NONCR, False, PR),
        (PR, NE, False, PR),
        (PR, CR, False, PR),
        (SD, NONCR, False, SD),
        (SD, NE, False, SD),
        (NE, NONCR, False, NE),
        (NE, CR, False, NE),
        (PD, CR, False, PD),
        (CR, PD, False, PD),
        (CR, CR, True, PD),
        (CR, None, False, CR),
        (SD, None, False, SD),
        (None, CR, False, CR),
        (None, NONCR, False, NONCR),
        (None, NE, False, NE),
        (None, PD, False, PD),
        (None, CR, True, PD),
    ],
)
def test_overall_response_table(target, non_target, new_lesions, expected):
    """RECIST 1.1 time-point response tables (clinical.md §7.1), row by row."""
    assert overall_response(target, non_target, new_lesions) is expected


def test_overall_response_refuses_bad_categories():
    with pytest.raises(ResponseError, match="no disease"):
        overall_response(None, None, False)
    with pytest.raises(ResponseError, match="not a non-target response"):
        overall_response(CR, SD, False)


# --- best overall response -------------------------------------------------------------


@pytest.mark.parametrize(
    ("sequence", "expected"),
    [
        ([(8, CR), (16, PR)], CR),
        ([(8, PR), (16, SD)], PR),
        ([(4, SD)], NE),
        ([(8, SD)], SD),
        ([(4, SD), (10, PD)], PD),
        ([(4, PD), (8, CR)], PD),
        ([(8, NE), (16, NE)], NE),
    ],
)
def test_best_overall_without_confirmation(sequence, expected):
    """RECIST 1.1 §4.4 (clinical.md §7.1): best response until progression; SD counts only
    >= 6 weeks after baseline (else PD if progression follows, else NE)."""
    points = [(wk(w), r) for w, r in sequence]
    assert best_overall_response(points, baseline_date=D0)[0] is expected


@pytest.mark.parametrize(
    ("sequence", "expected"),
    [
        ([(8, CR), (12, CR)], CR),  # CR -> CR = CR
        ([(8, CR), (10, CR)], SD),  # second CR < 4 weeks later: not confirmed
        ([(8, CR), (16, PR)], SD),  # CR -> PR: PD at the PR, SD since minimum met
        ([(4, CR), (8, PR)], PD),  # ... otherwise PD
        ([(8, CR), (16, SD)], SD),  # CR -> SD = SD if minimum met
        ([(4, CR), (8, SD)], PD),  # ... otherwise PD
        ([(8, CR), (16, PD)], SD),  # CR -> PD = SD if minimum met
        ([(4, CR), (8, PD)], PD),  # ... otherwise PD
        ([(8, CR), (16, NE)], SD),  # CR -> NE = SD if minimum met
        ([(4, CR), (8, NE)], NE),  # ... otherwise NE
        ([(8, PR), (12, CR)], PR),  # PR -> CR = PR
        ([(8, PR), (12, PR)], PR),  # PR -> PR = PR
        ([(8, PR), (16, SD)], SD),  # PR -> SD = SD
        ([(8, PR), (16, PD)], SD),  # PR -> PD = SD if minimum met
        ([(4, PR), (8, PD)], PD),  # ... otherwise PD
        ([(8, PR), (16, NE)], SD),  # PR -> NE = SD if minimum met
        ([(4, PR), (8, NE)], NE),  # ... otherwise NE
        ([(8, NE), (16, NE)], NE),  # NE -> NE = NE
        ([(8, PR)], SD),  # unconfirmed PR, SD duration met
        ([(5, PR)], NE),  # unconfirmed PR, SD duration not met
        ([(8, PR), (10, SD), (12, PR)], SD),  # a worse study in between breaks it
    ],
)
def test_best_overall_with_confirmation(sequence, expected):
    """RECIST 1.1 confirmation and best-overall-response table (clinical.md §7.1): CR/PR
    confirmed >= 4 weeks later; SD minimum 6 weeks from baseline."""
    points = [(wk(w), r) for w, r in sequence]
    result, reasons = best_overall_response(points, baseline_date=D0, confirmation=True)
    assert result is expected, reasons


def test_cr_then_pr_relabel_option():
    """RECIST 1.1 BOR-table footnote: if small lesions were likely still present, the first
    CR is re-labelled PR and the best response is PR."""
    points = [(wk(8), CR), (wk(16), PR)]
    result, reasons = best_overall_response(
        points, baseline_date=D0, confirmation=True, cr_then_pr="pr"
    )
    assert result is PR
    assert any("re-labelled PR" in r for r in reasons)


def test_sd_minimum_is_configurable():
    """RECIST 1.1: the SD minimum interval is protocol-defined (in general >= 6–8 weeks)."""
    points = [(wk(7), SD)]
    assert best_overall_response(points, baseline_date=D0)[0] is SD
    assert best_overall_response(points, baseline_date=D0, sd_min_weeks=8)[0] is NE


def test_best_overall_refuses_bad_input():
    with pytest.raises(ResponseError, match="not after baseline"):
        best_overall_response([(D0, SD)], baseline_date=D0)
    with pytest.raises(ResponseError, match="cr_then_pr"):
        best_overall_response([], baseline_date=D0, cr_then_pr="maybe")


def test_assess_patient_confirmed_cr():
    """RECIST 1.1 confirmation: CR, then CR >= 4 weeks later -> best response CR."""
    rows = [tgt(D0, "L1", 30.0), tgt(wk(8), "L1", 0.0), tgt(wk(12), "L1", 0.0)]
    result = assess_patient(rows, confirmation=True)
    assert result.best_overall is CR and result.confirmation
    only_one = assess_patient(rows[:2], confirmation=True)
    assert only_one.best_overall is SD
    assert assess_patient(rows[:2]).best_overall is CR


# --- tables for a CLI ---------------------------------------------------------------------


def test_study_and_lesion_rows():
    """Per-study and per-lesion tables: 5 mm "too small" default, SA for nodes, a missing
    non-target is not evaluated (RECIST 1.1; clinical.md §7.1)."""
    rows = [tgt(D0, "L1", 40.0), node(D0, "N1", 20.0), nt(D0, "B1")]
    rows += [tgt(wk(8), "L1", status="too_small"), node(wk(8), "N1", 9.0), new(wk(8), "X1")]
    result = assess_patient(rows)
    studies = result.study_rows()
    assert [s["overall"] for s in studies] == ["baseline", "PD"]
    assert studies[1]["sum_mm"] == 14.0 and studies[1]["non_target"] == "NE"
    lesions = result.lesion_rows()
    follow = {r["lesion_id"]: r for r in lesions if r["study_date"] == wk(8).isoformat()}
    assert follow["L1"]["diameter_mm"] == 5.0 and "5 mm default" in follow["L1"]["note"]
    assert follow["N1"]["measure"] == "short axis"
    assert follow["N1"]["change_from_baseline_mm"] == -11.0
    assert follow["B1"]["status"] == "not_evaluated"
    assert follow["X1"]["role"] == "new"
    base = [r for r in lesions if r["study_date"] == D0.isoformat()]
    assert {r["baseline_class"] for r in base if r["role"] == "target"} == {"measurable"}


def test_assess_csv_end_to_end(tmp_path):
    """From a CSV path to per-study categories for every patient."""
    lines = [
        ",".join(COLUMNS),
        "A,2024-01-01,L1,liver,false,target,50,,",
        "A,2024-03-01,L1,liver,false,target,30,,",
        "B,2024-01-01,B1,bone,false,non_target,,,present",
        "B,2024-03-01,B1,bone,false,non_target,,,absent",
    ]
    path = tmp_path / "t.csv"
    path.write_text("\n".join(lines) + "\n")
    results = assess_csv(path)
    assert results["A"].followups[0].overall is PR
    assert results["B"].followups[0].overall is CR
    markers = {"B": {date(2024, 3, 1): False}}
    again = assess_measurements(read_measurements(path), tumour_markers_normal=markers)
    assert again["B"].followups[0].overall is NONCR


def test_assess_patient_refuses_bad_input():
    with pytest.raises(ResponseError, match="several patients"):
        assess_patient([tgt(D0, "L1", 20.0), tgt(D0, "L1", 20.0, pid="P2")])
    with pytest.raises(ResponseError, match="on_baseline_problem"):
        assess_patient([tgt(D0, "L1", 20.0)], on_baseline_problem="ignore")
    with pytest.raises(ResponseError, match="too_small_mm"):
        assess_patient([tgt(D0, "L1", 20.0)], too_small_mm=0)
    with pytest.raises(ResponseError, match="empty"):
        assess_patient([])
