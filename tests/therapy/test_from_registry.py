"""Next-cycle plan from the registry (theranet.therapy.from_registry): earlier treatments."""

from __future__ import annotations

import datetime as dt
import math

import pytest

from theranet.registry import Registry
from theranet.therapy.from_registry import plan_from_registry

# clinical.md §5.7 worked numbers: 7.4 GBq, kidney 3.70 Gy, T_eff 50 h, alpha/beta 2.6 Gy,
# T_rep 2.8 h -> G = 2.8 / (2.8 + 50) and BED = D (1 + G D / (alpha/beta)).
DOSE_GY = 3.70
G = 2.8 / (2.8 + 50.0)
BED_GY = DOSE_GY * (1.0 + G * DOSE_GY / 2.6)


def _rows() -> list[dict]:
    common = dict(tia_mbq_h=1.0, tia_sd_mbq_h=0.1, model="mono", method="voxel")
    return [
        dict(region="kidneys", kind="organ", volume_ml=310.0, mass_g=325.0,
             mean_dose_gy=DOSE_GY, dose_sd_gy=0.3, bed_gy=BED_GY, **common),
        dict(region="red_marrow", kind="marrow", volume_ml=1170.0, mass_g=1170.0,
             mean_dose_gy=0.1, dose_sd_gy=0.01, bed_gy=None, **common),
    ]  # fmt: skip


def _cycle(reg: Registry, when: dt.datetime, new_treatment: bool = False) -> None:
    reg.record_cycle(
        "NET-0007",
        tracer="177Lu-DOTATATE",
        nuclide="Lu-177",
        administered_activity_mbq=7400.0,
        administration=when,
        times_h=(4.0, 24.0, 96.0, 168.0),
        regions=_rows(),
        methods=(("kinetics", "mono"),),
        software_version="test",
        new_treatment=new_treatment,
    )


@pytest.fixture
def two_courses(tmp_path):
    reg = Registry(url=f"sqlite:///{tmp_path / 'r.sqlite'}")
    _cycle(reg, dt.datetime(2021, 1, 4, 9, 0))
    _cycle(reg, dt.datetime(2021, 3, 1, 9, 0))
    _cycle(reg, dt.datetime(2025, 6, 2, 9, 0), new_treatment=True)
    yield reg
    reg.close()


def test_plan_counts_the_current_treatment_and_names_the_earlier_one(two_courses):
    plan, notes = plan_from_registry(two_courses, "NET-0007")
    kidney = next(o for o in plan.organs if o.organ == "kidney")
    # only the one cycle of treatment 2 is in the cumulative BED
    assert kidney.cumulative_gy == pytest.approx(BED_GY, rel=1e-9)
    note = next(n for n in notes if n.startswith("earlier treatment"))
    # treatment 1: two cycles of BED 3.979 Gy -> 7.96 Gy; marrow 2 x 0.1 Gy
    assert f"kidney BED {2 * BED_GY:.3g} Gy" in note
    assert "red_marrow dose 0.2 Gy" in note
    assert "NOT included" in note
    # kidney absorbed dose after the plan: 3.70 Gy + 0.5 Gy/GBq x A, beside 23 Gy
    dose_note = next(n for n in notes if n.startswith("kidneys: cumulative absorbed dose"))
    after = DOSE_GY + DOSE_GY / 7.4 * plan.activity_gbq
    assert f"{after:.3g} Gy after the planned activity" in dose_note
    assert ("above" if after > 23.0 else "within") + " the 23 Gy" in dose_note
    assert math.isclose(2 * BED_GY, 7.958, rel_tol=1e-3)


def test_plan_of_a_single_treatment_has_no_earlier_note(tmp_path):
    reg = Registry(url=f"sqlite:///{tmp_path / 'r.sqlite'}")
    try:
        _cycle(reg, dt.datetime(2021, 1, 4, 9, 0))
        _, notes = plan_from_registry(reg, "NET-0007")
        assert not any(n.startswith("earlier treatment") for n in notes)
    finally:
        reg.close()


def test_marrow_rows_chosen_per_cycle(tmp_path):
    """Cycle 1 recorded the image-based marrow only (0.1 Gy), cycle 2 both (blood-based
    0.05 Gy): cumulative marrow 0.1 + 0.05 Gy, and the note says the methods differ."""
    reg = Registry(url=f"sqlite:///{tmp_path / 'r.sqlite'}")
    try:
        _cycle(reg, dt.datetime(2021, 1, 4, 9, 0))
        rows = [
            *_rows(),
            dict(region="red_marrow_blood_based", kind="marrow", volume_ml=1170.0,
                 mass_g=1170.0, mean_dose_gy=0.05, dose_sd_gy=0.01, bed_gy=None,
                 tia_mbq_h=1.0, tia_sd_mbq_h=0.1, model="biexp", method="blood-based"),
        ]  # fmt: skip
        reg.record_cycle(
            "NET-0007",
            tracer="177Lu-DOTATATE",
            nuclide="Lu-177",
            administered_activity_mbq=7400.0,
            administration=dt.datetime(2021, 3, 1, 9, 0),
            times_h=(4.0, 24.0, 96.0, 168.0),
            regions=rows,
            methods=(("kinetics", "mono"),),
            software_version="test",
        )
        plan, notes = plan_from_registry(reg, "NET-0007")
        marrow = next(o for o in plan.organs if o.organ == "red_marrow")
        assert marrow.cumulative_gy == pytest.approx(0.15, rel=1e-12)
        assert any("mixes methods" in n for n in notes)
    finally:
        reg.close()


def test_plan_command_with_step_and_minimum(two_courses, tmp_path):
    """`theranet plan ... --activity-step-gbq 0.5 --minimum-activity-gbq 3.7` prints the
    rounding note; the activity is a multiple of 0.5 GBq."""
    from typer.testing import CliRunner

    from theranet.cli import app

    url = f"sqlite:///{tmp_path / 'r.sqlite'}"
    args = ["plan", "NET-0007", "--registry", url]
    args += ["--activity-step-gbq", "0.5", "--minimum-activity-gbq", "3.7"]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    assert "dispensable step" in r.output
    plan, _ = plan_from_registry(two_courses, "NET-0007", activity_step_gbq=0.5)
    assert plan.activity_gbq / 0.5 == pytest.approx(round(plan.activity_gbq / 0.5), abs=1e-9)
