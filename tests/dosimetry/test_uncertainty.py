"""Analytic checks of dose-uncertainty propagation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from theranet.dosimetry.organ import DosimetryInputError
from theranet.dosimetry.uncertainty import dose_uncertainty, propagate


def test_independent_quadrature():
    sd, b = dose_uncertainty(10.0, u_tia_rel=0.10, u_mass_rel=0.05)
    assert b["u_rel"] == pytest.approx(math.hypot(0.10, 0.05))
    assert b["u_rel"] == pytest.approx(0.1118, abs=1e-4)
    assert sd == pytest.approx(1.118, abs=1e-3)
    assert b["tia_mass_covariance"] == 0.0


def test_fully_correlated_equal_cancel():
    sd, _ = dose_uncertainty(5.0, u_tia_rel=0.08, u_mass_rel=0.08, correlation_tia_mass=1.0)
    assert sd == pytest.approx(0.0, abs=1e-12)
    # anti-correlated errors add linearly
    sd, _ = dose_uncertainty(5.0, u_tia_rel=0.08, u_mass_rel=0.08, correlation_tia_mass=-1.0)
    assert sd == pytest.approx(5.0 * 0.16)


def test_partial_correlation_formula():
    ua, um, us, rho = 0.1, 0.05, 0.03, 0.5
    _, b = dose_uncertainty(1.0, u_tia_rel=ua, u_mass_rel=um, u_s_rel=us, correlation_tia_mass=rho)
    expected = ua**2 + um**2 + us**2 - 2 * rho * ua * um
    assert b["total_rel_var"] == pytest.approx(expected)
    parts = ("tia", "calibration", "mass", "s_value", "tia_mass_covariance")
    assert sum(b[k] for k in parts) == pytest.approx(b["total_rel_var"])


def test_calibration_added_in_quadrature():
    _, b = dose_uncertainty(1.0, u_tia_rel=0.03, u_calibration_rel=0.04)
    assert b["u_rel"] == pytest.approx(0.05)


def test_mass_exponent_two_thirds():
    _, b = dose_uncertainty(1.0, u_tia_rel=0.0, u_mass_rel=0.3, mass_exponent=-2 / 3)
    assert b["u_rel"] == pytest.approx(0.2)


def test_matches_general_propagation():
    # D = A / m at A = 2, m = 4: J = [1/m, -A/m^2]
    a, m, ua, um, rho = 2.0, 4.0, 0.2, 0.4, 0.3
    cov = np.array([[ua**2, rho * ua * um], [rho * ua * um, um**2]])
    var = propagate([1 / m, -a / m**2], cov)
    sd, _ = dose_uncertainty(a / m, u_tia_rel=ua / a, u_mass_rel=um / m, correlation_tia_mass=rho)
    assert math.sqrt(var) == pytest.approx(sd)


def test_propagate_matrix_output():
    j = np.array([[1.0, 0.0], [1.0, 1.0]])
    cov = np.diag([4.0, 9.0])
    out = propagate(j, cov)
    np.testing.assert_allclose(out, [[4.0, 4.0], [4.0, 13.0]])


def test_propagate_monoexponential_tia():
    # TIA = A0/lambda; u^2 = (1/l)^2 u_A^2 + (A0/l^2)^2 u_l^2 - 2 (A0/l^3) cov  (clinical.md §6.5)
    a0, lam, ua, ul, c = 100.0, 0.01, 5.0, 0.001, 0.002
    var = propagate([1 / lam, -a0 / lam**2], [[ua**2, c], [c, ul**2]])
    expected = (1 / lam) ** 2 * ua**2 + (a0 / lam**2) ** 2 * ul**2 - 2 * a0 / lam**3 * c
    assert var == pytest.approx(expected)


@pytest.mark.parametrize(
    ("j", "cov", "match"),
    [
        ([1.0, 1.0], [[1.0]], "shape"),
        ([1.0, 1.0], [[1.0, 0.5], [0.0, 1.0]], "symmetric"),
        ([1.0, 1.0], [[1.0, 2.0], [2.0, 1.0]], "semi-definite"),
        ([1.0, float("nan")], [[1.0, 0.0], [0.0, 1.0]], "NaN"),
    ],
)
def test_propagate_errors(j, cov, match):
    with pytest.raises(DosimetryInputError, match=match):
        propagate(j, cov)


def test_dose_uncertainty_errors():
    with pytest.raises(DosimetryInputError, match="correlation"):
        dose_uncertainty(1.0, u_tia_rel=0.1, correlation_tia_mass=1.5)
    with pytest.raises(DosimetryInputError, match="u_tia_rel"):
        dose_uncertainty(1.0, u_tia_rel=-0.1)
    with pytest.raises(DosimetryInputError, match="dose_gy"):
        dose_uncertainty(float("inf"), u_tia_rel=0.1)
