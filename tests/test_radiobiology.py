"""Tests of theranet.radiobiology: BED closed forms, limits, EQD2, tissues, cycles, maps.

Physics references
------------------
* Dale RG. Br J Radiol 1985;58:515–528: protracted-irradiation BED with mono-exponential
  repair; for an exponentially decaying dose rate (instant uptake)
  ``BED = D (1 + D lambda / ((mu + lambda) (alpha/beta)))``.
* Wessels BW et al. MIRD Pamphlet No. 20. J Nucl Med 2008;49:1884–1899 (kidney BED with
  the same mono-exponential expression).
* clinical.md §5.6, §5.7, §9 (project reference): G-factor closed forms and a numerically
  checked 177Lu kidney example.

The closed forms are checked against an independent numerical integration of Dale's
double integral (an ODE for the running convolution, and once a direct ``dblquad``),
never against their own output.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
from numpy.testing import assert_allclose
from scipy import integrate

from theranet.kinetics.models import BIEXP, BIEXP_UPTAKE, MONO, TRIEXP
from theranet.radiobiology import (
    CycleBED,
    DoseRate,
    RadiobiologyError,
    Tissue,
    bed_gy,
    bed_map_gy,
    bed_numerical_gy,
    cumulative_bed_gy,
    eqd2_gy,
    g_factor,
    load_tissues,
    quadratic_term_gy2,
    tissue,
)
from theranet.radiopharmaceuticals import STATUSES

LN2 = math.log(2.0)


def dale_mono_bed(dose_gy: float, t_eff_h: float, ab_gy: float, t_rep_h: float) -> float:
    """Dale (1985) / MIRD 20: BED = D (1 + D lambda / ((mu + lambda) (alpha/beta)))."""
    lam, mu = LN2 / t_eff_h, LN2 / t_rep_h
    return dose_gy * (1.0 + dose_gy * lam / ((mu + lam) * ab_gy))


# ----------------------------------------------------------------------------------------
# tissue table


def test_shipped_tissues_every_value_has_source_and_status():
    table = load_tissues()
    assert set(table.names()) >= {"kidney", "red_marrow", "liver", "tumour"}
    for t in table:
        for key, unit in (("alpha_beta", "Gy"), ("repair_half_time", "h")):
            s = t.sources[key]
            assert s.source.strip() and s.section.strip(), (t.name, key)
            assert s.status in STATUSES
            assert s.unit == unit
        assert t.sources["alpha_beta"].value == t.alpha_beta_gy
        assert t.sources["repair_half_time"].value == t.repair_half_time_h


@pytest.mark.parametrize(
    ("name", "ab_gy", "t_rep_h", "ab_status", "t_rep_status"),
    [
        # clinical.md §5.6 table, recommended defaults and verification marks
        ("kidney", 2.6, 2.8, "verified", "uncertain"),
        ("red_marrow", 10.0, 0.5, "uncertain", "uncertain"),
        ("liver", 2.5, 1.5, "uncertain", "uncertain"),
        ("tumour", 10.0, 1.5, "uncertain", "uncertain"),
    ],
)
def test_shipped_values_match_reference(name, ab_gy, t_rep_h, ab_status, t_rep_status):
    t = tissue(name)
    assert t.alpha_beta_gy == ab_gy
    assert t.repair_half_time_h == t_rep_h
    assert t.sources["alpha_beta"].status == ab_status
    assert t.sources["repair_half_time"].status == t_rep_status
    assert_allclose(t.repair_rate_per_h, LN2 / t_rep_h, rtol=1e-15)
    assert not t.is_verified  # no tissue has both values verified in the reference


@pytest.mark.parametrize(
    ("alias", "canonical"),
    [
        ("Kidneys", "kidney"),
        ("red marrow", "red_marrow"),
        ("bone-marrow", "red_marrow"),
        ("Tumor", "tumour"),
        ("LIVER", "liver"),
    ],
)
def test_tissue_aliases(alias, canonical):
    assert tissue(alias).name == canonical


def test_unknown_tissue_names_field_value_and_known_tissues():
    with pytest.raises(RadiobiologyError) as exc:
        tissue("spleen")
    err = exc.value
    assert err.field == "tissue"
    assert err.value == "spleen"
    for known in ("kidney", "red_marrow", "liver", "tumour"):
        assert known in str(err)
    assert isinstance(err, ValueError)


def test_user_table_overrides_and_adds(tmp_path):
    site = tmp_path / "site.toml"
    site.write_text(
        'version = "site-1"\n'
        "[tissue.kidneys]\n"
        'repair_half_time = { value = 90, unit = "min", source = "site SOP", '
        'section = "SOP 12", status = "uncertain" }\n'
        "[tissue.spleen]\n"
        'alpha_beta = { value = 3.0, unit = "Gy", source = "site", section = "x", '
        'status = "uncertain" }\n'
        'repair_half_time = { value = 2.0, unit = "h", source = "site", section = "x", '
        'status = "uncertain" }\n',
        encoding="utf-8",
    )
    table = load_tissues(site)
    kidney = tissue("kidney", table)
    assert kidney.repair_half_time_h == 1.5  # 90 min
    assert kidney.alpha_beta_gy == 2.6  # kept from the shipped table
    assert kidney.sources["repair_half_time"].source == "site SOP"
    assert tissue("spleen", table).alpha_beta_gy == 3.0
    assert table.version == "1.0.0+site-1"
    with pytest.raises(RadiobiologyError) as exc:  # a replacing table must be complete
        load_tissues(site, merge=False)
    assert exc.value.field == "tissue.kidneys.alpha_beta"
    spleen_only = tmp_path / "spleen.toml"
    spleen_only.write_text(
        site.read_text(encoding="utf-8").split("[tissue.spleen]")[1].join(["[tissue.spleen]", ""]),
        encoding="utf-8",
    )
    only = load_tissues(spleen_only, merge=False)
    assert only.names() == ("spleen",)
    # the shipped table is untouched
    assert tissue("kidney").repair_half_time_h == 2.8


@pytest.mark.parametrize(
    ("entry", "field"),
    [
        (
            '{ value = 2.0, unit = "h", section = "x", status = "uncertain" }',
            "tissue.kidney.repair_half_time.source",
        ),
        (
            '{ value = 2.0, unit = "h", source = "s", section = "x", status = "sure" }',
            "tissue.kidney.repair_half_time.status",
        ),
        (
            '{ value = -2.0, unit = "h", source = "s", section = "x", status = "uncertain" }',
            "tissue.kidney.repair_half_time.value",
        ),
        (
            '{ value = 2.0, unit = "Gy", source = "s", section = "x", status = "uncertain" }',
            "tissue.kidney.repair_half_time.unit",
        ),
    ],
)
def test_bad_user_table_names_the_field(tmp_path, entry, field):
    site = tmp_path / "bad.toml"
    site.write_text(f"[tissue.kidney]\nrepair_half_time = {entry}\n", encoding="utf-8")
    with pytest.raises(RadiobiologyError) as exc:
        load_tissues(site)
    assert exc.value.field == field


# ----------------------------------------------------------------------------------------
# bad inputs


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda: DoseRate.mono(-1.0, 50.0), "dose_gy"),
        (lambda: DoseRate.mono(1.0, 0.0), "effective_half_life_h"),
        (lambda: DoseRate.mono(1.0, -50.0), "effective_half_life_h"),
        (lambda: DoseRate.mono(float("nan"), 50.0), "dose_gy"),
        (lambda: DoseRate.uptake_washout(1.0, 60.0, 50.0), "uptake_half_life_h"),
        (lambda: DoseRate.uptake_washout(1.0, 0.0, 50.0), "uptake_half_life_h"),
        (lambda: DoseRate((1.0, -2.0), (0.1, 0.05)), "amplitudes_gy_per_h"),
        (lambda: DoseRate((1.0,), (0.0,)), "rates_per_h"),
        (lambda: DoseRate((1.0, 2.0), (0.1,)), "amplitudes_gy_per_h/rates_per_h"),
        (lambda: Tissue("x", 0.0, 2.8), "alpha_beta_gy"),
        (lambda: Tissue("x", -2.6, 2.8), "alpha_beta_gy"),
        (lambda: Tissue("x", 2.6, 0.0), "repair_half_time_h"),
        (lambda: bed_gy(DoseRate.mono(1.0, 50.0), -2.6, 2.8), "alpha_beta_gy"),
        (lambda: bed_gy(DoseRate.mono(1.0, 50.0), 2.6, -2.8), "repair_half_time_h"),
        (lambda: bed_gy(DoseRate.mono(1.0, 50.0), 2.6), "repair_half_time_h"),
        (lambda: bed_gy(DoseRate.mono(1.0, 50.0), "kidney", 2.8), "repair_half_time_h"),
        (lambda: eqd2_gy(10.0, 0.0), "alpha_beta_gy"),
        (lambda: eqd2_gy(-1.0, 2.6), "bed_gy"),
        (lambda: bed_map_gy(np.array([1.0, -1.0]), 50.0, "kidney"), "dose_gy"),
        (lambda: bed_map_gy(np.array([1.0, np.nan]), 50.0, "kidney"), "dose_gy"),
        (lambda: bed_map_gy(np.ones(2), np.array([50.0, 0.0]), "kidney"), "effective_half_life_h"),
        (lambda: bed_map_gy(np.ones(3), np.ones(2), "kidney"), "effective_half_life_h"),
        (lambda: bed_map_gy(np.ones(2), 50.0, 0.0, 2.8), "alpha_beta_gy"),
        (lambda: g_factor(DoseRate.mono(0.0, 50.0), 2.8), "dose_rate"),
        (lambda: cumulative_bed_gy([1.0, -0.5]), "beds[1]"),
    ],
)
def test_bad_inputs_raise_naming_the_field(call, field):
    with pytest.raises(RadiobiologyError) as exc:
        call()
    assert exc.value.field == field


# ----------------------------------------------------------------------------------------
# closed forms against numerical integration


def test_numerical_reference_against_direct_dblquad():
    """Check the checker: the ODE convolution equals a direct double integral (scipy dblquad)."""
    d_gy, t_eff_h, t_rep_h = 10.0, 20.0, 2.8
    lam, mu = LN2 / t_eff_h, LN2 / t_rep_h
    rate = lambda t: d_gy * lam * math.exp(-lam * t)  # noqa: E731
    t_end = 40.0 * t_eff_h  # tail 2^-40 of the dose
    q, _ = integrate.dblquad(
        lambda w, t: 2.0 * rate(t) * rate(w) * math.exp(-mu * (t - w)),
        0.0,
        t_end,
        0.0,
        lambda t: t,
        epsabs=1e-12,
        epsrel=1e-10,
    )
    ab = 2.6
    bed_ode = bed_numerical_gy(rate, ab, t_rep_h, t_max_h=t_end)
    # both integrate the same definition numerically; 1e-7 is far above their tolerances
    assert_allclose(bed_ode, d_gy + q / ab, rtol=1e-7)


@pytest.mark.parametrize(
    ("label", "rate"),
    [
        ("mono", DoseRate.mono(20.0, 50.0)),
        ("mono-fast", DoseRate.mono(20.0, 3.0)),
        ("uptake-washout", DoseRate.uptake_washout(20.0, 2.0, 50.0)),
        # tri-exponential: kidney-like (biokinetics.md §3.2) slow 56 h, fast 2.9 h, uptake 0.5 h
        (
            "triexp",
            DoseRate.from_fit(
                SimpleNamespace(
                    model=TRIEXP, params=np.array([163.0, LN2 / 56, 89.0, LN2 / 2.9, LN2 / 0.5])
                ),
                20.0,
            ),
        ),
        (
            "biexp",
            DoseRate.from_fit(
                SimpleNamespace(model=BIEXP, params=np.array([162.8, LN2 / 56, 88.8, LN2 / 2.9])),
                20.0,
            ),
        ),
    ],
)
@pytest.mark.parametrize("tissue_name", ["kidney", "red_marrow", "tumour"])
def test_closed_form_matches_numerical_integration(label, rate, tissue_name):
    t = tissue(tissue_name)
    bed_num = bed_numerical_gy(rate, t)
    q_num = (bed_num - rate.dose_gy) * t.alpha_beta_gy
    # closed forms agree with the numerical integration to 1e-4 relative (the integrator
    # runs at rtol 1e-10); compared on the quadratic term itself, a stricter test than on
    # BED, where the linear term D dominates
    assert_allclose(quadratic_term_gy2(rate, t.repair_half_time_h), q_num, rtol=1e-4, err_msg=label)
    assert_allclose(bed_gy(rate, t), bed_num, rtol=1e-4, err_msg=label)


def test_mono_reduces_to_dale_1985():
    """Dale 1985 / MIRD 20 mono-exponential BED, written out in the test."""
    for d_gy in (0.5, 3.7, 23.0):
        for t_eff_h in (2.0, 50.0, 160.0):
            for name in ("kidney", "red_marrow", "liver", "tumour"):
                t = tissue(name)
                expected = dale_mono_bed(d_gy, t_eff_h, t.alpha_beta_gy, t.repair_half_time_h)
                got = bed_gy(DoseRate.mono(d_gy, t_eff_h), t)
                assert_allclose(got, expected, rtol=1e-12)
                # G = lambda / (lambda + mu) = T_rep / (T_rep + T_eff)
                assert_allclose(
                    g_factor(DoseRate.mono(d_gy, t_eff_h), t.repair_half_time_h),
                    t.repair_half_time_h / (t.repair_half_time_h + t_eff_h),
                    rtol=1e-12,
                )


def test_uptake_washout_matches_reference_closed_form():
    """clinical.md §5.6: G = lc lu (lc + lu + mu) / ((lc + lu)(lc + mu)(lu + mu))."""
    for t_up_h, t_eff_h, t_rep_h in [(2.0, 50.0, 2.8), (0.5, 70.0, 1.5), (10.0, 30.0, 0.5)]:
        lc, lu, mu = LN2 / t_eff_h, LN2 / t_up_h, LN2 / t_rep_h
        expected = lc * lu * (lc + lu + mu) / ((lc + lu) * (lc + mu) * (lu + mu))
        rate = DoseRate.uptake_washout(4.0, t_up_h, t_eff_h)
        assert_allclose(rate.dose_gy, 4.0, rtol=1e-13)
        assert_allclose(g_factor(rate, t_rep_h), expected, rtol=1e-10)


# ----------------------------------------------------------------------------------------
# limits


def test_long_half_life_limit_bed_equals_dose():
    # lambda -> 0: G = T_rep / (T_rep + T_eff) ~ 3e-9 for T_eff = 1e9 h
    rate = DoseRate.mono(10.0, 1e9)
    assert_allclose(bed_gy(rate, "kidney"), 10.0, rtol=1e-7)
    assert bed_map_gy(10.0, np.inf, "kidney") == 10.0


def test_short_half_life_limit_is_acute():
    # lambda -> inf: G -> 1, BED -> D (1 + D / (alpha/beta)) (single acute fraction)
    d_gy = 10.0
    for name in ("kidney", "red_marrow"):
        t = tissue(name)
        acute = d_gy * (1.0 + d_gy / t.alpha_beta_gy)
        assert_allclose(bed_gy(DoseRate.mono(d_gy, 1e-9), t), acute, rtol=1e-7)
        assert_allclose(bed_gy(DoseRate.uptake_washout(d_gy, 1e-10, 1e-9), t), acute, rtol=1e-7)


def test_zero_dose_gives_zero_bed():
    assert bed_gy(DoseRate.mono(0.0, 50.0), "kidney") == 0.0
    assert bed_map_gy(np.zeros(3), 50.0, "kidney").tolist() == [0.0, 0.0, 0.0]


def test_bed_scales_as_d_plus_g_d_squared():
    """BED is linear + quadratic in the dose scale for fixed kinetics (G unchanged)."""
    rate = DoseRate.uptake_washout(1.0, 2.0, 50.0)
    t = tissue("kidney")
    g = g_factor(rate, t.repair_half_time_h)
    for k in (0.5, 3.0, 25.0):
        assert_allclose(bed_gy(rate.scaled(k), t), k * (1.0 + g * k / t.alpha_beta_gy))


# ----------------------------------------------------------------------------------------
# EQD2


@pytest.mark.parametrize("ab_gy", [1.5, 2.6, 3.0, 10.0])
@pytest.mark.parametrize("n_fractions", [1, 5, 25])
def test_eqd2_of_2gy_fractions_is_identity(ab_gy, n_fractions):
    """n x 2 Gy: BED = n d (1 + d/(alpha/beta)) (fractionated LQ) -> EQD2 = n d."""
    d = 2.0
    bed = n_fractions * d * (1.0 + d / ab_gy)
    assert_allclose(eqd2_gy(bed, ab_gy), n_fractions * d, rtol=1e-14)


def test_eqd2_accepts_arrays_and_tissues():
    bed = np.array([0.0, 3.6, 36.0])
    assert_allclose(eqd2_gy(bed, "kidney"), bed / (1.0 + 2.0 / 2.6), rtol=1e-15)


# ----------------------------------------------------------------------------------------
# worked example


def test_worked_example_177lu_kidney_clinical_md():
    """177Lu-DOTATATE kidney cycle: the example of clinical.md §5.7 / §9.

    NOT a verified published worked example: no published BED example with all inputs
    (D, T_eff, alpha/beta, T_rep) and result could be retrieved and checked. The values
    below are computed in the project reference with the mono-exponential BED expression
    of Dale (1985) / MIRD Pamphlet 20 (Wessels et al., J Nucl Med 2008;49:1884)
    ``BED = D (1 + D T_rep / ((T_rep + T_eff) alpha/beta))`` and the kidney parameters
    alpha/beta = 2.6 Gy, T_rep = 2.8 h (clinical.md §5.6, the pair used by PyTheranostics):
    0.5 Gy/GBq x 7.4 GBq = 3.70 Gy, T_eff = 50 h -> G = 0.0530303, BED = 3.979 Gy,
    EQD2 = 2.25 Gy; a 2 h uptake phase gives G = 0.05218046 (clinical.md §9).
    Tolerances: half a unit in the last quoted digit.
    """
    kidney = tissue("kidney")
    d_gy = 0.5 * 7.4
    rate = DoseRate.mono(d_gy, 50.0)
    assert_allclose(g_factor(rate, kidney.repair_half_time_h), 0.0530303, atol=5e-8)
    bed = bed_gy(rate, kidney)
    assert_allclose(bed, 3.979, atol=5e-4)
    assert_allclose(eqd2_gy(bed, kidney.alpha_beta_gy), 2.25, atol=5e-3)
    uptake = DoseRate.uptake_washout(d_gy, 2.0, 50.0)
    assert_allclose(g_factor(uptake, kidney.repair_half_time_h), 0.05218046, atol=5e-9)
    # clinical.md §5.7: three such cycles give BED_prev = 11.94 Gy
    assert_allclose(cumulative_bed_gy([bed] * 3), 11.94, atol=5e-3)


# ----------------------------------------------------------------------------------------
# dose rate from a fit


def test_from_fit_scales_activity_curve_to_dose():
    from theranet.kinetics import fit_tac

    t_h = np.array([4.0, 24.0, 72.0, 168.0])
    a_mbq = 120.0 * np.exp(-LN2 / 56.0 * t_h)
    fit = fit_tac(t_h, a_mbq, "mono", nuclide="Lu-177")
    rate = DoseRate.from_fit(fit, 5.0)
    assert_allclose(rate.dose_gy, 5.0, rtol=1e-12)
    # exact mono-exponential data: the fitted rate is ln2/56 h to the fit's precision
    assert_allclose(rate.rates_per_h, [LN2 / 56.0], rtol=1e-6)
    assert_allclose(bed_gy(rate, "kidney"), dale_mono_bed(5.0, 56.0, 2.6, 2.8), rtol=1e-6)


@pytest.mark.parametrize(
    ("model", "params"),
    [
        (MONO, [163.0, LN2 / 56]),
        (BIEXP_UPTAKE, [29.6, LN2 / 88.7, LN2 / 88.7 + LN2 / 3.0]),
        (BIEXP, [162.8, LN2 / 56, 88.8, LN2 / 2.9]),
        (TRIEXP, [163.0, LN2 / 56, 89.0, LN2 / 2.9, LN2 / 0.5]),
    ],
)
def test_from_fit_dose_rate_is_proportional_to_activity(model, params):
    p = np.array(params)
    rate = DoseRate.from_fit(SimpleNamespace(model=model, params=p), 7.0)
    t_h = np.array([0.0, 1.0, 10.0, 100.0, 500.0])
    tia = integrate.quad(lambda t: float(model.evaluate(p, t)), 0.0, np.inf, limit=200)[0]
    assert_allclose(rate.dose_gy, 7.0, rtol=1e-12)
    assert_allclose(rate.evaluate(t_h), 7.0 * model.evaluate(p, t_h) / tia, rtol=1e-7, atol=1e-15)


def test_from_fit_rejects_non_exponential_or_bad_fit():
    with pytest.raises(RadiobiologyError) as exc:
        DoseRate.from_fit(SimpleNamespace(model=SimpleNamespace(name="spline"), params=[1]), 1.0)
    assert exc.value.field == "fit_result.model"
    with pytest.raises(RadiobiologyError) as exc:
        DoseRate.from_fit(SimpleNamespace(model=MONO, params=np.array([1.0, 0.0])), 1.0)
    assert exc.value.field == "fit_result.params"
    with pytest.raises(RadiobiologyError) as exc:
        DoseRate.from_fit(object(), 1.0)
    assert exc.value.field == "fit_result"


# ----------------------------------------------------------------------------------------
# BED maps


def test_bed_map_matches_dale_per_voxel():
    rng = np.random.default_rng(7)
    dose = rng.uniform(0.0, 30.0, size=(3, 4, 5))
    t_eff = rng.uniform(5.0, 150.0, size=(3, 4, 5))
    expected = np.vectorize(dale_mono_bed)(dose, t_eff, 2.6, 2.8)
    assert_allclose(bed_map_gy(dose, t_eff, "kidney"), expected, rtol=1e-13)
    assert_allclose(bed_map_gy(dose, t_eff, 2.6, 2.8), expected, rtol=1e-13)
    # scalar half-life broadcasts; scalar in, float out
    assert bed_map_gy(dose, 50.0, "kidney").shape == dose.shape
    assert isinstance(bed_map_gy(3.7, 50.0, "kidney"), float)
    assert_allclose(bed_map_gy(3.7, 50.0, "kidney"), 3.979, atol=5e-4)


# ----------------------------------------------------------------------------------------
# cycles


def test_cycles_add_in_bed_not_in_dose():
    kidney = tissue("kidney")
    rate = DoseRate.mono(3.7, 50.0)
    cycles = [CycleBED.from_dose_rate(rate, kidney, cycle=k) for k in range(1, 5)]
    per_cycle = dale_mono_bed(3.7, 50.0, 2.6, 2.8)
    assert_allclose(cumulative_bed_gy(cycles), 4 * per_cycle, rtol=1e-12)
    assert_allclose(cumulative_bed_gy([c.bed_gy for c in cycles]), 4 * per_cycle, rtol=1e-12)
    # BED of the summed dose would count a quadratic term between cycles weeks apart
    assert cumulative_bed_gy(cycles) < dale_mono_bed(4 * 3.7, 50.0, 2.6, 2.8)
    c = cycles[0]
    assert (c.cycle, c.tissue, c.alpha_beta_gy, c.repair_half_time_h) == (1, "kidney", 2.6, 2.8)
    assert_allclose(c.g_factor, 2.8 / 52.8, rtol=1e-12)
    assert_allclose(c.eqd2_gy, per_cycle / (1 + 2 / 2.6), rtol=1e-12)
    assert cumulative_bed_gy([]) == 0.0


def test_cumulative_bed_of_maps():
    maps = [np.full((2, 2), 1.5), np.full((2, 2), 2.0)]
    assert_allclose(cumulative_bed_gy(maps), np.full((2, 2), 3.5))
    with pytest.raises(RadiobiologyError):
        cumulative_bed_gy([np.ones((2, 2)), np.ones((3, 3))])


# --------------------------------------------------------------------------- piecewise dose rate


def test_piecewise_constant_block_by_hand():
    """Constant dose rate p for h hours, nothing after: Y = p (1 - e^{-mu t}) / mu, so
    Q = 2 p^2 / mu * (h - (1 - e^{-mu h}) / mu) (Dale 1985, continuous irradiation)."""
    from theranet.radiobiology import PiecewiseDoseRate

    p, h, t_rep = 0.2, 6.0, 2.8
    mu = LN2 / t_rep
    rate = PiecewiseDoseRate((0.0, h), (p, p), 0.0, 1.0)
    want = 2.0 * p**2 / mu * (h - (1.0 - math.exp(-mu * h)) / mu)
    assert rate.dose_gy == pytest.approx(p * h, rel=1e-14)
    assert quadratic_term_gy2(rate, t_rep) == pytest.approx(want, rel=1e-12)


def test_piecewise_tail_alone_is_the_mono_exponential():
    """Knots (0,), tail c e^{-lambda t}: G = lambda / (lambda + mu) (Dale 1985)."""
    from theranet.radiobiology import PiecewiseDoseRate

    lam, t_rep = LN2 / 50.0, 2.8
    rate = PiecewiseDoseRate((0.0,), (1.0,), 1.0, lam)
    assert g_factor(rate, t_rep) == pytest.approx(lam / (lam + LN2 / t_rep), rel=1e-12)


@pytest.mark.parametrize("tissue_name", ["kidney", "red_marrow", "tumour"])
def test_piecewise_closed_form_matches_numerical_integration(tissue_name):
    """Head held constant to 4 h, straight lines through 24 and 96 h, fitted tail from
    96 h (the hybrid rule): the closed form against the ODE integration of Dale's
    definition (bed_numerical_gy, rtol 1e-10) to 1e-5 on the quadratic term."""
    from theranet.radiobiology import PiecewiseDoseRate

    lam = LN2 / 60.0
    rate = PiecewiseDoseRate(
        (0.0, 4.0, 24.0, 96.0), (0.30, 0.30, 0.12, 0.06), 0.06 * math.exp(lam * 96.0) * 1.02, lam
    )
    t = tissue(tissue_name)
    bed_num = bed_numerical_gy(rate.evaluate, t, t_max_h=96.0 + 60.0 * 60.0)
    dose_num = bed_numerical_gy(rate.evaluate, 1e30, 1.0, t_max_h=96.0 + 60.0 * 60.0)
    assert dose_num == pytest.approx(rate.dose_gy, rel=1e-7)
    q_num = (bed_num - dose_num) * t.alpha_beta_gy
    assert quadratic_term_gy2(rate, t.repair_half_time_h) == pytest.approx(q_num, rel=1e-5)
    assert bed_gy(rate, t) == pytest.approx(bed_num, rel=1e-6)


def test_piecewise_converges_to_the_exponential_it_samples():
    """Straight lines through a finely sampled mono-exponential give Dale's G of that
    exponential (second-order convergence: 1e-4 with 0.25 h steps)."""
    from theranet.radiobiology import PiecewiseDoseRate

    lam, t_rep = LN2 / 50.0, 2.8
    knots = np.arange(0.0, 200.0 + 1e-9, 0.25)
    rate = PiecewiseDoseRate(tuple(knots), tuple(np.exp(-lam * knots)), 1.0, lam)
    assert g_factor(rate, t_rep) == pytest.approx(lam / (lam + LN2 / t_rep), rel=1e-4)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        (dict(knots_h=(1.0, 2.0), rates_gy_per_h=(1.0, 1.0)), "knots_h"),
        (dict(knots_h=(0.0, 2.0, 2.0), rates_gy_per_h=(1.0, 1.0, 1.0)), "knots_h"),
        (dict(knots_h=(0.0, 2.0), rates_gy_per_h=(1.0, -1.0)), "rates_gy_per_h"),
        (dict(knots_h=(0.0, 2.0), rates_gy_per_h=(1.0,)), "knots_h/rates_gy_per_h"),
    ],
)
def test_piecewise_bad_input_names_the_field(kwargs, field):
    from theranet.radiobiology import PiecewiseDoseRate

    with pytest.raises(RadiobiologyError) as info:
        PiecewiseDoseRate(**kwargs, tail_amplitude_gy_per_h=1.0, tail_rate_per_h=0.1)
    assert info.value.field == field
