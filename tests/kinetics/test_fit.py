"""Tests of theranet.kinetics.fit: fits, coverage, model selection, bootstrap, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from theranet.errors import NuclideError, TimingError
from theranet.kinetics.fit import bootstrap_tia, fit_tac, select_model
from theranet.kinetics.models import BIEXP, KineticsError, get_model
from theranet.nuclides import Nuclide

LN2 = math.log(2.0)
LAM_LU = Nuclide("Lu-177").decay_constant_per_h
CLINICAL_T = np.array([4.0, 24.0, 96.0, 168.0])
TRI_T = np.array([1.0, 4.0, 24.0, 48.0, 96.0, 168.0])

# Generating parameters (biokinetics.md §3.2, 7.4 GBq 177Lu-DOTATATE):
# kidneys slow 0.022 IA at T_eff 56 h + fast 0.012 IA at T_eff 2.9 h, uptake half-time 0.5 h;
# tumour 0.004 IA (20 g at 2e-4 /g), T_eff 88.7 h, uptake half-time 3 h.
KID_MONO = (163.0, LN2 / 56.0)
KID_BI = (162.8, LN2 / 56.0, 88.8, LN2 / 2.9)
KID_TRI = (163.0, LN2 / 56.0, 89.0, LN2 / 2.9, LN2 / 0.5)
TUMOUR = (29.6, LN2 / 88.7, LN2 / 88.7 + LN2 / 3.0)


# ---------------------------------------------------------------- noise-free acceptance


def test_noise_free_mono_tia():
    a1, l1 = KID_MONO
    truth = a1 / l1  # analytic: A1/lambda1 = A1 T_eff/ln2 (clinical.md §6.3)
    fit = fit_tac(CLINICAL_T, a1 * np.exp(-l1 * CLINICAL_T), "mono", nuclide="Lu-177")
    assert fit.success
    assert fit.tia_mbq_h == pytest.approx(truth, rel=5e-3)  # acceptance: within 0.5 %


@pytest.mark.parametrize("times", [CLINICAL_T, TRI_T], ids=["4pt", "6pt"])
def test_noise_free_biexp_tia(times):
    a1, l1, a2, l2 = KID_BI
    truth = a1 / l1 + a2 / l2  # sum A_i/lambda_i (clinical.md §6.3)
    data = a1 * np.exp(-l1 * times) + a2 * np.exp(-l2 * times)
    fit = fit_tac(times, data, "biexp", nuclide="Lu-177")
    assert fit.tia_mbq_h == pytest.approx(truth, rel=5e-3)  # acceptance: within 0.5 %


def test_noise_free_biexp_uptake_tia():
    a1, l1, l2 = TUMOUR
    truth = a1 * (1 / l1 - 1 / l2)  # A1 (1/l1 - 1/l2) (clinical.md §6.3)
    data = a1 * (np.exp(-l1 * CLINICAL_T) - np.exp(-l2 * CLINICAL_T))
    fit = fit_tac(CLINICAL_T, data, "biexp_uptake", nuclide="Lu-177")
    assert fit.tia_mbq_h == pytest.approx(truth, rel=5e-3)  # acceptance: within 0.5 %


def test_noise_free_triexp_tia():
    a1, l1, a2, l2, l3 = KID_TRI
    truth = a1 / l1 + a2 / l2 - (a1 + a2) / l3  # by hand from the generating parameters
    data = a1 * np.exp(-l1 * TRI_T) + a2 * np.exp(-l2 * TRI_T) - (a1 + a2) * np.exp(-l3 * TRI_T)
    fit = fit_tac(TRI_T, data, "triexp", nuclide="Lu-177")
    assert fit.tia_mbq_h == pytest.approx(truth, rel=5e-3)  # acceptance: within 0.5 %
    np.testing.assert_allclose(fit.params, KID_TRI, rtol=1e-3)


# ---------------------------------------------------------------- noisy acceptance (Monte Carlo)

# 10 % Gaussian relative noise with known sigma (sigma_i = 0.1 A_true(t_i)), 500 seeded
# realisations per case. Acceptance: |mean bias| < 2 %, and the reported 1-sigma interval
# covers the true TIA in 60-76 % of realisations (nominal 68.3 %; binomial SD 2.1 % at n=500).
MC_CASES = {
    "kidney-mono-4pt": ("mono", KID_MONO, CLINICAL_T),
    "kidney-biexp-6pt": ("biexp", KID_BI, TRI_T),
    "tumour-uptake-4pt": ("biexp_uptake", TUMOUR, CLINICAL_T),
}


@pytest.mark.parametrize("case", list(MC_CASES))
def test_noisy_bias_and_coverage(case):
    name, params, times = MC_CASES[case]
    model = get_model(name)
    truth_curve = model.evaluate(params, times)
    truth = model.integral(params)
    sigma = 0.1 * truth_curve
    rng = np.random.default_rng(20240611)
    # activities cannot be negative; at 10 % noise a clip at 0 never triggers (> 9 SD)
    data = np.maximum(truth_curve + sigma * rng.standard_normal((500, times.size)), 0.0)
    tia = np.empty(len(data))
    sd = np.empty(len(data))
    for i, row in enumerate(data):
        fit = fit_tac(times, row, name, nuclide="Lu-177", sigma_mbq=sigma)
        assert fit.success
        tia[i], sd[i] = fit.tia_mbq_h, fit.tia_sd_mbq_h
    bias = tia.mean() / truth - 1.0
    coverage = np.mean(np.abs(tia - truth) <= sd)
    assert abs(bias) < 0.02, f"{case}: bias {bias:+.4f}"
    assert 0.60 <= coverage <= 0.76, f"{case}: coverage {coverage:.3f}"


# ---------------------------------------------------------------- weights and covariance


def test_known_sigma_covariance_is_the_linear_ls_result():
    # physical model is linear in A1: Var(A1) = 1 / sum(w e^{-2 lambda t}) exactly (linear LS)
    t = np.array([4.0, 24.0, 96.0, 168.0])
    sigma = np.array([2.0, 1.5, 1.0, 0.5])
    data = np.array([98.0, 90.5, 66.0, 47.0])
    fit = fit_tac(t, data, "physical", nuclide="Lu-177", sigma_mbq=sigma)
    e = np.exp(-LAM_LU * t)
    w = 1 / sigma**2
    a1 = np.sum(w * e * data) / np.sum(w * e * e)
    var = 1 / np.sum(w * e * e)
    assert fit.params[0] == pytest.approx(a1, rel=1e-8)
    assert fit.covariance[0, 0] == pytest.approx(var, rel=1e-8)
    assert not fit.covariance_scaled
    assert fit.tia_sd_mbq_h == pytest.approx(math.sqrt(var) / LAM_LU, rel=1e-8)
    chi2 = float(np.sum(w * (data - a1 * e) ** 2))
    assert fit.chi2 == pytest.approx(chi2, rel=1e-8)
    assert "1/sigma_mbq^2" in fit.weighting and "not scaled" in fit.weighting


def test_default_weights_scale_covariance_by_reduced_chi2():
    # default sigma_i = sqrt(A_i) (scale unknown): covariance x chi2/(n-K) (linear LS, exact)
    t = np.array([4.0, 24.0, 96.0, 168.0])
    data = np.array([98.0, 90.5, 66.0, 47.0])
    fit = fit_tac(t, data, "physical", nuclide="Lu-177")
    e = np.exp(-LAM_LU * t)
    w = 1 / data
    a1 = np.sum(w * e * data) / np.sum(w * e * e)
    chi2 = float(np.sum(w * (data - a1 * e) ** 2))
    assert fit.covariance_scaled
    assert fit.covariance[0, 0] == pytest.approx(chi2 / 3 / np.sum(w * e * e), rel=1e-8)
    assert "Poisson-like" in fit.weighting


def test_aicc_follows_the_small_sample_formula():
    rng = np.random.default_rng(1)
    data = np.array(BIEXP.evaluate(KID_BI, TRI_T)) * (1 + 0.05 * rng.standard_normal(6))
    fit = fit_tac(TRI_T, data, "biexp", nuclide="Lu-177", sigma_mbq=0.05 * data)
    n, k = 6, 4
    resid = (data - fit.evaluate(TRI_T)) / (0.05 * data)
    chi2 = float(resid @ resid)
    # clinical.md §6.2: AIC = n ln(RSS/n) + 2K, AICc = AIC + 2K(K+1)/(n-K-1)
    aic = n * math.log(chi2 / n) + 2 * k
    assert fit.aic == pytest.approx(aic, rel=1e-9)
    assert fit.aicc == pytest.approx(aic + 2 * k * (k + 1) / (n - k - 1), rel=1e-9)
    mono = fit_tac(CLINICAL_T, data[2:], "mono", nuclide="Lu-177")
    assert math.isnan(fit_tac(CLINICAL_T[1:], data[3:], "mono", nuclide="Lu-177").aicc)
    assert math.isfinite(mono.aicc)  # n = 4 > K + 1 = 3


def test_terminal_rate_is_bounded_by_physical_decay():
    # slower than physical decay (T_eff 300 h > T_phys 159.5 h) is impossible without decay
    # correction: the fit stops at lambda_phys and says so
    data = 100 * np.exp(-LN2 / 300.0 * CLINICAL_T)
    fit = fit_tac(CLINICAL_T, data, "mono", nuclide="Lu-177")
    assert fit.params[1] == pytest.approx(LAM_LU, rel=1e-4)
    assert "lambda1_per_h" in fit.at_bound
    assert any("bound" in w for w in fit.warnings)
    free = fit_tac(CLINICAL_T, data, "mono", nuclide="Lu-177", allow_slower_than_physical=True)
    assert free.params[1] == pytest.approx(LN2 / 300.0, rel=1e-6)


def test_washout_phase_half_life_is_bounded_by_the_sampling():
    # default shortest washout half-life = t_first/4 -> lambda2 - lambda1 <= ln2/(t1/4)
    fit = fit_tac(TRI_T, BIEXP.evaluate(KID_BI, TRI_T), "biexp", nuclide="Lu-177")
    assert fit.washout_max_per_h == pytest.approx(LN2 / (TRI_T[0] / 4), rel=1e-12)
    fast = (150.0, LN2 / 56.0, 500.0, LN2 / 0.05)  # 3-min phase, unresolvable from 1 h
    fit = fit_tac(TRI_T, BIEXP.evaluate(fast, TRI_T) * 1.0, "biexp", nuclide="Lu-177")
    assert fit.params[3] - fit.params[1] <= fit.washout_max_per_h * (1 + 1e-9)
    assert np.isfinite(fit.tia_mbq_h)


def test_fit_result_is_read_only():
    fit = fit_tac(CLINICAL_T, BIEXP.evaluate(KID_BI, CLINICAL_T), "mono", nuclide="Lu-177")
    with pytest.raises(ValueError):
        fit.params[0] = 1.0
    assert set(fit.params_dict) == {"a1_mbq", "lambda1_per_h"}


# ---------------------------------------------------------------- model selection


def test_select_two_points_mono_through_both():
    t = np.array([24.0, 96.0])
    data = 100 * np.exp(-LN2 / 56.0 * t)
    sel = select_model(t, data, nuclide="Lu-177")
    assert sel.best.model_name == "mono"
    # exact mono through both points: TIA = A0/lambda = 100*56/ln2
    assert sel.best.tia_mbq_h == pytest.approx(100 * 56 / LN2, rel=1e-6)


def test_select_two_rising_points_gives_physical_tail():
    sel = select_model([24.0, 96.0], [50.0, 60.0], nuclide="Lu-177")
    assert sel.best.model_name == "physical"
    assert "physical" in sel.rule


def test_select_three_points_never_fits_more_than_two_parameters():
    t = np.array([4.0, 24.0, 96.0])
    a1, l1, l2 = TUMOUR
    rising = a1 * (np.exp(-l1 * t) - np.exp(-l2 * t))
    sel = select_model(t, rising, nuclide="Lu-177")
    assert {"biexp_uptake", "biexp", "triexp"} <= set(sel.excluded)
    assert sel.best.model_name == "mono"
    assert sel.best.n_points == 2  # rising: mono through the last two points (§6.2)
    falling = 100 * np.exp(-LN2 / 56 * t)
    assert select_model(t, falling, nuclide="Lu-177").best.n_points == 3


def test_select_aicc_with_six_points_finds_biexp():
    sel = select_model(TRI_T, BIEXP.evaluate(KID_BI, TRI_T), nuclide="Lu-177")
    assert sel.best.model_name == "biexp"
    assert "triexp" in sel.excluded  # n = 6 is not > K + 1 = 6
    w = dict(sel.akaike_weights)
    assert sum(w.values()) == pytest.approx(1.0, abs=1e-12)
    # Akaike weights exp(-D/2)/sum exp(-D/2) (clinical.md §6.2)
    amin = min(sel.aicc[k] for k in w)
    norm = sum(math.exp(-(sel.aicc[k] - amin) / 2) for k in w)
    for k, v in w.items():
        assert v == pytest.approx(math.exp(-(sel.aicc[k] - amin) / 2) / norm, rel=1e-12)


def test_select_four_points_only_models_with_defined_aicc():
    sel = select_model(CLINICAL_T, BIEXP.evaluate(KID_BI, CLINICAL_T), nuclide="Lu-177")
    assert set(sel.fits) == {"physical", "mono"}
    assert {"biexp_uptake", "biexp", "triexp"} <= set(sel.excluded)


def test_f_test_statistic_and_p_value():
    rng = np.random.default_rng(5)
    data = BIEXP.evaluate(KID_BI, TRI_T) * (1 + 0.03 * rng.standard_normal(6))
    sigma = 0.03 * BIEXP.evaluate(KID_BI, TRI_T)
    sel = select_model(TRI_T, data, sigma, nuclide="Lu-177", criterion="f-test")
    mono, bi = sel.fits["mono"], sel.fits["biexp"]
    # clinical.md §6.2: F = [(RSS_s - RSS_c)/(K_c - K_s)] / [RSS_c/(n - K_c)]
    f = ((mono.chi2 - bi.chi2) / 2) / (bi.chi2 / 2)
    assert sel.f_tests["mono<biexp"][0] == pytest.approx(f, rel=1e-9)
    assert sel.f_tests["mono<biexp"][1] == pytest.approx(stats.f.sf(f, 2, 2), rel=1e-9)
    expected = "biexp" if stats.f.sf(f, 2, 2) < 0.05 else "mono"
    assert sel.best.model_name == expected


# ---------------------------------------------------------------- bootstrap


def test_parametric_bootstrap_matches_the_exact_sd_of_a_linear_fit():
    # physical model: TIA = A1/lambda, A1 linear in the data -> SD exactly
    # 1/(lambda sqrt(sum w e^{-2 lambda t})); bootstrap SD rel. SE 1/sqrt(2 n) = 2.5 %
    t = np.array([4.0, 24.0, 96.0, 168.0])
    sigma = np.array([5.0, 4.0, 3.0, 2.0])
    fit = fit_tac(t, [98.0, 90.5, 66.0, 47.0], "physical", nuclide="Lu-177", sigma_mbq=sigma)
    exact = 1 / (LAM_LU * math.sqrt(np.sum(np.exp(-2 * LAM_LU * t) / sigma**2)))
    boot = bootstrap_tia(fit, n_boot=800, method="parametric", seed=11)
    assert boot.n_failed == 0
    assert boot.sd_mbq_h == pytest.approx(exact, rel=0.10)  # 4 SE
    assert boot.mean_mbq_h == pytest.approx(fit.tia_mbq_h, abs=4 * exact / math.sqrt(800))
    again = bootstrap_tia(fit, n_boot=800, method="parametric", seed=11)
    np.testing.assert_array_equal(boot.tia_samples_mbq_h, again.tia_samples_mbq_h)
    lo, hi = boot.interval_mbq_h(0.95)
    assert lo < fit.tia_mbq_h < hi


def test_residual_bootstrap_sd_of_a_linear_fit():
    # resampled standardised residuals e_i (variance v = mean(e^2) - mean(e)^2) give a
    # TIA SD of exact_sd * sqrt(v) for the linear physical model; MC tolerance 10 %
    t = np.array([2.0, 4.0, 8.0, 24.0, 48.0, 72.0, 96.0, 120.0, 144.0, 168.0])
    rng = np.random.default_rng(2)
    sigma = np.full(t.size, 2.0)
    data = 100 * np.exp(-LAM_LU * t) + sigma * rng.standard_normal(t.size)
    fit = fit_tac(t, data, "physical", nuclide="Lu-177", sigma_mbq=sigma)
    e = (data - fit.evaluate(t)) / sigma * math.sqrt(t.size / (t.size - 1))
    exact = 1 / (LAM_LU * math.sqrt(np.sum(np.exp(-2 * LAM_LU * t) / sigma**2)))
    boot = bootstrap_tia(fit, n_boot=800, method="residual", seed=4)
    assert boot.sd_mbq_h == pytest.approx(exact * math.sqrt(np.var(e)), rel=0.10)


def test_bootstrap_bad_arguments():
    fit = fit_tac(CLINICAL_T, [98.0, 90.5, 66.0, 47.0], "mono", nuclide="Lu-177")
    with pytest.raises(KineticsError, match="replicates"):
        bootstrap_tia(fit, n_boot=1)
    with pytest.raises(KineticsError, match="unknown bootstrap method"):
        bootstrap_tia(fit, method="jackknife")
    exact = fit_tac(CLINICAL_T[:2], [98.0, 90.5], "mono", nuclide="Lu-177")
    with pytest.raises(KineticsError, match="degrees of freedom"):
        bootstrap_tia(exact, method="residual")


# ---------------------------------------------------------------- bad input


GOOD_T = [4.0, 24.0, 96.0, 168.0]
GOOD_A = [90.0, 80.0, 50.0, 30.0]


@pytest.mark.parametrize(
    ("times", "acts", "error", "field", "problem"),
    [
        ([4.0, 96.0, 24.0, 168.0], GOOD_A, TimingError, "times_h", "increasing"),
        ([4.0, 24.0, 24.0, 168.0], GOOD_A, TimingError, "times_h", "duplicate"),
        ([-1.0, 24.0, 96.0, 168.0], GOOD_A, TimingError, "times_h", "before injection"),
        ([4.0, np.nan, 96.0, 168.0], GOOD_A, TimingError, "times_h", "NaN"),
        (GOOD_T, [90.0, -1.0, 50.0, 30.0], KineticsError, "activities_mbq", "negative"),
        (GOOD_T, [0.0, 0.0, 0.0, 0.0], KineticsError, "activities_mbq", "all activities are zero"),
        (GOOD_T, [90.0, np.nan, 50.0, 30.0], KineticsError, "activities_mbq", "NaN"),
        (GOOD_T, [90.0, 80.0, 50.0], KineticsError, "activities_mbq", "length"),
    ],
)
def test_bad_curves_are_refused(times, acts, error, field, problem):
    with pytest.raises(error) as exc:
        fit_tac(times, acts, "mono", nuclide="Lu-177")
    assert exc.value.field == field
    assert problem in exc.value.problem
    assert exc.value.value is not None and exc.value.fix


def test_fewer_points_than_parameters():
    with pytest.raises(KineticsError) as exc:
        fit_tac(GOOD_T, GOOD_A, "triexp", nuclide="Lu-177")
    assert exc.value.field == "times_h" and exc.value.value == 4
    assert "fewer than the 5 parameters" in exc.value.problem


def test_three_points_refuse_three_parameter_models():
    with pytest.raises(KineticsError) as exc:
        fit_tac(GOOD_T[:3], GOOD_A[:3], "biexp_uptake", nuclide="Lu-177")
    assert exc.value.field == "model" and "§6.2" in exc.value.problem


def test_bad_sigma_model_and_nuclide():
    with pytest.raises(KineticsError, match="finite and > 0"):
        fit_tac(GOOD_T, GOOD_A, "mono", nuclide="Lu-177", sigma_mbq=[1.0, 0.0, 1.0, 1.0])
    with pytest.raises(KineticsError) as exc:
        fit_tac(GOOD_T, GOOD_A, "quadexp", nuclide="Lu-177")
    assert exc.value.field == "model"
    with pytest.raises(NuclideError):
        fit_tac(GOOD_T, GOOD_A, "mono", nuclide=None)
    with pytest.raises(NuclideError):
        fit_tac(GOOD_T, GOOD_A, "mono", nuclide="Xx-999")
    # a physical model built for another nuclide than the data's
    with pytest.raises(NuclideError):
        fit_tac(GOOD_T, GOOD_A, get_model("physical", 0.0108), nuclide="Lu-177")
    with pytest.raises(KineticsError, match="criterion"):
        select_model(GOOD_T, GOOD_A, nuclide="Lu-177", criterion="bic")
    with pytest.raises(KineticsError, match="one time point"):
        select_model([24.0], [10.0], nuclide="Lu-177")


def test_terminal_rate_above_physical_is_not_taken_for_its_bound():
    """Terminal rate 1.5 x lambda_phys (biological 300 h) with an uptake far faster than
    the first sample: lambda1 is 2.3e-3 /h above its bound lambda_phys, so it is free
    (its distance is judged on the scale of lambda_phys, not of the fastest rate)."""
    lam_p = Nuclide("Lu-177").decay_constant_per_h
    lam1 = lam_p + math.log(2) / 300.0
    t = np.array([1.0, 4.0, 24.0, 96.0, 168.0])
    a = 100.0 * (np.exp(-lam1 * t) - np.exp(-30.0 * t)) * np.array([1.01, 0.99, 1.0, 1.01, 0.99])
    fit = fit_tac(t, a, "biexp_uptake", nuclide="Lu-177")
    assert "lambda1_per_h" not in fit.at_bound
    assert fit.params[1] == pytest.approx(lam1, rel=0.05)
    assert not any("biological clearance" in w for w in fit.warnings)
