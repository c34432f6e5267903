"""mRECIST (Lencioni & Llovet 2010, Semin Liver Dis 30:52; clinical.md §7.4).

Each test quotes the rule it checks; sums and percentages are worked by hand.
"""

from __future__ import annotations

from datetime import date

import pytest

from theranet.errors import ResponseError
from theranet.response.mrecist import (
    MrecistBaseline,
    MrecistStudy,
    assess_mrecist,
    mrecist_target_response,
)
from theranet.response.recist import Response

BASE = MrecistBaseline({"L1": 30.0, "L2": 20.0})  # viable sum 50 mm
D1, D2, D3 = date(2026, 3, 2), date(2026, 5, 4), date(2026, 7, 6)


def _one(**kw):
    (result,) = assess_mrecist(BASE, [MrecistStudy(D1, **kw)])
    return result


def test_cr_when_no_arterial_enhancement_is_left():
    # "disappearance of any intratumoral arterial enhancement in all target lesions"
    r = _one(viable_diameters_mm={"L1": 0.0, "L2": 0.0})
    assert r.target is Response.CR and r.overall is Response.CR


def test_pr_at_30_percent_decrease_of_the_viable_sum():
    # 35 mm vs 50 mm = -30 % exactly: PR (inclusive)
    assert _one(viable_diameters_mm={"L1": 21.0, "L2": 14.0}).target is Response.PR
    # 35.1 mm = -29.8 %: SD
    assert _one(viable_diameters_mm={"L1": 21.1, "L2": 14.0}).target is Response.SD


def test_pd_at_20_percent_above_the_nadir_without_an_absolute_minimum():
    # nadir 20 mm at D1; 24 mm at D2 = +20 % (only 4 mm): PD by mRECIST (RECIST 1.1
    # would need 5 mm more as well)
    results = assess_mrecist(
        BASE,
        [
            MrecistStudy(D1, {"L1": 12.0, "L2": 8.0}),
            MrecistStudy(D2, {"L1": 14.4, "L2": 9.6}),
        ],
    )
    assert [r.target for r in results] == [Response.PR, Response.PD]
    assert results[1].nadir_mm == pytest.approx(20.0)
    assert results[1].change_from_nadir_pct == pytest.approx(20.0)
    # 23.9 mm = +19.5 %: not PD; and -52.2 % vs baseline: PR
    (_, r) = assess_mrecist(
        BASE, [MrecistStudy(D1, {"L1": 12.0, "L2": 8.0}), MrecistStudy(D2, {"L1": 14.3, "L2": 9.6})]
    )
    assert r.target is Response.PR


def test_pd_against_the_nadir_while_below_baseline():
    # nadir 20 mm; 30 mm is -40 % vs baseline but +50 % vs nadir: PD
    results = assess_mrecist(
        BASE,
        [
            MrecistStudy(D1, {"L1": 12.0, "L2": 8.0}),
            MrecistStudy(D2, {"L1": 18.0, "L2": 12.0}),
        ],
    )
    assert results[1].target is Response.PD
    assert results[1].change_from_baseline_pct == pytest.approx(-40.0)


def test_ne_when_a_target_is_not_evaluated_unless_pd_stands():
    assert _one(viable_diameters_mm={"L1": 25.0, "L2": None}).target is Response.NE
    # the measured target alone is +20 % vs the nadir (50 mm -> 60 mm): PD stands
    assert _one(viable_diameters_mm={"L1": 60.0}).target is Response.PD


def test_new_lesion_pd_only_from_10_mm_with_the_typical_pattern():
    r = _one(viable_diameters_mm={"L1": 30.0, "L2": 20.0}, new_lesions_mm=[10.0])
    assert r.target is Response.SD and r.overall is Response.PD
    r = _one(viable_diameters_mm={"L1": 30.0, "L2": 20.0}, new_lesions_mm=[9.0])
    assert r.overall is Response.SD and "equivocal" in " ".join(r.reasons)
    r = _one(viable_diameters_mm={"L1": 30.0, "L2": 20.0}, atypical_new_lesions=1)
    assert r.overall is Response.SD


def test_overall_combines_with_non_target_as_recist():
    r = _one(viable_diameters_mm={"L1": 0.0, "L2": 0.0}, non_target=Response.NON_CR_NON_PD)
    assert r.target is Response.CR and r.overall is Response.PR
    r = _one(viable_diameters_mm={"L1": 0.0, "L2": 0.0}, non_target=Response.PD)
    assert r.overall is Response.PD


def test_baseline_rules():
    # targets need a viable diameter >= 10 mm
    with pytest.raises(ResponseError, match="10 mm"):
        MrecistBaseline({"L1": 9.5})
    # a porta hepatis node is malignant only with SA >= 20 mm
    MrecistBaseline({"N1": 22.0}, porta_hepatis_nodes_sa_mm={"N1": 20.0})
    with pytest.raises(ResponseError, match="20 mm"):
        MrecistBaseline({"N1": 22.0}, porta_hepatis_nodes_sa_mm={"N1": 18.0})
    with pytest.raises(ResponseError, match="no target"):
        MrecistBaseline({})


def test_bad_follow_up_input():
    with pytest.raises(ResponseError, match="not baseline targets"):
        assess_mrecist(BASE, [MrecistStudy(D1, {"L1": 20.0, "L9": 5.0})])
    with pytest.raises(ResponseError, match="same date"):
        assess_mrecist(BASE, [MrecistStudy(D1, {"L1": 20.0}), MrecistStudy(D1, {"L1": 20.0})])
    with pytest.raises(ResponseError, match="mm"):
        mrecist_target_response({"L1": -1.0}, baseline_sum_mm=50.0, nadir_sum_mm=50.0)


def test_from_the_measurement_table(tmp_path):
    """Targets' LD column holds the viable diameter. Baseline 30 + 20 = 50 mm;
    week 8: 15 + 10 = 25 mm (-50 %: PR); week 16: unchanged (target PR) with a
    typical 12 mm new lesion (>= 10 mm): overall PD."""
    from theranet.response.mrecist import mrecist_from_measurements
    from theranet.response.table import read_measurements

    path = tmp_path / "m.csv"
    path.write_text(
        "patient_id,study_date,lesion_id,organ,is_node,role,longest_diameter_mm,short_axis_mm,status\n"
        "P1,2026-01-05,L1,liver,false,target,30,,\n"
        "P1,2026-01-05,L2,liver,false,target,20,,\n"
        "P1,2026-01-05,B1,bone,false,non_target,,,present\n"
        "P1,2026-03-02,L1,liver,false,target,15,,\n"
        "P1,2026-03-02,L2,liver,false,target,10,,\n"
        "P1,2026-03-02,B1,bone,false,non_target,,,present\n"
        "P1,2026-04-27,L1,liver,false,target,15,,\n"
        "P1,2026-04-27,L2,liver,false,target,10,,\n"
        "P1,2026-04-27,B1,bone,false,non_target,,,present\n"
        "P1,2026-04-27,X1,liver,false,new,12,,present\n"
    )  # fmt: skip
    baseline, results = mrecist_from_measurements(read_measurements(path))["P1"]
    assert baseline.sum_mm == 50.0
    assert [r.target for r in results] == [Response.PR, Response.PR]
    assert [r.overall for r in results] == [Response.PR, Response.PD]


def test_cli_mrecist(tmp_path):
    from typer.testing import CliRunner

    from theranet.cli import app

    path = tmp_path / "m.csv"
    path.write_text(
        "patient_id,study_date,lesion_id,organ,is_node,role,longest_diameter_mm,short_axis_mm,status\n"
        "P1,2026-01-05,L1,liver,false,target,40,,\n"
        "P1,2026-03-02,L1,liver,false,target,0,,absent\n"
    )  # fmt: skip
    r = CliRunner().invoke(app, ["response", "--measurements", str(path), "--criteria",
                                 "mrecist", "--out", str(tmp_path / "o")])  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "mRECIST" in r.output and "CR" in r.output
    assert (tmp_path / "o" / "response_mrecist.csv").exists()


def test_too_small_target_counts_5_mm():
    """A target reported "too small to measure" enters the sum as 5 mm (RECIST 1.1
    convention, kept for mRECIST): 30 -> 5 mm is -83 %, PR, not NE."""
    from theranet.response.mrecist import mrecist_from_measurements
    from theranet.response.table import Measurement

    rows = [
        Measurement("P1", date(2026, 1, 5), "L1", "liver", False, "target", 30.0),
        Measurement("P1", date(2026, 3, 2), "L1", "liver", False, "target", None,
                    status="too_small"),
    ]  # fmt: skip
    _, (r,) = mrecist_from_measurements(rows)["P1"]
    assert r.sum_mm == 5.0 and r.target is Response.PR
