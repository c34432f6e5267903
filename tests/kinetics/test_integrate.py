"""Tests of theranet.kinetics.integrate: analytic and trapezoid TIA with head/tail rules."""

from __future__ import annotations

import math

import numpy as np
import pytest

from theranet.errors import NuclideError, TimingError
from theranet.kinetics.fit import fit_tac
from theranet.kinetics.integrate import tia_from_fit, trapezoid_tia
from theranet.kinetics.models import KineticsError
from theranet.nuclides import Nuclide

LN2 = math.log(2.0)
LAM_LU = Nuclide("Lu-177").decay_constant_per_h


def test_tia_from_fit_is_the_analytic_integral_with_rules():
    t = np.array([4.0, 24.0, 96.0, 168.0])
    data = 163.0 * np.exp(-LN2 / 56.0 * t)
    fit = fit_tac(t, data, "mono", nuclide="Lu-177")
    res = tia_from_fit(fit)
    # A1/lambda1 = 163 * 56 / ln2 (clinical.md §6.3); fit converges to 1e-6
    assert res.tia_mbq_h == pytest.approx(163.0 * 56.0 / LN2, rel=1e-6)
    assert res.method == "analytic" and res.nuclide == "Lu-177"
    assert any("analytic integral" in r for r in res.rules)
    assert res.details["terminal_half_life_h"] == pytest.approx(56.0, rel=1e-6)
    assert tia_from_fit(fit, nuclide="177Lu").tia_mbq_h == res.tia_mbq_h


def test_tia_from_fit_refuses_another_nuclide():
    fit = fit_tac([4.0, 24.0, 96.0], [90.0, 80.0, 40.0], "mono", nuclide="Lu-177")
    with pytest.raises(NuclideError) as exc:
        tia_from_fit(fit, nuclide="Y-90")
    assert exc.value.field == "nuclide" and exc.value.value == "Y-90"
    assert "Lu-177" in exc.value.problem and exc.value.fix


def test_trapezoid_is_exact_for_a_linear_rise_with_physical_tail():
    # A = 5 t MBq at 2, 4, 6 h: head (zero rule) = 10, body = int_2^6 5t dt = 80, and the
    # tail A(6)/lambda_phys = 30/lambda_phys: exact by hand
    res = trapezoid_tia([2.0, 4.0, 6.0], [10.0, 20.0, 30.0], nuclide="Lu-177")
    assert res.components_mbq_h["head"] == pytest.approx(10.0, rel=1e-14)
    assert res.components_mbq_h["body"] == pytest.approx(80.0, rel=1e-14)
    assert res.components_mbq_h["tail"] == pytest.approx(30.0 / LAM_LU, rel=1e-14)
    assert res.tia_mbq_h == pytest.approx(90.0 + 30.0 / LAM_LU, rel=1e-14)
    assert any("A(0) = 0" in r for r in res.rules)
    assert any("lambda_phys" in r for r in res.rules)


def test_constant_head_rule():
    res = trapezoid_tia([2.0, 4.0], [10.0, 20.0], nuclide="Lu-177", head="constant")
    # A(0) = A(t1): head = A(t1) t1 = 20 (by hand)
    assert res.components_mbq_h["head"] == pytest.approx(20.0, rel=1e-14)
    assert any("constant" in r for r in res.rules)


def test_no_head_when_first_point_is_at_injection():
    res = trapezoid_tia([0.0, 4.0], [10.0, 20.0], nuclide="Lu-177")
    assert res.components_mbq_h["head"] == 0.0


def test_trapezoid_on_an_exponential_matches_the_closed_form():
    # mono A0 e^{-l t} on a uniform grid t_k = t1 + k h: the trapezoid sum is the exact
    # integral times (l h/2) coth(l h/2); the fitted tail through exact mono points recovers l
    # exactly (log-linear), so tail = A(tn)/l; head (zero rule) = A(t1) t1/2. Exact to 1e-12.
    a0, lam, h = 200.0, LN2 / 56.0, 12.0
    t = 6.0 + h * np.arange(15)
    a = a0 * np.exp(-lam * t)
    res = trapezoid_tia(t, a, nuclide="Lu-177", tail="fitted", tail_points=3)
    exact_body = a0 / lam * (math.exp(-lam * t[0]) - math.exp(-lam * t[-1]))
    factor = (lam * h / 2) / math.tanh(lam * h / 2)
    assert res.components_mbq_h["body"] == pytest.approx(exact_body * factor, rel=1e-12)
    assert res.components_mbq_h["tail"] == pytest.approx(a[-1] / lam, rel=1e-12)
    assert res.components_mbq_h["head"] == pytest.approx(a[0] * t[0] / 2, rel=1e-14)
    assert res.details["tail_lambda_per_h"] == pytest.approx(lam, rel=1e-12)


def test_fitted_tail_slower_than_physical_uses_lambda_phys():
    t = np.array([24.0, 96.0, 168.0])
    a = 100.0 * np.exp(-LN2 / 400.0 * t)  # T_eff 400 h > T_phys: impossible, clamped
    res = trapezoid_tia(t, a, nuclide="Lu-177", tail="fitted")
    assert res.details["tail_lambda_per_h"] == pytest.approx(LAM_LU, rel=1e-14)
    assert res.details["tail_fit_lambda_per_h"] == pytest.approx(LN2 / 400.0, rel=1e-10)
    assert res.warnings and "slower than physical decay" in res.warnings[0]


def test_trapezoid_sd_with_physical_tail_by_hand():
    t = np.array([4.0, 24.0, 96.0])
    a = np.array([50.0, 60.0, 40.0])
    s = np.array([5.0, 4.0, 3.0])
    res = trapezoid_tia(t, a, nuclide="Lu-177", sigma_mbq=s)
    # dTIA/dA: A1 -> t1/2 + (t2-t1)/2; A2 -> (t3-t1)/2; A3 -> (t3-t2)/2 + 1/lambda_phys
    g = np.array([2.0 + 10.0, 46.0, 36.0 + 1 / LAM_LU])
    assert res.sd_mbq_h == pytest.approx(math.sqrt(np.sum((g * s) ** 2)), rel=1e-12)


def test_trapezoid_sd_with_two_point_fitted_tail_by_hand():
    t = np.array([24.0, 96.0])
    a = np.array([60.0, 20.0])
    s = np.array([3.0, 2.0])
    res = trapezoid_tia(t, a, nuclide="Lu-177", tail="fitted", sigma_mbq=s)
    dt = 72.0
    lam = math.log(60.0 / 20.0) / dt  # two-point mono rate
    assert res.details["tail_lambda_per_h"] == pytest.approx(lam, rel=1e-12)
    # tail = A2/lam, lam = ln(A1/A2)/dt: dtail/dA1 = -A2/(lam^2 A1 dt),
    # dtail/dA2 = 1/lam + 1/(lam^2 dt); plus head t1/2 and trapezoid dt/2 each
    g1 = 12.0 + 36.0 - 20.0 / (lam**2 * 60.0 * dt)
    g2 = 36.0 + 1 / lam + 1 / (lam**2 * dt)
    expected = math.hypot(g1 * 3.0, g2 * 2.0)
    assert res.sd_mbq_h == pytest.approx(expected, rel=1e-10)
    tia = 60.0 * 12.0 + 40.0 * 72.0 + 20.0 / lam
    assert res.tia_mbq_h == pytest.approx(tia, rel=1e-12)


def test_trapezoid_without_sigma_has_no_sd():
    assert math.isnan(trapezoid_tia([4.0, 24.0], [5.0, 4.0], nuclide="Lu-177").sd_mbq_h)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"head": "linear"}, "head"),
        ({"tail": "biological"}, "tail"),
        ({"tail": "fitted", "tail_points": 1}, "tail_points"),
        ({"tail": "fitted", "tail_points": 5}, "tail_points"),
    ],
)
def test_trapezoid_bad_rules(kwargs, field):
    with pytest.raises(KineticsError) as exc:
        trapezoid_tia([4.0, 24.0, 96.0], [5.0, 4.0, 2.0], nuclide="Lu-177", **kwargs)
    assert exc.value.field == field and exc.value.fix


def test_fitted_tail_needs_positive_points():
    with pytest.raises(KineticsError) as exc:
        trapezoid_tia([4.0, 24.0, 96.0], [5.0, 4.0, 0.0], nuclide="Lu-177", tail="fitted")
    assert exc.value.field == "activities_mbq"


def test_trapezoid_refuses_a_nuclide_mismatch():
    with pytest.raises(NuclideError) as exc:
        trapezoid_tia([4.0, 24.0], [5.0, 4.0], nuclide="Lu-177", data_nuclide="In-111")
    assert exc.value.field == "nuclide" and "In-111" in exc.value.problem


def test_trapezoid_refuses_bad_curves():
    with pytest.raises(TimingError):
        trapezoid_tia([24.0, 4.0], [5.0, 4.0], nuclide="Lu-177")
    with pytest.raises(KineticsError):
        trapezoid_tia([4.0, 24.0], [5.0, -4.0], nuclide="Lu-177")
    with pytest.raises(KineticsError):
        trapezoid_tia([4.0, 24.0], [5.0], nuclide="Lu-177")


def test_hybrid_tia_matches_analytic_composition():
    """Hybrid rule on an exact mono-exponential: constant head + trapezoid over the first
    interval + the exact integral from t2 (the fitted mono through the last 3 points is
    exact). Expected value written out analytically; tolerance 1e-6."""
    import math

    from theranet.kinetics.integrate import hybrid_tia
    from theranet.nuclides import Nuclide

    lam_phys = Nuclide("Lu-177").decay_constant_per_h
    lam = lam_phys + math.log(2) / 80.0
    t = np.array([4.0, 24.0, 96.0, 168.0])
    a0 = 250.0
    a = a0 * np.exp(-lam * t)
    res, fit = hybrid_tia(t, a, nuclide="Lu-177", fit_points=3, head="constant")
    expected = a[0] * 4.0 + 0.5 * 20.0 * (a[0] + a[1]) + a0 * math.exp(-lam * 24.0) / lam
    assert res.tia_mbq_h == pytest.approx(expected, rel=1e-6)
    assert res.method == "hybrid"
    assert fit.params[1] == pytest.approx(lam, rel=1e-6)
    # with known sigmas the SD is finite and positive
    res2, _ = hybrid_tia(t, a * (1 + np.array([0.02, -0.01, 0.015, -0.02])), nuclide="Lu-177",
                         sigma_mbq=0.03 * a)  # fmt: skip
    assert 0 < res2.sd_mbq_h < 0.2 * res2.tia_mbq_h


def test_hybrid_tia_bad_fit_points():
    from theranet.kinetics.integrate import hybrid_tia
    from theranet.kinetics.models import KineticsError

    with pytest.raises(KineticsError, match="fit_points"):
        hybrid_tia([1.0, 2.0], [3.0, 2.0], nuclide="Lu-177", fit_points=3)


# --------------------------------------------------------------------------- outside the images


def test_analytic_parts_before_and_after_the_images_by_hand():
    """Mono-exponential A0 exp(-l t) sampled 4..168 h: the part before 4 h is
    A0 (1 - exp(-4 l)) / l and the part after 168 h is A0 exp(-168 l) / l."""
    from theranet.kinetics.integrate import AFTER_LAST, BEFORE_FIRST

    lam = LN2 / 56.0
    t = np.array([4.0, 24.0, 96.0, 168.0])
    fit = fit_tac(t, 163.0 * np.exp(-lam * t), "mono", nuclide="Lu-177")
    res = tia_from_fit(fit)
    before = 163.0 * (1.0 - math.exp(-4.0 * lam)) / lam
    after = 163.0 * math.exp(-168.0 * lam) / lam
    assert res.details[BEFORE_FIRST] == pytest.approx(before, rel=1e-6)
    assert res.details[AFTER_LAST] == pytest.approx(after, rel=1e-6)
    c = res.components_mbq_h
    assert math.fsum(c.values()) == pytest.approx(res.tia_mbq_h, rel=1e-12)


def test_trapezoid_and_hybrid_parts_outside_the_images():
    from theranet.kinetics.integrate import AFTER_LAST, BEFORE_FIRST, hybrid_tia

    lam = LAM_LU + LN2 / 80.0
    t = np.array([4.0, 24.0, 96.0, 168.0])
    a = 250.0 * np.exp(-lam * t)
    tr = trapezoid_tia(t, a, nuclide="Lu-177", head="zero", tail="physical")
    # head A(t1) t1 / 2, tail A(tn) / lambda_phys (the rules of clinical.md §6.3)
    assert tr.details[BEFORE_FIRST] == pytest.approx(a[0] * 4.0 / 2.0, rel=1e-14)
    assert tr.details[AFTER_LAST] == pytest.approx(a[-1] / LAM_LU, rel=1e-14)
    hy, _ = hybrid_tia(t, a, nuclide="Lu-177", fit_points=3, head="constant")
    # constant head A(t1) t1; exact mono tail from the last point A(tn) / lambda
    assert hy.details[BEFORE_FIRST] == pytest.approx(a[0] * 4.0, rel=1e-14)
    assert hy.details[AFTER_LAST] == pytest.approx(a[-1] / lam, rel=1e-6)


def test_hybrid_sd_matches_numerical_linear_propagation():
    """The hybrid SD (known sigmas) equals sqrt(sum (dTIA/dA_i sigma_i)^2) with the
    derivatives taken numerically by re-running the whole rule on perturbed data (the
    trapezoids and the fitted tail share the point t_k, so they are correlated)."""
    from theranet.kinetics.integrate import hybrid_tia

    t = np.array([4.0, 24.0, 96.0, 168.0])
    a = 30.0 * np.exp(-t * LN2 / 6.0) + 20.0 * np.exp(-t * LN2 / 55.0)
    a = a * np.exp(-LAM_LU * t) * np.array([1.02, 0.97, 1.03, 0.99])
    sigma = 0.06 * a
    res, fit = hybrid_tia(t, a, nuclide="Lu-177", fit_points=3, head="constant", sigma_mbq=sigma)
    assert not fit.at_bound
    grads = []
    for i in range(t.size):
        h = 1e-5 * a[i]
        up, dn = a.copy(), a.copy()
        up[i] += h
        dn[i] -= h
        f_up = hybrid_tia(t, up, nuclide="Lu-177", fit_points=3, head="constant", sigma_mbq=sigma)
        f_dn = hybrid_tia(t, dn, nuclide="Lu-177", fit_points=3, head="constant", sigma_mbq=sigma)
        grads.append((f_up[0].tia_mbq_h - f_dn[0].tia_mbq_h) / (2 * h))
    sd_numeric = math.sqrt(sum((g * s) ** 2 for g, s in zip(grads, sigma, strict=True)))
    assert res.sd_mbq_h == pytest.approx(sd_numeric, rel=1e-3)
