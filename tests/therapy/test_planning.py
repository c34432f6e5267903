"""Tests of theranet.therapy.planning: next-cycle activity under kidney BED and marrow limits.

Physics references
------------------
* clinical.md §5.5 (project reference): kidney BED limits 40 Gy / 28 Gy with risk
  factors [Bodei-2008], red-marrow absorbed dose 2 Gy [Menda-2018]; §5.2 standard regimen
  4 x 7.4 GBq [Lutathera-PI].
* clinical.md §5.7 worked example (numerically checked there): kidney alpha/beta 2.6 Gy,
  T_rep 2.8 h, T_eff 50 h => G = 0.0530; d = 0.5 Gy/GBq; one 7.4 GBq cycle gives
  D = 3.70 Gy and BED = 3.98 Gy (3.979 Gy to four figures, also the radiobiology doctest);
  after 3 cycles A_max = 39.9 GBq (40 Gy limit) and 25.5 GBq (28 Gy).
* Dale RG. Br J Radiol 1985;58:515–528: BED = D (1 + G D / (alpha/beta)),
  G = T_rep / (T_rep + T_eff) for mono-exponential clearance (acute delivery: G = 1;
  very long T_eff: G -> 0).

The planned activity is never checked against the closed form that computes it: it is
applied to the same kinetics and the cumulative BED is recomputed with
``theranet.radiobiology.bed_gy`` (Dale's double sum) or ``bed_numerical_gy`` (ODE
integration of the double integral). The propagated SD is checked against a Monte Carlo
over the dose per GBq and against the analytic g -> 0 case.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose

from theranet.errors import TheranetError
from theranet.radiobiology import (
    DoseRate,
    Tissue,
    bed_gy,
    bed_map_gy,
    bed_numerical_gy,
    tissue,
)
from theranet.radiopharmaceuticals import Sourced
from theranet.therapy.planning import (
    Z_ONE_SIDED_95,
    Limits,
    OrganKinetics,
    PlanningError,
    limits,
    load_limits,
    plan_next_cycle,
)

KIDNEY = tissue("kidney")
# clinical.md §5.7 worked example: BED of one 7.4 GBq cycle at 0.5 Gy/GBq, T_eff 50 h.
BED_PER_STANDARD_CYCLE_GY = 3.979
# Tolerance for the 4-figure published value: half a unit in the last digit.
BED_PER_CYCLE_ATOL_GY = 5e-4


@pytest.fixture
def no_risk():
    return limits(risk_factors=False)


def kidney_bed_after(plan, kinetics: OrganKinetics, previous_gy: float) -> float:
    """Cumulative kidney BED after giving plan.activity_gbq with the same kinetics."""
    rate = kinetics.dose_rate_per_gbq.scaled(plan.activity_gbq)
    return previous_gy + bed_gy(rate, KIDNEY)


# ----------------------------------------------------------------------------------------
# limits table


def test_shipped_limits_match_clinical_reference():
    # Published values, clinical.md §5.5 / §5.2 (exact numbers, tolerance 0).
    table = load_limits()
    kidney = table.entries["kidney"]
    assert kidney["bed"].value == 40.0 and kidney["bed"].source == "Bodei-2008"
    assert kidney["bed_risk_factors"].value == 28.0
    assert kidney["bed_risk_factors"].source == "Bodei-2008"
    assert kidney["dose"].value == 23.0
    marrow = table.entries["red_marrow"]["dose"]
    assert marrow.value == 2.0 and "Menda-2018" in marrow.source
    assert table.standard_activity.value == 7.4 and table.standard_activity.unit == "GBq"
    assert table.standard_cycles.value == 4
    for kinds in table.entries.values():
        for entry in kinds.values():
            assert entry.section.startswith("clinical.md §5.5")
            assert entry.status == "verified" and entry.unit == "Gy"


def test_limits_select_by_risk_factors():
    # Bodei-2008 (clinical.md §5.5): 28 Gy with risk factors, 40 Gy without.
    assert limits(risk_factors=False).kidney_bed_gy == 40.0
    assert limits(risk_factors=True).kidney_bed_gy == 28.0
    assert limits(risk_factors=True).red_marrow_dose_gy == 2.0
    lim = limits(risk_factors=False)
    assert lim.standard_activity_gbq == 7.4 and lim.standard_cycles == 4
    assert lim.limit_gy("kidneys", "bed") == 40.0  # alias
    assert lim.limit_gy("marrow", "dose") == 2.0


def test_limits_require_explicit_risk_factors():
    with pytest.raises(PlanningError) as err:
        limits(risk_factors=None)  # type: ignore[arg-type]
    assert err.value.field == "risk_factors"


def test_kidney_bed_limit_override_is_recorded():
    lim = limits(risk_factors=False, limit_kidney_bed_gy=35.0)
    assert lim.kidney_bed_gy == 35.0
    assert lim.source("kidney", "bed").source == "user override"
    assert "40.0 Gy" in lim.source("kidney", "bed").note
    with pytest.raises(PlanningError) as err:
        limits(risk_factors=False, limit_kidney_bed_gy=-1.0)
    assert err.value.field == "limit_kidney_bed_gy"


def test_user_limit_table_merges(tmp_path):
    site = tmp_path / "site.toml"
    site.write_text(
        'version = "site-1"\n'
        "[limit.marrow]\n"
        'dose = { value = 1.0, unit = "Gy", source = "Reidy-Lagunes-2019", '
        'section = "clinical.md §5.5", status = "verified" }\n'
        "[regimen]\n"
        'standard_activity = { value = 3700, unit = "MBq", source = "site", '
        'section = "SOP", status = "unconfirmed" }\n',
        encoding="utf-8",
    )
    table = load_limits(site)
    assert table.version == "1.0.0+site-1"
    lim = limits(risk_factors=False, table=table)
    assert lim.red_marrow_dose_gy == 1.0
    assert lim.kidney_bed_gy == 40.0  # kept from the shipped table
    assert_allclose(lim.standard_activity_gbq, 3.7, rtol=1e-12)  # 3700 MBq in GBq
    with pytest.raises(PlanningError) as err:
        load_limits(site, merge=False)  # incomplete on its own: no kidney, no cycles
    assert err.value.field == "regimen.standard_cycles"


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("[limit.kidney]\nbed = 40\n", "limit.kidney.bed"),
        (
            '[limit.kidney]\nbed = { value = 40, unit = "Gy", source = "x", section = "y", '
            'status = "guess" }\n',
            "limit.kidney.bed.status",
        ),
        (
            '[limit.kidney]\nbed = { value = -40, unit = "Gy", source = "x", section = "y", '
            'status = "uncertain" }\n',
            "limit.kidney.bed.value",
        ),
        (
            '[limit.kidney]\nbed = { value = 40, unit = "cGy", source = "x", section = "y", '
            'status = "uncertain" }\n',
            "limit.kidney.bed.unit",
        ),
        ("[limit.kidney]\nbed_max = 1\n", "limit.kidney"),
        ("[limits]\n", "table"),
        ("[limit\n", "TOML"),
    ],
)
def test_bad_limit_tables(tmp_path, text, field):
    path = tmp_path / "bad.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(PlanningError) as err:
        load_limits(path)
    assert err.value.field == field


def test_missing_limit_table_file(tmp_path):
    with pytest.raises(PlanningError) as err:
        load_limits(tmp_path / "absent.toml")
    assert err.value.field == "path"


# ----------------------------------------------------------------------------------------
# planned activity reaches the limit


def test_worked_example_kidney_bed_reaches_40_gy(no_risk):
    # clinical.md §5.7: after 3 standard cycles BED_prev = 3 x 3.979 Gy; A_max = 39.9 GBq.
    kidney = OrganKinetics.mono("kidney", dose_per_gbq_gy=0.5, effective_half_life_h=50.0)
    marrow = OrganKinetics.mono("red_marrow", dose_per_gbq_gy=0.02, effective_half_life_h=30.0)
    previous = 3 * bed_gy(DoseRate.mono(3.7, 50.0), KIDNEY)
    plan = plan_next_cycle(
        {"kidney": previous, "red_marrow": 0.3}, [kidney, marrow], limits=no_risk, cycles_given=3
    )
    assert plan.limiting_organ == "kidney"
    assert_allclose(plan.activity_gbq, 39.9, atol=0.05)  # published to 3 figures
    # Acceptance requires 1 %; the closed form is exact, so 1e-6 relative.
    assert_allclose(kidney_bed_after(plan, kidney, previous), 40.0, rtol=1e-6)
    assert_allclose(plan.organ("kidney").projected_gy, 40.0, rtol=1e-6)
    assert plan.organ("marrow").projected_gy < 2.0
    assert plan.activity_gbq >= 0.0 and not plan.capped_by_max_activity
    assert "kidney" in plan.reason and "40" in plan.reason
    assert any("non-standard" in n for n in plan.notes)  # 39.9 GBq > 7.4 GBq label


def test_risk_factors_use_28_gy():
    # clinical.md §5.7: same example with BED_lim 28 Gy gives A_max = 25.5 GBq.
    kidney = OrganKinetics.mono("kidney", dose_per_gbq_gy=0.5, effective_half_life_h=50.0)
    previous = 3 * bed_gy(DoseRate.mono(3.7, 50.0), KIDNEY)
    plan = plan_next_cycle(
        {"kidney": previous}, [kidney], limits=limits(risk_factors=True), cycles_given=3
    )
    assert plan.organ("kidney").limit_gy == 28.0
    assert_allclose(plan.activity_gbq, 25.5, atol=0.05)  # published to 3 figures
    assert_allclose(kidney_bed_after(plan, kidney, previous), 28.0, rtol=1e-6)


def test_uptake_washout_kinetics_reach_limit_by_numerical_integration(no_risk):
    # A measured cycle (7.4 GBq, uptake half-life 2 h, washout 50 h, 3.9 Gy kidney dose):
    # the planned activity, applied to the same curve, is checked with the independent
    # ODE integration of Dale's double integral (bed_numerical_gy, rtol 1e-10 there).
    measured = DoseRate.uptake_washout(3.9, uptake_half_life_h=2.0, effective_half_life_h=50.0)
    kidney = OrganKinetics.from_cycle("kidney", measured, activity_gbq=7.4, dose_sd_gy=0.4)
    assert_allclose(kidney.dose_per_gbq_gy, 3.9 / 7.4, rtol=1e-12)
    assert_allclose(kidney.dose_per_gbq_sd_gy, 0.4 / 7.4, rtol=1e-12)
    plan = plan_next_cycle({"kidney": 8.2}, [kidney], limits=no_risk, cycles_given=2)
    rate = measured.scaled(plan.activity_gbq / 7.4)
    assert_allclose(8.2 + bed_numerical_gy(rate, KIDNEY), 40.0, rtol=1e-6)


def test_marrow_dose_limiting(no_risk):
    # Marrow 0.1 Gy/GBq with 1.2 Gy given: remaining 0.8 Gy -> A = 0.8 / 0.1 = 8 GBq
    # (analytic); kidney would allow far more.
    kidney = OrganKinetics.mono("kidney", dose_per_gbq_gy=0.5, effective_half_life_h=50.0)
    marrow = OrganKinetics.mono("red_marrow", dose_per_gbq_gy=0.1, effective_half_life_h=30.0)
    plan = plan_next_cycle(
        {"kidneys": 11.9, "marrow": 1.2}, [kidney, marrow], limits=no_risk, cycles_given=3
    )
    assert plan.limiting_organ == "red_marrow"
    assert_allclose(plan.activity_gbq, 8.0, rtol=1e-12)
    # cumulative marrow absorbed dose with the planned activity, from the scaled curve
    marrow_after = 1.2 + marrow.dose_rate_per_gbq.scaled(plan.activity_gbq).dose_gy
    assert_allclose(marrow_after, 2.0, rtol=1e-6)
    assert kidney_bed_after(plan, kidney, 11.9) < 40.0


def test_g_to_zero_gives_remaining_over_dose_per_gbq(no_risk):
    # T_eff = 1e7 h: G = 2.8 / (2.8 + 1e7) = 2.8e-7 (Dale), so BED = D to 3e-6 relative
    # and A = remaining / d1 = (40 - 12) / 0.5 = 56 GBq (analytic; rtol 1e-5 covers G R / ab).
    kidney = OrganKinetics.mono("kidney", dose_per_gbq_gy=0.5, effective_half_life_h=1e7)
    assert kidney.g_factor < 1e-6
    plan = plan_next_cycle({"kidney": 12.0}, [kidney], limits=no_risk, cycles_given=1)
    assert_allclose(plan.activity_gbq, 56.0, rtol=1e-5)


def test_acute_limit_g_one_hand_numbers(no_risk):
    # T_eff = 1e-6 h: G = 1 - 3.6e-7 (acute). BED = x (1 + x / 2.6) = 5.2 Gy has the root
    # x = 2.6 Gy (2.6 * 2 = 5.2); with d1 = 0.5 Gy/GBq, A = 5.2 GBq. Previous 34.8 Gy.
    kidney = OrganKinetics.mono("kidney", dose_per_gbq_gy=0.5, effective_half_life_h=1e-6)
    plan = plan_next_cycle({"kidney": 34.8}, [kidney], limits=no_risk, cycles_given=1)
    assert_allclose(plan.activity_gbq, 5.2, rtol=1e-6)


def test_kidney_absorbed_dose_constraint(no_risk):
    # Kidney planned by absorbed dose (23 Gy, clinical.md §5.5): (23 - 10) / 0.5 = 26 GBq.
    kidney = OrganKinetics.mono("kidney", 0.5, 50.0, constraint="dose")
    plan = plan_next_cycle({"kidney": 10.0}, [kidney], limits=no_risk, cycles_given=2)
    assert plan.organ("kidney").limit_gy == 23.0
    assert_allclose(plan.activity_gbq, 26.0, rtol=1e-12)


def test_kidney_bed_limit_override_reached(no_risk):
    kidney = OrganKinetics.mono("kidney", 0.5, 50.0)
    lim = limits(risk_factors=False, limit_kidney_bed_gy=35.0)
    plan = plan_next_cycle({"kidney": 10.0}, [kidney], limits=lim, cycles_given=2)
    assert_allclose(kidney_bed_after(plan, kidney, 10.0), 35.0, rtol=1e-6)


def test_custom_tissue_parameters():
    # A site Tissue (alpha/beta 2.6 Gy, T_rep 1.5 h) is used for G and BED.
    site_kidney = Tissue("kidney", alpha_beta_gy=2.6, repair_half_time_h=1.5)
    kin = OrganKinetics.mono(site_kidney, 0.5, 50.0)
    plan = plan_next_cycle(
        {"kidney": 12.0}, [kin], limits=limits(risk_factors=False), cycles_given=1
    )
    rate = kin.dose_rate_per_gbq.scaled(plan.activity_gbq)
    assert_allclose(12.0 + bed_gy(rate, 2.6, 1.5), 40.0, rtol=1e-6)


@settings(max_examples=60, deadline=None)
@given(
    d1=st.floats(0.05, 3.0),
    t_eff_h=st.floats(5.0, 500.0),
    previous_gy=st.floats(0.0, 39.0),
)
def test_planned_activity_reaches_limit_property(d1, t_eff_h, previous_gy):
    kidney = OrganKinetics.mono("kidney", d1, t_eff_h)
    plan = plan_next_cycle(
        {"kidney": previous_gy}, [kidney], limits=limits(risk_factors=False), cycles_given=1
    )
    assert_allclose(kidney_bed_after(plan, kidney, previous_gy), 40.0, rtol=1e-9)


def test_max_activity_caps(no_risk):
    kidney = OrganKinetics.mono("kidney", 0.5, 50.0, dose_per_gbq_sd_gy=0.05)
    plan = plan_next_cycle(
        {"kidney": 4.0}, [kidney], limits=no_risk, cycles_given=1, max_activity_gbq=7.4
    )
    assert plan.activity_gbq == 7.4 and plan.capped_by_max_activity
    assert plan.activity_sd_gbq == 0.0
    assert plan.limiting_organ == "kidney" and "max_activity_gbq" in plan.reason
    assert plan.activity_95_gbq == 7.4
    assert not any("non-standard" in n for n in plan.notes)


# ----------------------------------------------------------------------------------------
# limit already reached


@pytest.mark.parametrize("previous_gy", [40.0, 41.5])
def test_limit_reached_gives_zero_activity_with_reason(no_risk, previous_gy):
    kidney = OrganKinetics.mono("kidney", 0.5, 50.0, dose_per_gbq_sd_gy=0.05)
    marrow = OrganKinetics.mono("red_marrow", 0.02, 30.0)
    plan = plan_next_cycle(
        {"kidney": previous_gy, "red_marrow": 0.5}, [kidney, marrow], limits=no_risk, cycles_given=6
    )
    assert plan.activity_gbq == 0.0
    assert plan.activity_sd_gbq == 0.0 and plan.activity_95_gbq == 0.0
    assert plan.limiting_organ == "kidney"
    assert "limit already reached" in plan.reason and "kidney" in plan.reason
    assert plan.n_standard_cycles_allowed == 0
    assert plan.organ("kidney").projected_gy == previous_gy
    assert not plan.standard_regimen_within_limits or previous_gy == 40.0


# ----------------------------------------------------------------------------------------
# standard cycles and regimen


def test_bed_per_standard_cycle_matches_worked_example(no_risk):
    kidney = OrganKinetics.mono("kidney", 0.5, 50.0)
    plan = plan_next_cycle({"kidney": 0.0}, [kidney], limits=no_risk, cycles_given=0)
    # clinical.md §5.7 worked example: 3.979 Gy per 7.4 GBq cycle.
    assert_allclose(
        plan.organ("kidney").per_standard_cycle_gy,
        BED_PER_STANDARD_CYCLE_GY,
        atol=BED_PER_CYCLE_ATOL_GY,
    )


@pytest.mark.parametrize(
    ("previous_gy", "risk_factors", "expected"),
    [
        # 40 / 3.979 = 10.05 -> 10 cycles
        (0.0, False, 10),
        # after 3 cycles: (40 - 11.937) / 3.979 = 7.05 -> 7
        (3 * 3.979, False, 7),
        # 28 / 3.979 = 7.04 -> 7
        (0.0, True, 7),
        # (28 - 11.937) / 3.979 = 4.04 -> 4
        (3 * 3.979, True, 4),
        # 39 Gy: (40 - 39) / 3.979 = 0.25 -> 0
        (39.0, False, 0),
    ],
)
def test_n_standard_cycles_by_hand(previous_gy, risk_factors, expected):
    # d1 = 0.5 Gy/GBq, T_eff 50 h, alpha/beta 2.6 Gy, T_rep 2.8 h: BED per 7.4 GBq cycle
    # = 3.979 Gy (clinical.md §5.7 worked example).
    kidney = OrganKinetics.mono("kidney", 0.5, 50.0)
    plan = plan_next_cycle(
        {"kidney": previous_gy},
        [kidney],
        limits=limits(risk_factors=risk_factors),
        cycles_given=0,
    )
    assert plan.n_standard_cycles_allowed == expected


def test_n_standard_cycles_marrow_more_restrictive(no_risk):
    # Marrow 0.03 Gy/GBq: 0.222 Gy per 7.4 GBq cycle; 2 / 0.222 = 9.009 -> 9 cycles,
    # fewer than the kidney's 10 (above): the plan allows 9.
    kidney = OrganKinetics.mono("kidney", 0.5, 50.0)
    marrow = OrganKinetics.mono("red_marrow", 0.03, 30.0)
    plan = plan_next_cycle(
        {"kidney": 0.0, "red_marrow": 0.0}, [kidney, marrow], limits=no_risk, cycles_given=0
    )
    assert plan.organ("kidney").n_standard_cycles_allowed == 10
    assert plan.organ("red_marrow").n_standard_cycles_allowed == 9
    assert plan.n_standard_cycles_allowed == 9


def test_standard_regimen_within_limits_typical_patient(no_risk):
    # One cycle given (3.979 Gy); 3 more standard cycles: 4 x 3.979 = 15.92 Gy <= 40 Gy.
    kidney = OrganKinetics.mono("kidney", 0.5, 50.0)
    marrow = OrganKinetics.mono("red_marrow", 0.03, 30.0)
    plan = plan_next_cycle(
        {"kidney": 3.979, "red_marrow": 0.222}, [kidney, marrow], limits=no_risk, cycles_given=1
    )
    assert plan.standard_cycles_remaining == 3
    assert_allclose(plan.organ("kidney").after_standard_regimen_gy, 4 * 3.979, atol=2e-3)
    # marrow: 4 x 0.03 x 7.4 = 0.888 Gy (absorbed dose adds)
    assert_allclose(plan.organ("red_marrow").after_standard_regimen_gy, 0.888, rtol=1e-12)
    assert plan.standard_regimen_within_limits


def test_standard_regimen_exceeds_kidney_limit_high_uptake(no_risk):
    # d1 = 1.5 Gy/GBq: D = 11.1 Gy per 7.4 GBq cycle; G = 2.8 / 52.8 = 0.0530303;
    # BED = 11.1 (1 + 0.0530303 x 11.1 / 2.6) = 11.1 x 1.226398 = 13.6130 Gy per cycle;
    # 4 cycles = 54.452 Gy > 40 Gy; cycles allowed from 0: 40 / 13.613 = 2.94 -> 2.
    kidney = OrganKinetics.mono("kidney", 1.5, 50.0)
    plan = plan_next_cycle({"kidney": 0.0}, [kidney], limits=no_risk, cycles_given=0)
    row = plan.organ("kidney")
    assert_allclose(row.per_standard_cycle_gy, 13.6130, rtol=1e-5)
    assert_allclose(row.after_standard_regimen_gy, 54.452, rtol=1e-5)
    assert not row.within_limit_after_standard_regimen
    assert not plan.standard_regimen_within_limits
    assert plan.n_standard_cycles_allowed == 2


# ----------------------------------------------------------------------------------------
# uncertainty


def test_activity_sd_analytic_g_zero(no_risk):
    # G -> 0: A = R / d1 => u(A) = A u(d1) / d1 (exact first-order result).
    kidney = OrganKinetics.mono("kidney", 0.5, 1e7, dose_per_gbq_sd_gy=0.05)
    marrow = OrganKinetics.mono("red_marrow", 0.1, 30.0, dose_per_gbq_sd_gy=0.02)
    plan = plan_next_cycle({"kidney": 12.0}, [kidney], limits=no_risk, cycles_given=1)
    assert_allclose(plan.activity_sd_gbq, 56.0 * 0.05 / 0.5, rtol=1e-5)
    plan = plan_next_cycle(
        {"kidney": 0.0, "red_marrow": 1.2}, [kidney, marrow], limits=no_risk, cycles_given=1
    )
    assert plan.limiting_organ == "red_marrow"
    assert_allclose(plan.activity_sd_gbq, 8.0 * 0.02 / 0.1, rtol=1e-12)


def test_activity_sd_against_monte_carlo(no_risk):
    # d1 ~ N(0.5, 0.025) (5 %), T_eff 50 h (G = 0.053, the quadratic matters): plan each
    # sample and compare mean and SD with the first-order values. n = 4000: standard
    # error of the SD about 1.1 %, second-order bias of 1/d1 about 3 cv^2 = 0.75 % -> 3 %.
    d1, sd = 0.5, 0.025
    previous = 11.94
    nominal = plan_next_cycle(
        {"kidney": previous},
        [OrganKinetics.mono("kidney", d1, 50.0, dose_per_gbq_sd_gy=sd)],
        limits=no_risk,
        cycles_given=3,
    )
    rng = np.random.default_rng(20240611)
    samples = rng.normal(d1, sd, 4000)
    activities = np.array(
        [
            plan_next_cycle(
                {"kidney": previous},
                [OrganKinetics.mono("kidney", s, 50.0)],
                limits=no_risk,
                cycles_given=3,
            ).activity_gbq
            for s in samples
        ]
    )
    # mean: bias cv^2 = 0.25 % plus standard error 0.08 % -> 1 %
    assert_allclose(activities.mean(), nominal.activity_gbq, rtol=0.01)
    assert_allclose(activities.std(ddof=1), nominal.activity_sd_gbq, rtol=0.03)


def test_activity_95_exceeds_limit_in_5_percent(no_risk):
    # If the true d1 ~ N(0.5, 0.05), giving activity_95_gbq exceeds the 40 Gy limit with
    # probability 1 - Phi(1.645) = 5 %. Cumulative BED of each sample from Dale's
    # mono-exponential expression (bed_map_gy); n = 20000 -> binomial SE 0.15 %, tol 0.5 %.
    d1, sd, previous = 0.5, 0.05, 11.94
    kidney = OrganKinetics.mono("kidney", d1, 50.0, dose_per_gbq_sd_gy=sd)
    plan = plan_next_cycle({"kidney": previous}, [kidney], limits=no_risk, cycles_given=3)
    assert plan.activity_95_gbq < plan.activity_gbq
    rng = np.random.default_rng(7)
    true_d1 = rng.normal(d1, sd, 20000)
    cumulative = previous + bed_map_gy(true_d1 * plan.activity_95_gbq, 50.0, KIDNEY)
    assert abs(np.mean(cumulative > 40.0) - 0.05) < 0.005
    # and at d1 + 1.645 SD the limit is reached exactly
    rate = DoseRate.mono((d1 + Z_ONE_SIDED_95 * sd) * plan.activity_95_gbq, 50.0)
    assert_allclose(previous + bed_gy(rate, KIDNEY), 40.0, rtol=1e-9)
    assert_allclose(Z_ONE_SIDED_95, 1.645, atol=5e-4)  # standard normal 95 % quantile


# ----------------------------------------------------------------------------------------
# bad input


def _assert_planning_error(err: pytest.ExceptionInfo, field: str) -> None:
    assert isinstance(err.value, TheranetError) and isinstance(err.value, ValueError)
    assert err.value.field == field
    assert field in str(err.value)


def test_negative_cumulative(no_risk):
    kidney = OrganKinetics.mono("kidney", 0.5, 50.0)
    with pytest.raises(PlanningError) as err:
        plan_next_cycle({"kidney": -1.0}, [kidney], limits=no_risk, cycles_given=1)
    _assert_planning_error(err, "previous['kidney']")
    with pytest.raises(PlanningError) as err:
        plan_next_cycle({"kidney": math.nan}, [kidney], limits=no_risk, cycles_given=1)
    _assert_planning_error(err, "previous['kidney']")


def test_missing_cumulative(no_risk):
    kidney = OrganKinetics.mono("kidney", 0.5, 50.0)
    marrow = OrganKinetics.mono("red_marrow", 0.03, 30.0)
    with pytest.raises(PlanningError) as err:
        plan_next_cycle({"kidney": 1.0}, [kidney, marrow], limits=no_risk, cycles_given=1)
    _assert_planning_error(err, "previous")
    assert "red_marrow" in str(err.value)


def test_unknown_tissue():
    with pytest.raises(PlanningError) as err:
        OrganKinetics.mono("kidnee", 0.5, 50.0)
    _assert_planning_error(err, "tissue")
    assert "unknown tissue" in str(err.value)


def test_unknown_tissue_in_previous(no_risk):
    kidney = OrganKinetics.mono("kidney", 0.5, 50.0)
    with pytest.raises(PlanningError) as err:
        plan_next_cycle({"kidney": 1.0, "pancreas": 0.3}, [kidney], limits=no_risk, cycles_given=1)
    _assert_planning_error(err, "previous['pancreas']")
    # a known tissue without kinetics is ignored with a note
    plan = plan_next_cycle({"kidney": 1.0, "liver": 3.0}, [kidney], limits=no_risk, cycles_given=1)
    assert any("liver" in n for n in plan.notes)


@pytest.mark.parametrize("dose", [0.0, -0.5, math.inf])
def test_non_positive_dose_per_gbq(dose):
    with pytest.raises(PlanningError) as err:
        OrganKinetics.mono("kidney", dose, 50.0)
    _assert_planning_error(err, "dose_per_gbq_gy")


def test_zero_dose_rate_curve():
    with pytest.raises(PlanningError) as err:
        OrganKinetics("kidney", DoseRate.mono(0.0, 50.0))
    _assert_planning_error(err, "dose_rate_per_gbq")


def test_negative_sd():
    with pytest.raises(PlanningError) as err:
        OrganKinetics.mono("kidney", 0.5, 50.0, dose_per_gbq_sd_gy=-0.1)
    _assert_planning_error(err, "dose_per_gbq_sd_gy")


@pytest.mark.parametrize("kinetics", [[], ()])
def test_no_kinetics(no_risk, kinetics):
    with pytest.raises(PlanningError) as err:
        plan_next_cycle({}, kinetics, limits=no_risk, cycles_given=1)
    _assert_planning_error(err, "kinetics")


def test_duplicate_tissue(no_risk):
    a = OrganKinetics.mono("kidney", 0.5, 50.0)
    b = OrganKinetics.mono("kidneys", 0.4, 40.0)
    with pytest.raises(PlanningError) as err:
        plan_next_cycle({"kidney": 1.0}, [a, b], limits=no_risk, cycles_given=1)
    _assert_planning_error(err, "kinetics[1]")


def test_constraint_without_limit(no_risk):
    liver = OrganKinetics.mono("liver", 0.2, 60.0, constraint="dose")
    with pytest.raises(PlanningError) as err:
        plan_next_cycle({"liver": 1.0}, [liver], limits=no_risk, cycles_given=1)
    _assert_planning_error(err, "constraint")
    marrow_bed = OrganKinetics.mono("marrow", 0.03, 30.0, constraint="bed")
    with pytest.raises(PlanningError) as err:
        plan_next_cycle({"marrow": 0.1}, [marrow_bed], limits=no_risk, cycles_given=1)
    _assert_planning_error(err, "constraint")
    with pytest.raises(PlanningError) as err:
        OrganKinetics.mono("liver", 0.2, 60.0)  # no default constraint
    _assert_planning_error(err, "constraint")
    with pytest.raises(PlanningError) as err:
        OrganKinetics.mono("kidney", 0.2, 60.0, constraint="eqd2")
    _assert_planning_error(err, "constraint")


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"cycles_given": -1}, "cycles_given"),
        ({"cycles_given": True}, "cycles_given"),
        ({"cycles_given": 1, "max_activity_gbq": 0.0}, "max_activity_gbq"),
        ({"cycles_given": 1, "standard_activity_gbq": -7.4}, "standard_activity_gbq"),
    ],
)
def test_bad_plan_arguments(no_risk, kwargs, field):
    kidney = OrganKinetics.mono("kidney", 0.5, 50.0)
    with pytest.raises(PlanningError) as err:
        plan_next_cycle({"kidney": 1.0}, [kidney], limits=no_risk, **kwargs)
    _assert_planning_error(err, field)


def test_limits_argument_must_be_limits():
    kidney = OrganKinetics.mono("kidney", 0.5, 50.0)
    with pytest.raises(PlanningError) as err:
        plan_next_cycle({"kidney": 1.0}, [kidney], limits={"kidney": 40.0}, cycles_given=1)
    _assert_planning_error(err, "limits")


def test_direct_limits_validation():
    lim = Limits({("kidneys", "bed"): 30.0}, standard_activity_gbq=7.4, standard_cycles=4)
    assert lim.kidney_bed_gy == 30.0
    assert lim.source("kidney", "bed").source == "user"
    with pytest.raises(PlanningError):
        Limits({("kidney", "eqd2"): 30.0}, 7.4, 4)
    with pytest.raises(PlanningError):
        Limits({("kidney", "bed"): -30.0}, 7.4, 4)
    with pytest.raises(PlanningError) as err:
        Limits({("kidney", "bed"): Sourced(30.0, "Gy", "s", "x", "verified")}, 7.4, 0)
    assert err.value.field == "standard_cycles"


def test_rounding_down_to_the_dispensable_step(no_risk):
    """Rule 2 of clinical.md §5.7: the worked example's 39.9 GBq, with a 0.5 GBq step,
    is 39.5 GBq (floor), and the kidney stays below its limit."""
    kidney = OrganKinetics.mono("kidney", dose_per_gbq_gy=0.5, effective_half_life_h=50.0)
    previous = 3 * 3.7 * (1 + 3.7 * 2.8 / (2.8 + 50.0) / 2.6)
    plan = plan_next_cycle({"kidney": previous}, [kidney], limits=no_risk, cycles_given=3,
                           activity_step_gbq=0.5)  # fmt: skip
    assert plan.activity_gbq == pytest.approx(39.5, rel=1e-12)
    assert plan.organ("kidney").projected_gy < 40.0
    assert any("dispensable step" in n for n in plan.notes)


def test_below_the_minimum_activity_says_stop(no_risk):
    """Rule 3: 1.2 Gy marrow given, 0.5 Gy/GBq: 0.8 Gy left -> 1.6 GBq, below a 3.7 GBq
    minimum -> stop and report; with 0.1 Gy given, 3.8 GBq passes."""
    kidney = OrganKinetics.mono("kidney", dose_per_gbq_gy=0.5, effective_half_life_h=50.0)
    marrow = OrganKinetics.mono("red_marrow", dose_per_gbq_gy=0.5, effective_half_life_h=50.0)
    plan = plan_next_cycle({"kidney": 5.0, "red_marrow": 1.2}, [kidney, marrow], limits=no_risk,
                           cycles_given=1, minimum_activity_gbq=3.7)  # fmt: skip
    assert plan.activity_gbq == pytest.approx(1.6, rel=1e-9)
    assert plan.below_minimum
    assert any("stop and report" in n for n in plan.notes)
    ok = plan_next_cycle({"kidney": 5.0, "red_marrow": 0.1}, [kidney, marrow], limits=no_risk,
                         cycles_given=1, minimum_activity_gbq=3.7)  # fmt: skip
    assert not ok.below_minimum
