"""Tests of theranet.kinetics.models: formulas, analytic integrals and gradients."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from scipy import integrate

from theranet.kinetics.models import (
    BIEXP,
    BIEXP_UPTAKE,
    MODEL_NAMES,
    MONO,
    TRIEXP,
    KineticsError,
    get_model,
    physical_model,
)
from theranet.nuclides import Nuclide

LN2 = math.log(2.0)
LAM_LU = Nuclide("Lu-177").decay_constant_per_h

# Kidney-like (biokinetics.md §3.2: slow T_eff 56 h, fast 2.9 h, uptake T 0.5 h) and
# tumour-like (T_eff 88.7 h, uptake half-time 3 h) parameters, MBq and 1/h.
L_SLOW, L_FAST, L_UP = LN2 / 56.0, LN2 / 2.9, LN2 / 0.5
PARAMS = {
    "mono": [163.0, L_SLOW],
    "biexp_uptake": [29.6, LN2 / 88.7, LN2 / 88.7 + LN2 / 3.0],
    "biexp": [162.8, L_SLOW, 88.8, L_FAST],
    "triexp": [163.0, L_SLOW, 89.0, L_FAST, L_UP],
}


def hand_curve(name: str, p: list[float], t: float) -> float:
    """The model formulas of clinical.md §6.2, written out by hand."""
    e = math.exp
    if name == "mono":
        return p[0] * e(-p[1] * t)
    if name == "biexp_uptake":
        return p[0] * (e(-p[1] * t) - e(-p[2] * t))
    if name == "biexp":
        return p[0] * e(-p[1] * t) + p[2] * e(-p[3] * t)
    a1, l1, a2, l2, l3 = p
    return a1 * e(-l1 * t) + a2 * e(-l2 * t) - (a1 + a2) * e(-l3 * t)


def hand_integral(name: str, p: list[float]) -> float:
    """clinical.md §6.3: sum A_i/lambda_i; uptake form A1 (1/l1 - 1/l2)."""
    if name == "mono":
        return p[0] / p[1]
    if name == "biexp_uptake":
        return p[0] * (1 / p[1] - 1 / p[2])
    if name == "biexp":
        return p[0] / p[1] + p[2] / p[3]
    a1, l1, a2, l2, l3 = p
    return a1 / l1 + a2 / l2 - (a1 + a2) / l3


@pytest.mark.parametrize("name", list(PARAMS))
def test_evaluate_matches_the_formula(name):
    model = get_model(name)
    t = np.array([0.0, 0.5, 1.0, 4.0, 24.0, 96.0, 168.0])
    expected = [hand_curve(name, PARAMS[name], ti) for ti in t]
    # same formula, floating point only: 1e-12 relative
    np.testing.assert_allclose(model.evaluate(PARAMS[name], t), expected, rtol=1e-12, atol=1e-12)


def test_mono_halves_after_one_half_life():
    # A(T) = A0/2 by definition of the half-life; 1e-12 relative
    assert MONO.evaluate([80.0, LN2 / 56.0], 56.0) == pytest.approx(40.0, rel=1e-12)


@pytest.mark.parametrize("name", ["biexp_uptake", "triexp"])
def test_uptake_models_start_at_zero(name):
    # A(0) = 0 by construction (clinical.md §6.2 uptake forms); exact
    assert get_model(name).evaluate(PARAMS[name], 0.0) == 0.0


@pytest.mark.parametrize("name", list(PARAMS))
def test_integral_matches_hand_formula_and_quadrature(name):
    model = get_model(name)
    p = PARAMS[name]
    # analytic formula of clinical.md §6.3: floating point, 1e-12 relative
    assert model.integral(p) == pytest.approx(hand_integral(name, p), rel=1e-12)
    # independent numerical quadrature of A(t) over [0, inf): quad tolerance 1e-9 relative
    numeric, _ = integrate.quad(
        lambda t: hand_curve(name, p, t), 0, np.inf, epsrel=1e-11, limit=200
    )
    assert model.integral(p) == pytest.approx(numeric, rel=1e-8)


def test_physical_model_integral_is_a_over_lambda_phys():
    # A1/lambda_phys = A1 T_phys/ln2 (clinical.md §6.3 physical tail); 1e-12 relative
    model = physical_model(LAM_LU)
    t_phys = Nuclide("Lu-177").half_life_h
    assert model.integral([100.0]) == pytest.approx(100.0 * t_phys / LN2, rel=1e-12)
    assert model.evaluate([100.0], t_phys) == pytest.approx(50.0, rel=1e-12)


def test_mono_gradient_is_the_hand_derivative():
    # d(A/l)/dA = 1/l, d(A/l)/dl = -A/l^2 (clinical.md §6.5); 1e-12 relative
    a, lam = 163.0, L_SLOW
    np.testing.assert_allclose(MONO.integral_gradient([a, lam]), [1 / lam, -a / lam**2], rtol=1e-12)


@pytest.mark.parametrize("name", list(PARAMS))
def test_integral_gradient_matches_central_differences(name):
    model = get_model(name)
    p = np.array(PARAMS[name])
    g = model.integral_gradient(p)
    for k in range(p.size):
        h = 1e-6 * abs(p[k])
        up, dn = p.copy(), p.copy()
        up[k] += h
        dn[k] -= h
        fd = (model.integral(up) - model.integral(dn)) / (2 * h)
        # central difference error O(h^2): 1e-6 relative to the gradient scale
        assert g[k] == pytest.approx(fd, rel=1e-6, abs=1e-9 * np.abs(g).max())


@pytest.mark.parametrize("name", list(PARAMS))
def test_jacobian_matches_central_differences(name):
    model = get_model(name)
    p = np.array(PARAMS[name])
    t = np.array([1.0, 4.0, 24.0, 96.0])
    jac = model.jacobian(p, t)
    assert jac.shape == (p.size, t.size)
    for k in range(p.size):
        h = 1e-6 * abs(p[k])
        up, dn = p.copy(), p.copy()
        up[k] += h
        dn[k] -= h
        fd = (model.evaluate(up, t) - model.evaluate(dn, t)) / (2 * h)
        np.testing.assert_allclose(jac[k], fd, rtol=1e-5, atol=1e-8 * np.abs(jac).max())


def test_evaluate_and_integral_are_vectorised_over_curves():
    # params (K, N, 1) against t (T,) -> (N, T), identical to a loop of single curves
    rng = np.random.default_rng(3)
    n = 7
    p = np.stack(
        [
            rng.uniform(50, 200, n),
            rng.uniform(0.005, 0.02, n),
            rng.uniform(10, 90, n),
            rng.uniform(0.1, 0.5, n),
        ]
    )
    t = np.array([1.0, 4.0, 24.0, 96.0, 168.0])
    out = BIEXP.evaluate(p[:, :, None], t)
    assert out.shape == (n, t.size)
    for i in range(n):
        np.testing.assert_allclose(out[i], BIEXP.evaluate(p[:, i], t), rtol=1e-14)
    np.testing.assert_allclose(
        BIEXP.integral(p), [BIEXP.integral(p[:, i]) for i in range(n)], rtol=1e-14
    )
    assert BIEXP.integral_gradient(p).shape == (4, n)


def test_ordering_matrix_maps_increments_to_rates():
    # p = T q with q = (A1, l1, A2, l2 - l1): l2 = l1 + delta (exact)
    q = np.array([100.0, 0.01, 50.0, 0.2])
    np.testing.assert_allclose(BIEXP.ordering_matrix @ q, [100.0, 0.01, 50.0, 0.21])
    q3 = np.array([100.0, 0.01, 50.0, 0.2, 1.0])
    np.testing.assert_allclose(TRIEXP.ordering_matrix @ q3, [100.0, 0.01, 50.0, 0.21, 1.21])
    q2 = np.array([30.0, 0.008, 0.23])
    np.testing.assert_allclose(BIEXP_UPTAKE.ordering_matrix @ q2, [30.0, 0.008, 0.238])


def test_bounds_enforce_terminal_rate_and_washout_limit():
    lo, hi = BIEXP.bounds(LAM_LU, washout_max_per_h=2.0)
    # amplitudes >= 0, lambda1 >= lambda_phys, increment of the washout phase <= 2 /h
    np.testing.assert_array_equal(lo, [0.0, LAM_LU, 0.0, 0.0])
    assert hi[0] == np.inf and hi[2] == np.inf
    assert hi[3] == 2.0
    lo, hi = BIEXP_UPTAKE.bounds(LAM_LU, washout_max_per_h=2.0)
    assert hi[2] > 2.0  # uptake rate is not a washout phase
    assert MONO.terminal_index == 1 and TRIEXP.terminal_index == 1


def test_param_names_carry_units():
    for name in MODEL_NAMES:
        model = get_model(name, LAM_LU)
        assert all(n.endswith(("_mbq", "_per_h")) for n in model.param_names)
        assert len(model.param_units) == model.n_params


def test_get_model_errors():
    with pytest.raises(KineticsError) as exc:
        get_model("quadexp")
    assert exc.value.field == "model" and exc.value.value == "quadexp" and exc.value.fix
    with pytest.raises(KineticsError, match="decay constant"):
        get_model("physical")
    with pytest.raises(KineticsError):
        physical_model(0.0)
    with pytest.raises(KineticsError, match="parameters along the first axis"):
        MONO.evaluate([1.0, 2.0, 3.0], 1.0)


def test_models_module_imports_numpy_only():
    # voxel-wise code imports the formulas: no scipy/fitting imports in models.py
    import ast

    import theranet.kinetics.models as mod

    tree = ast.parse(Path(mod.__file__).read_text(encoding="utf-8"))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add(node.module)
    assert imported <= {"__future__", "logging", "math", "dataclasses", "numpy", "numpy.typing"} | {
        "theranet.errors"
    }


# --------------------------------------------------------------------------- partial integrals


@pytest.mark.parametrize("name", ["mono", "biexp_uptake", "biexp", "triexp"])
@pytest.mark.parametrize(("t0", "t1"), [(0.0, 4.0), (4.0, 168.0), (168.0, math.inf)])
def test_partial_integral_matches_numerical_quadrature(name, t0, t1):
    """Independent check: scipy quad of the hand-written formula (clinical.md §6.2)."""
    p = PARAMS[name]
    exact, _ = integrate.quad(lambda t: hand_curve(name, p, t), t0, t1, epsabs=0, epsrel=1e-12,
                              limit=200)  # fmt: skip
    got = get_model(name).partial_integral(p, t0, t1)
    assert got == pytest.approx(exact, rel=1e-9)


@pytest.mark.parametrize("name", ["mono", "biexp_uptake", "biexp", "triexp"])
def test_partial_integrals_add_up_to_the_whole(name):
    p = PARAMS[name]
    m = get_model(name)
    parts = [m.partial_integral(p, a, b) for a, b in ((0, 4), (4, 96), (96, math.inf))]
    assert math.fsum(parts) == pytest.approx(m.integral(p), rel=1e-12)


def test_partial_integral_of_the_mono_exponential_by_hand():
    # A0 (exp(-l t0) - exp(-l t1)) / l
    a0, lam = 163.0, L_SLOW
    want = a0 * (math.exp(-lam * 4.0) - math.exp(-lam * 24.0)) / lam
    assert MONO.partial_integral([a0, lam], 4.0, 24.0) == pytest.approx(want, rel=1e-14)
    assert physical_model(LAM_LU).partial_integral([a0], 0.0, math.inf) == pytest.approx(
        a0 / LAM_LU, rel=1e-14
    )


def test_partial_integral_refuses_reversed_times():
    with pytest.raises(ValueError, match="start_h <= end_h"):
        MONO.partial_integral([1.0, 0.1], 5.0, 1.0)
