"""Time-integrated activity (TIA) from a fit or from the measured points.

Rules (clinical.md §6.3):

* **analytic** (:func:`tia_from_fit`): ``TIA = sum A_i / lambda_i`` of the fitted
  model, 0 to infinity, with the delta-method SD of the fit.
* **trapezoid** (:func:`trapezoid_tia`): trapezoids between the measured points,
  plus

  - a *head* from 0 to the first point: ``"zero"`` (linear rise from
    ``A(0) = 0``; kidney, tumour) → ``A(t1) t1 / 2``, or ``"constant"``
    (``A(0) = A(t1)``; blood, whole body) → ``A(t1) t1``;
  - a *tail* from the last point to infinity, ``A(tn) / lambda``: ``"physical"``
    (``lambda = lambda_phys``, conservative: overestimates the TIA) or
    ``"fitted"`` (mono-exponential through the last ``tail_points >= 2`` points,
    a log-linear least-squares fit weighted by ``(A/sigma)^2`` when sigmas are
    given, with ``lambda >= lambda_phys``).

Every :class:`TIAResult` lists the rules it used, and its ``details`` give the
parts of the TIA that lie outside the imaged interval (``before_first_point_mbq_h``,
0 to the first point; ``after_last_point_mbq_h``, the last point to infinity): they
rest on the head rule or the model's extrapolation, not on measurements.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np
from numpy.typing import ArrayLike

from theranet.errors import NuclideError
from theranet.kinetics.fit import FitResult, _as_nuclide, validate_tac
from theranet.kinetics.models import KineticsError
from theranet.nuclides import Nuclide

__all__ = [
    "AFTER_LAST",
    "BEFORE_FIRST",
    "HEAD_RULES",
    "TAIL_RULES",
    "TIAResult",
    "hybrid_tia",
    "tia_from_fit",
    "trapezoid_tia",
]

logger = logging.getLogger(__name__)

#: Head rules of :func:`trapezoid_tia`.
HEAD_RULES: tuple[str, ...] = ("zero", "constant")
#: Tail rules of :func:`trapezoid_tia`.
TAIL_RULES: tuple[str, ...] = ("physical", "fitted")
#: Key in :attr:`TIAResult.details`: TIA from 0 to the first point, MBq·h.
BEFORE_FIRST = "before_first_point_mbq_h"
#: Key in :attr:`TIAResult.details`: TIA from the last point to infinity, MBq·h.
AFTER_LAST = "after_last_point_mbq_h"


@dataclass(frozen=True)
class TIAResult:
    """A time-integrated activity with the rules that produced it.

    Attributes
    ----------
    tia_mbq_h : float
        Time-integrated activity, MBq·h.
    sd_mbq_h : float
        Its standard deviation, MBq·h (NaN when not available).
    method : str
        ``"analytic"``, ``"trapezoid"``, ``"hanscheid"``, ``"madsen"`` or
        ``"prior_mono"``.
    rules : tuple of str
        The integration rules and assumptions, in words.
    nuclide : str or None
        Canonical nuclide name the result refers to.
    components_mbq_h : Mapping[str, float]
        Parts of the TIA (``"head"``, ``"body"``, ``"tail"``…), MBq·h.
    details : Mapping[str, float]
        Other numbers (rate constants in 1/h, half-lives in h…), unit in the key.
    warnings : tuple of str
    """

    tia_mbq_h: float
    sd_mbq_h: float
    method: str
    rules: tuple[str, ...]
    nuclide: str | None = None
    components_mbq_h: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    details: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    warnings: tuple[str, ...] = ()

    @property
    def rel_sd(self) -> float:
        """Relative SD of the TIA (fraction)."""
        return self.sd_mbq_h / self.tia_mbq_h if self.tia_mbq_h else math.nan


def _check_same_nuclide(carried: str, requested: str | Nuclide | None, field_name: str) -> None:
    if requested is None:
        return
    req = _as_nuclide(requested, field_name)
    if req.name != carried:
        raise NuclideError(
            field_name,
            f"nuclide differs from the data's nuclide {carried!r}",
            req.name,
            f"integrate with nuclide='{carried}' or refit the data of {req.name}",
        )


def tia_from_fit(fit: FitResult, *, nuclide: str | Nuclide | None = None) -> TIAResult:
    """Analytic TIA (0 to infinity) of a fitted model.

    Parameters
    ----------
    fit : FitResult
        A fit from :func:`~theranet.kinetics.fit.fit_tac`.
    nuclide : str or Nuclide, optional
        When given, must be the nuclide the fit was made for.

    Returns
    -------
    TIAResult
        ``method="analytic"``; SD from the delta method on the fit covariance;
        components ``head`` (0 to the first point), ``body`` (first to last
        point) and ``tail`` (last point to infinity) of the fitted curve.

    Raises
    ------
    NuclideError
        ``nuclide`` differs from ``fit.nuclide``.
    KineticsError
        The fit did not converge.
    """
    _check_same_nuclide(fit.nuclide, nuclide, "nuclide")
    if not fit.success or not math.isfinite(fit.tia_mbq_h):
        raise KineticsError(
            "fit", "the fit did not converge", fit.message, "check the data or use trapezoid_tia"
        )
    rules = (
        f"analytic integral 0..inf of the fitted {fit.model_name} model: {fit.model.formula}",
        f"weights: {fit.weighting}",
        "SD: delta method sqrt(g C g^T), g = dTIA/dparams, C = fit covariance",
    )
    details = {f"{k}": v for k, v in fit.params_dict.items()}
    details["terminal_half_life_h"] = math.log(2.0) / fit.terminal_rate_per_h
    t1, tn = float(fit.times_h[0]), float(fit.times_h[-1])
    parts = {
        "head": fit.model.partial_integral(fit.params, 0.0, t1),
        "body": fit.model.partial_integral(fit.params, t1, tn),
        "tail": fit.model.partial_integral(fit.params, tn, math.inf),
    }
    details[BEFORE_FIRST] = parts["head"]
    details[AFTER_LAST] = parts["tail"]
    return TIAResult(
        fit.tia_mbq_h,
        fit.tia_sd_mbq_h,
        "analytic",
        rules,
        fit.nuclide,
        MappingProxyType(parts),
        MappingProxyType(details),
        fit.warnings,
    )


def _tail_rate(
    t: np.ndarray, a: np.ndarray, s: np.ndarray | None, m: int
) -> tuple[float, np.ndarray]:
    """Log-linear mono-exponential rate through the last ``m`` points and dlambda/dA."""
    tt, aa = t[-m:], a[-m:]
    w = np.ones(m) if s is None else (aa / s[-m:]) ** 2
    tbar = float(w @ tt / w.sum())
    dt = tt - tbar
    c = w * dt / float(w @ dt**2)  # slope = sum c_j ln A_j
    lam = -float(c @ np.log(aa))
    grad = np.zeros(t.size)
    grad[-m:] = -c / aa
    return lam, grad


def trapezoid_tia(
    times_h: ArrayLike,
    activities_mbq: ArrayLike,
    *,
    nuclide: str | Nuclide,
    head: str = "zero",
    tail: str = "physical",
    tail_points: int = 2,
    sigma_mbq: ArrayLike | None = None,
    data_nuclide: str | Nuclide | None = None,
) -> TIAResult:
    """Non-parametric TIA: head + trapezoids + tail (clinical.md §6.3).

    Parameters
    ----------
    times_h : array_like of float, shape (n,)
        Times after injection, h (strictly increasing, ``>= 0``).
    activities_mbq : array_like of float, shape (n,)
        Activities, MBq, not decay-corrected.
    nuclide : str or Nuclide
        Nuclide whose physical decay constant bounds (``"fitted"``) or sets
        (``"physical"``) the tail rate.
    head : {"zero", "constant"}, optional
        ``"zero"``: linear rise from ``A(0) = 0`` (kidney, tumour);
        ``"constant"``: ``A(0) = A(t1)`` (blood, whole body). Ignored when the first
        time is 0.
    tail : {"physical", "fitted"}, optional
        ``A(tn)/lambda_phys`` or ``A(tn)/lambda_fit`` with ``lambda_fit`` from the
        last ``tail_points`` points, raised to ``lambda_phys`` when slower.
    tail_points : int, optional
        Points in the fitted tail (``>= 2``).
    sigma_mbq : array_like of float, shape (n,), optional
        SDs of the activities, MBq: gives the SD of the TIA by linear propagation
        (independent points) and weights the tail fit.
    data_nuclide : str or Nuclide, optional
        The nuclide the activities were measured for; must equal ``nuclide``.

    Returns
    -------
    TIAResult
        ``method="trapezoid"``, components ``head``, ``body``, ``tail``.

    Raises
    ------
    TimingError, KineticsError
        Bad data, unknown rule, too few or non-positive points for the fitted
        tail.
    NuclideError
        ``data_nuclide`` differs from ``nuclide``.
    """
    nuc = _as_nuclide(nuclide)
    if data_nuclide is not None:
        _check_same_nuclide(_as_nuclide(data_nuclide, "data_nuclide").name, nuc, "nuclide")
    t, a, s = validate_tac(times_h, activities_mbq, sigma_mbq)
    if head not in HEAD_RULES:
        raise KineticsError("head", "unknown head rule", head, f"use one of {HEAD_RULES}")
    if tail not in TAIL_RULES:
        raise KineticsError("tail", "unknown tail rule", tail, f"use one of {TAIL_RULES}")
    n = t.size
    grad = np.zeros(n)  # dTIA/dA_i
    rules: list[str] = ["trapezoid rule between measured points"]
    warnings: list[str] = []
    details: dict[str, float] = {}

    if t[0] == 0.0:
        head_area = 0.0
        rules.append("head: none (first point at injection)")
    elif head == "zero":
        head_area = a[0] * t[0] / 2.0
        grad[0] += t[0] / 2.0
        rules.append("head: linear rise from A(0) = 0 to A(t1)")
    else:
        head_area = a[0] * t[0]
        grad[0] += t[0]
        rules.append("head: constant A(0) = A(t1)")

    dt = np.diff(t)
    body = float(np.sum(dt * (a[1:] + a[:-1]) / 2.0))
    grad[:-1] += dt / 2.0
    grad[1:] += dt / 2.0

    lam_phys = nuc.decay_constant_per_h
    if tail == "physical":
        lam = lam_phys
        tail_grad = np.zeros(n)
        tail_grad[-1] = 1.0 / lam
        rules.append(f"tail: A(tn)/lambda_phys, lambda_phys = {lam:.6g} /h ({nuc.name})")
    else:
        m = int(tail_points)
        if m < 2 or m > n:
            raise KineticsError(
                "tail_points",
                f"a fitted tail needs 2 <= tail_points <= n = {n}",
                tail_points,
                "use tail_points=2 or tail='physical'",
            )
        if np.any(a[-m:] <= 0):
            raise KineticsError(
                "activities_mbq",
                "a fitted tail needs positive activities in its points",
                a[-m:].tolist(),
                "use tail='physical' or fewer tail_points",
            )
        lam_fit, dlam = _tail_rate(t, a, s, m)
        details["tail_fit_lambda_per_h"] = lam_fit
        if lam_fit < lam_phys:
            lam = lam_phys
            dlam = np.zeros(n)
            warnings.append(
                f"fitted tail rate {lam_fit:.4g} /h is slower than physical decay; "
                f"lambda_phys = {lam_phys:.4g} /h used (terminal lambda >= lambda_phys)"
            )
        else:
            lam = lam_fit
        tail_grad = -a[-1] / lam**2 * dlam
        tail_grad[-1] += 1.0 / lam
        weight = "weighted by (A/sigma)^2" if s is not None else "unweighted"
        rules.append(
            f"tail: A(tn)/lambda, lambda = max(log-linear mono fit through the last {m} "
            f"points ({weight}), lambda_phys) = {lam:.6g} /h"
        )
    tail_area = a[-1] / lam
    grad += tail_grad
    details["tail_lambda_per_h"] = lam
    details[BEFORE_FIRST] = float(head_area)
    details[AFTER_LAST] = float(tail_area)
    tia = head_area + body + tail_area
    sd = math.sqrt(float(np.sum((grad * s) ** 2))) if s is not None else math.nan
    if s is not None:
        rules.append("SD: linear propagation of independent per-point sigmas")
    for w in warnings:
        logger.info("trapezoid_tia: %s", w)
    return TIAResult(
        float(tia),
        sd,
        "trapezoid",
        tuple(rules),
        nuc.name,
        MappingProxyType({"head": float(head_area), "body": body, "tail": float(tail_area)}),
        MappingProxyType(details),
        tuple(warnings),
    )


def _tail_sensitivity(fit: FitResult, g_tail: np.ndarray) -> np.ndarray:
    """``d tail / d A_i`` at the fitted points: ``g (J^T W J)^-1 J^T W`` over the free
    parameters (a parameter held at its bound does not move with the data)."""
    from theranet.kinetics.fit import _internal_names

    t = np.asarray(fit.times_h, dtype=np.float64)
    w = 1.0 / np.asarray(fit.sigma_mbq, dtype=np.float64) ** 2
    jac = np.asarray(fit.model.jacobian(fit.params, t), dtype=np.float64).T  # (m, K)
    free = np.array([name not in fit.at_bound for name in _internal_names(fit.model)])
    out = np.zeros(t.size)
    if not free.any() or not np.all(np.isfinite(jac)) or not np.all(np.isfinite(w)):
        return out
    jf = jac[:, free]
    try:
        dp_da = np.linalg.solve(jf.T @ (w[:, None] * jf), jf.T * w)  # (K_free, m)
    except np.linalg.LinAlgError:
        return out
    return g_tail[free] @ dp_da


def hybrid_tia(
    times_h: ArrayLike,
    activities_mbq: ArrayLike,
    *,
    nuclide: str | Nuclide,
    fit_points: int = 3,
    head: str = "constant",
    sigma_mbq: ArrayLike | None = None,
) -> tuple[TIAResult, FitResult]:
    """Head and trapezoids, then the analytic integral of a fitted mono-exponential.

    For curves whose early phase was not sampled well enough to fit (e.g. a blood or
    marrow curve falling from the first image): ``TIA = head + trapezoids over
    t1..tk + integral from tk to infinity of A1 exp(-lambda t)`` fitted (weighted
    least squares, terminal ``lambda >= lambda_phys``) through the last
    ``fit_points`` points, ``k = n - fit_points`` (clinical.md §6.3: head rule,
    trapezoid, fitted tail).

    Parameters
    ----------
    times_h, activities_mbq : array_like of float, shape (n,)
        The curve (h, MBq, not decay-corrected), ``n >= fit_points``.
    nuclide : str or Nuclide
    fit_points : int
        Points of the mono-exponential fit (>= 2).
    head : {"zero", "constant"}
        Area before the first point (as in :func:`trapezoid_tia`).
    sigma_mbq : array_like of float, optional
        SDs of the activities, MBq. Without them the SD of every point is taken
        as the mono fit's residual scatter at the fit's relative weights.

    Returns
    -------
    TIAResult
        ``method="hybrid"``, components ``head``, ``body``, ``tail``; SD from
        the fit covariance (tail), linear propagation (head and body) and the
        covariance of the body and the tail through the point they share.
    FitResult
        The mono-exponential fit of the last points.
    """
    from theranet.kinetics.fit import fit_tac

    nuc = _as_nuclide(nuclide)
    t, a, s = validate_tac(times_h, activities_mbq, sigma_mbq)
    if head not in HEAD_RULES:
        raise KineticsError("head", "unknown head rule", head, f"use one of {HEAD_RULES}")
    m = int(fit_points)
    n = t.size
    if m < 2 or m > n:
        raise KineticsError(
            "fit_points", f"needs 2 <= fit_points <= n = {n}", fit_points, "use fit_points=2"
        )
    k = n - m
    fit = fit_tac(t[k:], a[k:], "mono", nuclide=nuc, sigma_mbq=None if s is None else s[k:])
    a1, lam = (float(v) for v in fit.params)
    tk = float(t[k])
    tail = a1 * math.exp(-lam * tk) / lam
    g_tail = np.array(
        [math.exp(-lam * tk) / lam, -a1 * math.exp(-lam * tk) * (tk / lam + 1.0 / lam**2)]
    )
    cov = np.asarray(fit.covariance, dtype=np.float64)
    var_tail = float(g_tail @ cov @ g_tail) if np.all(np.isfinite(cov)) else math.nan
    # d tail / d A_i of the fitted points (weighted least squares: dp/dA =
    # (J^T W J)^-1 J^T W over the free parameters), for the covariance between the
    # trapezoids and the tail, which share the point t_k
    dtail_da = _tail_sensitivity(fit, g_tail)
    grad = np.zeros(n)
    if t[0] == 0.0:
        head_area = 0.0
    elif head == "zero":
        head_area = a[0] * t[0] / 2.0
        grad[0] += t[0] / 2.0
    else:
        head_area = a[0] * t[0]
        grad[0] += t[0]
    body = float(np.sum(np.diff(t[: k + 1]) * (a[1 : k + 1] + a[:k]) / 2.0)) if k > 0 else 0.0
    if k > 0:
        dt = np.diff(t[: k + 1])
        grad[:k] += dt / 2.0
        grad[1 : k + 1] += dt / 2.0
    if s is not None:
        sd_points = s
    else:
        # the fit's own sigmas scaled to its scatter; earlier points at the same
        # relative scatter
        scale = math.sqrt(fit.chi2 / fit.dof) if fit.dof > 0 else math.nan
        sig = np.asarray(fit.sigma_mbq, dtype=np.float64)
        act = np.asarray(fit.activities_mbq, dtype=np.float64)
        ok = act > 0
        rel_scatter = (
            float(np.mean(sig[ok] / act[ok])) * scale
            if ok.any() and math.isfinite(scale)
            else math.nan
        )
        sd_points = np.abs(a) * rel_scatter
        sd_points[k:] = sig * scale
    var_body = float(np.sum((grad * sd_points) ** 2))
    cov_body_tail = float(np.sum(grad[k:] * dtail_da * sd_points[k:] ** 2))
    var = var_tail + var_body + 2.0 * cov_body_tail
    sd = math.sqrt(var) if math.isfinite(var) and var >= 0.0 else math.nan
    rules = (
        f"head: {'linear rise from 0' if head == 'zero' else 'constant A(t1)'} before t1",
        f"trapezoids from t1 to t{k + 1} = {tk:g} h",
        f"mono-exponential fitted to the last {m} points, integrated from {tk:g} h to infinity "
        f"(lambda = {lam:.5g} /h)",
    )
    result = TIAResult(
        float(head_area + body + tail),
        sd,
        "hybrid",
        rules,
        nuc.name,
        MappingProxyType({"head": float(head_area), "body": body, "tail": tail}),
        MappingProxyType(
            {
                "tail_lambda_per_h": lam,
                "tail_start_h": tk,
                BEFORE_FIRST: float(head_area),
                AFTER_LAST: a1 * math.exp(-lam * float(t[-1])) / lam,
            }
        ),
        tuple(fit.warnings),
    )
    return result, fit
