"""Uncertainty propagation to absorbed dose (EANM, Gear 2018; clinical.md §6.5).

Law of propagation of uncertainty (first order): for ``y = f(x)`` with parameter
covariance ``Sigma`` and Jacobian ``J = df/dx``, ``cov(y) = J Sigma J^T``
(:func:`propagate`).

For a self-dose ``D = TIA * S(m)`` with ``S ∝ m**k`` (``k = -1`` for
non-penetrating radiation, i.e. ``D ∝ TIA/m``), the relative sensitivities are
``dlnD/dlnTIA = 1`` and ``dlnD/dlnm = k``, so (:func:`dose_uncertainty`)::

    (u_D/D)^2 = (u_TIA/TIA)^2 + k^2 (u_m/m)^2 + (u_S/S)^2 + 2 k rho (u_TIA/TIA)(u_m/m)

and for ``k = -1``: ``... - 2 rho (u_TIA/TIA)(u_m/m)``.

Sign convention: ``rho`` is the correlation coefficient between the *errors* of
TIA and mass as measured (``rho > 0``: when the VOI overestimates the mass it also
overestimates the activity, as when the same VOI defines both). Positive ``rho``
then *reduces* the dose uncertainty; ``rho = 1`` with equal relative
uncertainties cancels them. ``u_S`` is the S-value uncertainty not due to the mass
(model, phantom), assumed independent of TIA and mass.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike, NDArray

from theranet.dosimetry.organ import DosimetryInputError

__all__ = ["dose_uncertainty", "propagate"]


def _rel(name: str, value: float) -> float:
    if value is None or not math.isfinite(value) or value < 0:
        raise DosimetryInputError(
            name,
            "must be a finite relative standard uncertainty >= 0 (a fraction, 0.1 = 10 %)",
            value,
        )
    return float(value)


def dose_uncertainty(
    dose_gy: float,
    *,
    u_tia_rel: float,
    u_mass_rel: float = 0.0,
    u_s_rel: float = 0.0,
    correlation_tia_mass: float = 0.0,
    u_calibration_rel: float | None = None,
    mass_exponent: float = -1.0,
) -> tuple[float, dict[str, float]]:
    """Standard uncertainty of a dose ``D = TIA * S(m)``, ``S ∝ m**mass_exponent``.

    Parameters
    ----------
    dose_gy : float
        The dose, Gy.
    u_tia_rel : float
        Relative standard uncertainty of the TIA (fraction). Include the
        calibration here, or give it separately as ``u_calibration_rel`` (not both).
    u_mass_rel : float, default 0
        Relative standard uncertainty of the mass.
    u_s_rel : float, default 0
        Relative S-value uncertainty other than through the mass.
    correlation_tia_mass : float, default 0
        Correlation coefficient rho of the TIA and mass errors, in [-1, 1]
        (sign convention in the module docstring).
    u_calibration_rel : float, optional
        Relative uncertainty of the calibration factor when it is *not* already
        in ``u_tia_rel``. It scales all time points alike (fully correlated), so it
        passes to the TIA unreduced and is added in quadrature to ``u_tia_rel``.
    mass_exponent : float, default -1
        ``k`` of ``S ∝ m**k``: -1 for non-penetrating self-dose; about -2/3 for a
        penetrating component [UNCERTAIN]; 0 if the S-value does not use the mass.

    Returns
    -------
    sd_gy : float
        Standard uncertainty of the dose, Gy.
    breakdown : dict[str, float]
        Relative variance terms (fractions squared) ``"tia"``, ``"calibration"``,
        ``"mass"``, ``"s_value"``, ``"tia_mass_covariance"`` (may be negative),
        whose sum is ``"total_rel_var"``; ``"u_rel"`` (``sqrt`` of the total) and
        ``"sd_gy"``.
    """
    if dose_gy is None or not math.isfinite(dose_gy):
        raise DosimetryInputError("dose_gy", "must be finite", dose_gy)
    u_a = _rel("u_tia_rel", u_tia_rel)
    u_m = _rel("u_mass_rel", u_mass_rel)
    u_s = _rel("u_s_rel", u_s_rel)
    u_c = 0.0 if u_calibration_rel is None else _rel("u_calibration_rel", u_calibration_rel)
    rho = correlation_tia_mass
    if rho is None or not math.isfinite(rho) or abs(rho) > 1:
        raise DosimetryInputError("correlation_tia_mass", "must be in [-1, 1]", rho)
    if not math.isfinite(mass_exponent):
        raise DosimetryInputError("mass_exponent", "must be finite", mass_exponent)
    k = float(mass_exponent)
    # The correlation is with the TIA as measured, i.e. the VOI-driven part u_a;
    # the calibration part is independent of the mass.
    terms = {
        "tia": u_a**2,
        "calibration": u_c**2,
        "mass": (k * u_m) ** 2,
        "s_value": u_s**2,
        "tia_mass_covariance": 2.0 * k * rho * u_a * u_m,
    }
    total = math.fsum(terms.values())
    total = max(total, 0.0)  # rounding when rho = 1 and terms cancel
    u_rel = math.sqrt(total)
    sd = abs(dose_gy) * u_rel
    breakdown = dict(terms)
    breakdown.update(total_rel_var=total, u_rel=u_rel, sd_gy=sd)
    return sd, breakdown


def propagate(
    jacobian: ArrayLike, covariance: ArrayLike, *, atol: float = 1e-12
) -> float | NDArray[np.float64]:
    """First-order propagation ``J Sigma J^T``.

    Parameters
    ----------
    jacobian : array_like, shape (n,) or (m, n)
        Partial derivatives of the output(s) with respect to the n inputs.
    covariance : array_like, shape (n, n)
        Input covariance matrix (symmetric, positive semi-definite).
    atol : float
        Tolerance for the symmetry and semi-definiteness checks (relative to the
        largest absolute element).

    Returns
    -------
    float or ndarray
        The output variance (1-D Jacobian) or the (m, m) output covariance.

    Examples
    --------
    >>> propagate([1.0, -1.0], [[0.01, 0.0], [0.0, 0.0025]])
    0.0125
    """
    j = np.asarray(jacobian, dtype=float)
    cov = np.asarray(covariance, dtype=float)
    if j.ndim not in (1, 2):
        raise DosimetryInputError("jacobian", "must be 1-D or 2-D", j.shape)
    n = j.shape[-1]
    if cov.shape != (n, n):
        raise DosimetryInputError(
            "covariance", f"must have shape ({n}, {n}) to match the Jacobian", cov.shape
        )
    if not (np.all(np.isfinite(j)) and np.all(np.isfinite(cov))):
        raise DosimetryInputError("jacobian/covariance", "contain NaN or infinite values")
    scale = max(float(np.max(np.abs(cov))) if cov.size else 0.0, 1.0e-300)
    if not np.allclose(cov, cov.T, rtol=0.0, atol=atol * scale):
        raise DosimetryInputError("covariance", "not symmetric")
    if n and float(np.min(np.linalg.eigvalsh(cov))) < -atol * scale * n:
        raise DosimetryInputError("covariance", "not positive semi-definite")
    out = j @ cov @ j.T
    if j.ndim == 1:
        return float(out)
    return out
