"""Tests of theranet.kinetics.uncertainty: EANM (Gear 2018) chain and TIA combination."""

from __future__ import annotations

import math

import numpy as np
import pytest

from theranet.kinetics.fit import fit_tac
from theranet.kinetics.integrate import trapezoid_tia
from theranet.kinetics.models import BIEXP, MONO, KineticsError
from theranet.kinetics.uncertainty import (
    activity_uncertainty,
    recovery_uncertainty,
    tia_uncertainty,
)
from theranet.nuclides import Nuclide

LN2 = math.log(2.0)
LAM_LU = Nuclide("Lu-177").decay_constant_per_h


def test_activity_chain_by_hand():
    # A = R/(CF RC); (u_A/A)^2 = (u_R/R)^2 + (u_CF/CF)^2 + (u_RC/RC)^2 (clinical.md §6.5)
    # R = 1000 cps for 900 s -> N = 9e5, u_R/R = 1/sqrt(9e5); CF 10 +/- 0.3; RC 0.8 +/- 0.04
    au = activity_uncertainty(
        [1000.0],
        10.0,
        acquisition_s=900.0,
        u_calibration_cps_per_mbq=0.3,
        recovery=0.8,
        u_recovery=0.04,
    )
    assert au.activity_mbq[0] == pytest.approx(125.0, rel=1e-14)
    expected = math.sqrt(1 / 9e5 + 0.03**2 + 0.05**2)
    assert au.u_total_rel[0] == pytest.approx(expected, rel=1e-12)
    assert au.sigma_total_mbq[0] == pytest.approx(125.0 * expected, rel=1e-12)


def test_extra_count_term_adds_in_quadrature():
    au = activity_uncertainty([400.0], 8.0, acquisition_s=100.0, u_count_extra_rel=0.04)
    # Poisson 1/sqrt(4e4) = 0.005 and VOI 0.04 in quadrature
    assert au.u_count_rel[0] == pytest.approx(math.hypot(0.005, 0.04), rel=1e-12)


def test_recovery_uncertainty_from_a_sigmoid_rc_curve():
    # RC(V) = RCmax/(1 + (V0/V)^n) (clinical.md §4.6); dRC/dV = RCmax n (V0/V)^n /
    # (V (1 + (V0/V)^n)^2) by hand; u_RC = |dRC/dV| u_V. Central difference: 1e-7 rel.
    rc_max, v0, n = 0.95, 4.0, 1.3

    def rc(v: float) -> float:
        return rc_max / (1 + (v0 / v) ** n)

    v, u_v = 10.0, 1.5
    r = (v0 / v) ** n
    deriv = rc_max * n * r / (v * (1 + r) ** 2)
    value, u_rc = recovery_uncertainty(rc, v, u_v)
    assert value == pytest.approx(rc(v), rel=1e-14)
    assert u_rc == pytest.approx(deriv * u_v, rel=1e-7)
    _, u_exact = recovery_uncertainty(rc, v, u_v, rc_derivative=lambda _: deriv)
    assert u_exact == pytest.approx(deriv * u_v, rel=1e-14)


def test_calibration_goes_to_the_scale_not_to_the_fit_sigmas():
    au = activity_uncertainty(
        [1000.0, 600.0, 200.0],
        10.0,
        acquisition_s=[900.0, 900.0, 1200.0],
        u_calibration_cps_per_mbq=0.3,
        recovery=0.8,
        u_recovery=0.04,
    )
    poisson = 1 / np.sqrt(np.array([1000.0, 600.0, 200.0]) * [900.0, 900.0, 1200.0])
    # common RC (one volume): both CF and RC are correlated -> scale term, fit sigma Poisson only
    np.testing.assert_allclose(au.sigma_fit_mbq, au.activity_mbq * poisson, rtol=1e-12)
    assert au.u_scale_rel == pytest.approx(math.hypot(0.03, 0.05), rel=1e-12)
    per_point = activity_uncertainty(
        [1000.0, 600.0, 200.0],
        10.0,
        acquisition_s=[900.0, 900.0, 1200.0],
        u_calibration_cps_per_mbq=0.3,
        recovery=[0.8, 0.7, 0.6],
        u_recovery=[0.04, 0.07, 0.03],
        recovery_correlated=False,
    )
    rc_rel = np.array([0.05, 0.1, 0.05])
    np.testing.assert_allclose(
        per_point.sigma_fit_mbq,
        per_point.activity_mbq * np.sqrt(poisson**2 + rc_rel**2),
        rtol=1e-12,
    )
    assert per_point.u_scale_rel == pytest.approx(0.03, rel=1e-12)


def test_tia_combination_adds_the_correlated_term_once():
    # (u/TIA)^2 = (u_fit/TIA)^2 + u_CF^2 + u_RC^2 (Gear 2018 framework; clinical.md §6.5)
    t = np.array([4.0, 24.0, 96.0, 168.0])
    a = 163.0 * np.exp(-LN2 / 56 * t)
    fit = fit_tac(t, a, "mono", nuclide="Lu-177", sigma_mbq=0.05 * a)
    res = tia_uncertainty(fit, calibration_rel=0.03, recovery_rel=0.04)
    rel_fit = fit.tia_sd_mbq_h / fit.tia_mbq_h
    expected = fit.tia_mbq_h * math.sqrt(rel_fit**2 + 0.03**2 + 0.04**2)
    assert res.u_total_mbq_h == pytest.approx(expected, rel=1e-12)
    assert res.u_scale_rel == pytest.approx(0.05, rel=1e-12)
    trap = trapezoid_tia(t, a, nuclide="Lu-177", sigma_mbq=0.05 * a)
    res = tia_uncertainty(trap, calibration_rel=0.03)
    assert res.u_fit_mbq_h == trap.sd_mbq_h


def test_correlated_calibration_error_scales_the_tia_exactly():
    # Linear propagation of a fully correlated calibration error through the (linear)
    # physical-model fit: V_A = u^2 A A^T, dTIA/dA_i = w_i e_i/(lambda sum w e^2), so
    # u(TIA) = u * |J.A| = u * TIA for data on the model: the TIA relative variance gets u^2
    # once. Treating the same error as independent per point would give less (wrong).
    t = np.array([4.0, 24.0, 96.0, 168.0])
    a = 120.0 * np.exp(-LAM_LU * t)
    sigma = np.array([3.0, 2.5, 2.0, 1.5])
    fit = fit_tac(t, a, "physical", nuclide="Lu-177", sigma_mbq=sigma)
    w, e = 1 / sigma**2, np.exp(-LAM_LU * t)
    jac = w * e / (LAM_LU * np.sum(w * e * e))
    u_cf = 0.05
    correlated = math.sqrt(jac @ (u_cf**2 * np.outer(a, a)) @ jac)
    independent = math.sqrt(np.sum((jac * u_cf * a) ** 2))
    res = tia_uncertainty(fit, calibration_rel=u_cf)
    scale_part = math.sqrt(res.u_total_mbq_h**2 - res.u_fit_mbq_h**2)
    assert scale_part == pytest.approx(correlated, rel=1e-9)
    assert independent < 0.9 * correlated


def test_fitted_tia_scales_with_a_common_factor():
    # A common factor c on all activities (and sigmas) scales the fitted TIA by c exactly:
    # amplitudes are linear, rates unchanged, so calibration acts as a pure scale (1e-6 rel.)
    t = np.array([1.0, 4.0, 24.0, 48.0, 96.0, 168.0])
    rng = np.random.default_rng(8)
    a = BIEXP.evaluate([162.8, LN2 / 56, 88.8, LN2 / 2.9], t) * (1 + 0.05 * rng.standard_normal(6))
    fit = fit_tac(t, a, "biexp", nuclide="Lu-177", sigma_mbq=0.05 * a)
    scaled = fit_tac(t, 1.07 * a, "biexp", nuclide="Lu-177", sigma_mbq=1.07 * 0.05 * a)
    assert scaled.tia_mbq_h == pytest.approx(1.07 * fit.tia_mbq_h, rel=1e-6)
    assert scaled.tia_sd_mbq_h == pytest.approx(1.07 * fit.tia_sd_mbq_h, rel=1e-5)


def test_mono_delta_method_matches_the_eanm_closed_form():
    # clinical.md §6.5: u^2 = (1/l)^2 u^2(A0) + (A0/l^2)^2 u^2(l) - 2 (A0/l^3) cov(A0, l)
    a0, lam = 150.0, 0.012
    cov = np.array([[25.0, 0.004], [0.004, 4e-6]])
    expected = math.sqrt(
        (1 / lam) ** 2 * 25.0 + (a0 / lam**2) ** 2 * 4e-6 - 2 * (a0 / lam**3) * 0.004
    )
    assert MONO.tia_sd([a0, lam], cov) == pytest.approx(expected, rel=1e-12)


def test_bad_uncertainty_input():
    with pytest.raises(KineticsError) as exc:
        activity_uncertainty([1000.0, -5.0], 10.0)
    assert exc.value.field == "count_rate_cps"
    with pytest.raises(KineticsError):
        activity_uncertainty([1000.0], 0.0)
    with pytest.raises(KineticsError, match="length"):
        activity_uncertainty([1000.0, 500.0], 10.0, recovery=[0.8, 0.8, 0.8])
    with pytest.raises(KineticsError, match="same relative value"):
        activity_uncertainty([1000.0, 500.0], 10.0, recovery=[0.8, 0.6], u_recovery=[0.04, 0.04])
    with pytest.raises(KineticsError):
        recovery_uncertainty(lambda v: 0.8, -1.0, 0.1)
    with pytest.raises(KineticsError):
        recovery_uncertainty(lambda v: -0.8, 10.0, 0.1)
    fit = fit_tac([4.0, 24.0, 96.0], [90.0, 80.0, 40.0], "mono", nuclide="Lu-177")
    with pytest.raises(KineticsError, match="exactly one"):
        tia_uncertainty(fit)
    au = activity_uncertainty([1000.0], 10.0)
    with pytest.raises(KineticsError, match="exactly one"):
        tia_uncertainty(fit, au, calibration_rel=0.03)
