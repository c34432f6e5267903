"""Lesion dose-response: registry doses joined with RECIST diameters.

Expected values are computed by hand in each test: cumulative absorbed dose and BED
are sums over cycles (BED adds over fractions, Dale 1985 / clinical.md §5.6), the
SD of a sum of independent cycles is the root sum of squares, and the diameter
change is (d - d0) / d0.
"""

from __future__ import annotations

import datetime as dt
import math

import pytest

from theranet.registry.store import Registry
from theranet.response.dose_response import dose_response, dose_response_figure
from theranet.response.recist import assess_patient
from theranet.response.table import Measurement

BASE, FU1, FU2 = dt.date(2026, 1, 5), dt.date(2026, 4, 6), dt.date(2026, 7, 6)


def _m(day, lesion, role, ld=None, sa=None, status="", node=False, organ="liver"):
    return Measurement("P1", day, lesion, organ, node, role, ld, sa, status)


def _response():
    rows = [
        _m(BASE, "lesion_liver_1", "target", ld=40.0),
        _m(BASE, "lesion_node_1", "target", sa=20.0, node=True, organ="lymph node"),
        _m(BASE, "lesion_liver_2", "non_target", status="present"),
        _m(FU1, "lesion_liver_1", "target", ld=30.0),
        _m(FU1, "lesion_node_1", "target", sa=18.0, node=True, organ="lymph node"),
        _m(FU1, "lesion_liver_2", "non_target", status="present"),
        _m(FU2, "lesion_liver_1", "target", ld=32.0),
        _m(FU2, "lesion_node_1", "target", sa=12.0, node=True, organ="lymph node"),
        _m(FU2, "lesion_liver_2", "non_target", status="absent"),
    ]
    return assess_patient(rows)


def _region(name, dose, sd, bed, kind="lesion"):
    return dict(region=name, kind=kind, volume_ml=10.0, mass_g=10.4, tia_mbq_h=1e3,
                tia_sd_mbq_h=50.0, mean_dose_gy=dose, dose_sd_gy=sd, model="biexp",
                bed_gy=bed)  # fmt: skip


@pytest.fixture
def registry(tmp_path):
    reg = Registry(path=tmp_path / "r.sqlite")
    common = dict(tracer="177Lu-DOTATATE", nuclide="Lu-177", administered_activity_mbq=7400.0,
                  times_h=[4, 24, 96, 168])  # fmt: skip
    reg.record_cycle("P1", administration=dt.datetime(2026, 1, 12, 9), **common, regions=[
        _region("lesion_liver_1", 12.0, 1.5, 14.0), _region("lesion_node_1", 8.0, 1.0, 9.0),
        _region("lesion_pancreas_1", 5.0, 0.5, 5.5), _region("kidneys", 3.0, 0.3, 3.4, "organ"),
    ])  # fmt: skip
    reg.record_cycle("P1", administration=dt.datetime(2026, 3, 9, 9), **common, regions=[
        _region("lesion_liver_1", 10.0, 2.0, 11.5), _region("lesion_node_1", 7.0, 1.0, None),
        _region("kidneys", 3.2, 0.3, 3.6, "organ"),
    ])  # fmt: skip
    # after the last follow-up: must not count
    reg.record_cycle("P1", administration=dt.datetime(2026, 8, 3, 9), **common, regions=[
        _region("lesion_liver_1", 9.0, 1.0, 10.0),
    ])  # fmt: skip
    yield reg
    reg.close()


def test_cumulative_dose_bed_and_diameter_change(registry):
    result = dose_response(_response(), registry.cycles("P1"))
    assert result.cycles == (1, 2)
    rows = {r["lesion_id"]: r for r in result.rows}
    liver = rows["lesion_liver_1"]
    assert liver["cycles"] == 2
    assert liver["dose_gy"] == pytest.approx(12.0 + 10.0, rel=1e-12)
    assert liver["dose_sd_gy"] == pytest.approx(math.hypot(1.5, 2.0), rel=1e-12)
    assert liver["bed_gy"] == pytest.approx(14.0 + 11.5, rel=1e-12)
    assert liver["last_change_pct"] == pytest.approx((32.0 - 40.0) / 40.0 * 100.0)
    assert liver["best_change_pct"] == pytest.approx((30.0 - 40.0) / 40.0 * 100.0)
    node = rows["lesion_node_1"]
    # one cycle without a BED: the cumulative BED is unknown, the dose is not
    assert node["bed_gy"] is None and node["dose_gy"] == pytest.approx(15.0)
    assert node["last_change_pct"] == pytest.approx((12.0 - 20.0) / 20.0 * 100.0)
    non_target = rows["lesion_liver_2"]
    assert non_target["dose_gy"] is None and non_target["last_status"] == "absent"
    assert non_target["last_change_pct"] is None
    notes = " ".join(result.notes)
    assert "cycle 3" in notes and "lesion_pancreas_1" in notes and "lesion_liver_2" in notes


def test_scatter_uses_dose_when_a_bed_is_missing(registry):
    rows = dose_response(_response(), registry.cycles("P1")).rows
    fig = dose_response_figure(rows)
    ax = fig.axes[0]
    assert "absorbed dose" in ax.get_xlabel()
    with pytest.raises(ValueError, match="unknown"):
        dose_response_figure(rows, x="eqd2")
