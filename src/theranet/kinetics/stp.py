"""Single-time-point (STP) time-integrated activity (clinical.md §6.4).

All methods assume mono-exponential kinetics after the measurement,
``A(t) = A(ts) exp(-lambda_eff (t - ts))``, with non-decay-corrected
activities (``lambda_eff`` includes physical decay).

* **Hänscheid** (Hänscheid et al., J Nucl Med 2018;59:75): ``TIA ≈ A(ts) 2 ts / ln2``,
  independent of ``T_eff``. Against the mono-exponential truth
  ``A(ts) exp(lambda ts)/lambda`` the ratio is ``2x / 2^x`` with ``x = ts/T_eff``
  (:func:`hanscheid_ratio`): 1 at ``x = 1`` and ``2``, maximum ``2/(e ln2) = 1.0615``
  at ``x = 1/ln2``, 0.89 at ``x = 0.75``, 0.75 at ``x = 3``.
* **Madsen** (Madsen et al., Med Phys 2018): ``TIA = A(ts) exp(lambda ts)/lambda``
  with a population ``lambda = ln2 / T_pop``; ``T_pop`` is the population *mean*
  effective half-life (:mod:`~theranet.kinetics.population`) or given explicitly.
  Exact when the population rate equals the patient's.
* **Prior-informed mono-exponential fit** (:func:`prior_tia`): maximum a
  posteriori of ``theta = ln lambda_eff`` under a normal prior on ``theta`` (a
  log-normal prior on ``lambda_eff``, from the population mean and SD) and the
  weighted least-squares likelihood of the measured point(s), the amplitude
  profiled out (for each ``lambda`` its weighted LS value). With one point the
  data carry no information on ``lambda``: the MAP is the population *median*
  rate and the SD reflects the prior spread. The SD is the posterior SD of
  the TIA, integrated numerically on a grid of ``theta`` (no linearisation:
  the first-order delta method would wrongly give 0 at ``ts = 1/lambda``),
  including the conditional amplitude variance when ``sigma_mbq`` is given.
"""

from __future__ import annotations

import logging
import math
from types import MappingProxyType

import numpy as np
from numpy.typing import ArrayLike, NDArray

from theranet.errors import NuclideError, TimingError
from theranet.kinetics.fit import _as_nuclide, validate_tac
from theranet.kinetics.integrate import TIAResult
from theranet.kinetics.models import KineticsError
from theranet.kinetics.population import PopulationHalfLife, population_half_life
from theranet.nuclides import Nuclide

__all__ = ["hanscheid_ratio", "hanscheid_tia", "madsen_tia", "prior_tia"]

logger = logging.getLogger(__name__)

_LN2 = math.log(2.0)


def _check_point(activity_mbq: float, time_h: float) -> tuple[float, float]:
    a, t = float(activity_mbq), float(time_h)
    if not math.isfinite(t) or t <= 0:
        raise TimingError(
            "time_h",
            "single-time-point methods need a finite time after injection > 0",
            time_h,
            "give the scan time in h after injection",
        )
    if not math.isfinite(a) or a <= 0:
        raise KineticsError(
            "activity_mbq",
            "activity must be finite and > 0",
            activity_mbq,
            "give the measured activity in MBq (not decay-corrected)",
        )
    return a, t


def hanscheid_ratio(x: ArrayLike) -> NDArray[np.float64] | float:
    """Hänscheid estimate over the mono-exponential truth, ``2x / 2^x``.

    Parameters
    ----------
    x : array_like of float
        ``ts / T_eff`` (scan time over effective half-life), > 0.

    Returns
    -------
    float or ndarray of float
        The ratio (1 at ``x = 1`` and ``x = 2``; maximum 1.0615 at ``x = 1/ln2``).
    """
    xa = np.asarray(x, dtype=np.float64)
    out = 2.0 * xa / np.exp2(xa)
    return float(out) if out.ndim == 0 else out


def hanscheid_tia(activity_mbq: float, time_h: float) -> TIAResult:
    """Hänscheid single-time-point TIA, ``A(ts) 2 ts / ln2``.

    Parameters
    ----------
    activity_mbq : float
        Activity at the scan, MBq (not decay-corrected).
    time_h : float
        Scan time after injection, h.

    Returns
    -------
    TIAResult
        ``method="hanscheid"``; SD NaN (the method error depends on the unknown
        ``T_eff``: see :func:`hanscheid_ratio`).
    """
    a, t = _check_point(activity_mbq, time_h)
    tia = a * 2.0 * t / _LN2
    rules = (
        "Hänscheid 2018: TIA = A(ts) * 2 ts / ln2, independent of T_eff",
        "accuracy vs mono-exponential truth 2x/2^x, x = ts/T_eff: 1.00 at x = 1 and 2, "
        "max 1.061 at x = 1/ln2, 0.89 at x = 0.75, 0.88 at x = 2.5, 0.75 at x = 3",
    )
    return TIAResult(tia, math.nan, "hanscheid", rules, details=MappingProxyType({"time_h": t}))


def _population(
    tracer: str | None, organ: str | None, nuclide: str | Nuclide | None
) -> PopulationHalfLife:
    if tracer is None or organ is None:
        raise KineticsError(
            "tracer/organ",
            "need the population half-life: give both tracer and organ, or it explicitly",
            (tracer, organ),
            "pass tracer='177Lu-DOTATATE', organ='kidneys', or t_pop_h=...",
        )
    pop = population_half_life(tracer, organ)
    if nuclide is not None:
        nuc = _as_nuclide(nuclide)
        if nuc.name != pop.nuclide:
            raise NuclideError(
                "nuclide",
                f"differs from the nuclide of the population data ({pop.tracer}: {pop.nuclide})",
                nuc.name,
                "use a population half-life of the same radiopharmaceutical and nuclide",
            )
    return pop


def _positive(value: float, name: str, fix: str) -> float:
    v = float(value)
    if not (math.isfinite(v) and v > 0):
        raise KineticsError(name, "must be finite and > 0", value, fix)
    return v


def madsen_tia(
    activity_mbq: float,
    time_h: float,
    *,
    t_pop_h: float | None = None,
    tracer: str | None = None,
    organ: str | None = None,
    nuclide: str | Nuclide | None = None,
) -> TIAResult:
    """Madsen single-time-point TIA, ``A(ts) exp(lambda ts) / lambda``.

    Parameters
    ----------
    activity_mbq : float
        Activity at the scan, MBq (not decay-corrected).
    time_h : float
        Scan time after injection, h.
    t_pop_h : float, optional
        Population effective half-life, h; ``lambda = ln2 / t_pop_h``.
    tracer, organ : str, optional
        Look ``t_pop_h`` up in the population table (its mean) when not given.
    nuclide : str or Nuclide, optional
        Nuclide of the measurement; must match the tracer's when looked up. With
        an explicit ``t_pop_h``, it must not exceed the nuclide's physical half-life.

    Returns
    -------
    TIAResult
        ``method="madsen"``; SD NaN (use :func:`prior_tia` for an SD from the
        population spread).

    Raises
    ------
    KineticsError, TimingError, NuclideError
    """
    a, t = _check_point(activity_mbq, time_h)
    rules = ["Madsen 2018: TIA = A(ts) exp(lambda ts) / lambda (mono-exponential)"]
    if t_pop_h is None:
        pop = _population(tracer, organ, nuclide)
        t_pop = pop.mean_h
        rules.append(
            f"lambda = ln2 / T_pop, T_pop = population mean {t_pop:.4g} h "
            f"({pop.tracer} {pop.organ}; {pop.source}; status {pop.status})"
        )
        nuc_name = pop.nuclide
    else:
        t_pop = _positive(t_pop_h, "t_pop_h", "give the population effective half-life in h")
        rules.append(f"lambda = ln2 / T_pop, T_pop = {t_pop:.4g} h (given)")
        nuc_name = None
        if nuclide is not None:
            nuc = _as_nuclide(nuclide)
            nuc_name = nuc.name
            if t_pop > nuc.half_life_h:
                raise KineticsError(
                    "t_pop_h",
                    "effective half-life is longer than the physical half-life",
                    t_pop_h,
                    f"T_eff must not exceed T_phys = {nuc.half_life_h:.4g} h of {nuc.name} "
                    "for non-decay-corrected data",
                )
    lam = _LN2 / t_pop
    tia = a * math.exp(lam * t) / lam
    details = {"t_pop_h": t_pop, "lambda_per_h": lam, "time_h": t, "optimal_time_h": 1.0 / lam}
    return TIAResult(
        tia, math.nan, "madsen", tuple(rules), nuc_name, details=MappingProxyType(details)
    )


def prior_tia(
    times_h: ArrayLike,
    activities_mbq: ArrayLike,
    *,
    nuclide: str | Nuclide,
    sigma_mbq: ArrayLike | None = None,
    t_eff_mean_h: float | None = None,
    t_eff_sd_h: float | None = None,
    tracer: str | None = None,
    organ: str | None = None,
    n_grid: int = 2001,
) -> TIAResult:
    """Mono-exponential MAP fit with a log-normal population prior on ``lambda_eff``.

    Parameters
    ----------
    times_h : float or array_like of float, shape (k,)
        Scan time(s) after injection, h (one or more points).
    activities_mbq : float or array_like of float, shape (k,)
        Activities, MBq (not decay-corrected).
    nuclide : str or Nuclide
        Nuclide of the data; the posterior is truncated at ``lambda >= lambda_phys``.
    sigma_mbq : float or array_like of float, shape (k,), optional
        Known SDs of the activities, MBq. Required for more than one point; with
        one point it adds the activity error to the TIA SD.
    t_eff_mean_h, t_eff_sd_h : float, optional
        Population mean and SD of the effective half-life, h (log-normal by
        moment matching). Default: looked up by ``tracer`` and ``organ``.
    tracer, organ : str, optional
        For the population look-up.
    n_grid : int, optional
        Grid points in ``theta = ln lambda`` over the prior mean ± 8 prior SDs.

    Returns
    -------
    TIAResult
        ``method="prior_mono"``; ``tia_mbq_h`` at the MAP, ``sd_mbq_h`` the
        posterior SD; details hold ``lambda_map_per_h``, ``t_eff_map_h``,
        ``posterior_mean_tia_mbq_h``, ``prior_median_t_eff_h``, ``prior_log_sigma``.

    Raises
    ------
    KineticsError, TimingError, NuclideError
        Bad data or prior, several points without ``sigma_mbq``.
    """
    nuc = _as_nuclide(nuclide)
    t, a, s = validate_tac(times_h, activities_mbq, sigma_mbq)
    if t[0] <= 0 and t.size == 1:
        raise TimingError("times_h", "the scan must be after injection", t.tolist(), "time > 0")
    if t.size > 1 and s is None:
        raise KineticsError(
            "sigma_mbq",
            "several points need their SDs to weigh data against the prior",
            None,
            "give sigma_mbq (MBq) per point",
        )
    rules = [
        "mono-exponential A0 exp(-lambda t); theta = ln lambda_eff with a normal prior "
        "(log-normal lambda_eff); A0 profiled (weighted LS for each lambda); MAP of theta",
        "SD: posterior SD of the TIA on a theta grid (+ conditional A0 variance)",
    ]
    if t_eff_mean_h is None and t_eff_sd_h is None:
        pop = _population(tracer, organ, nuc)
        mean, sd = pop.mean_h, pop.sd_h
        rules.append(
            f"prior: T_eff mean {mean:.4g} h, SD {sd:.4g} h ({pop.tracer} {pop.organ}; "
            f"{pop.source}; status {pop.status})"
        )
    elif t_eff_mean_h is None or t_eff_sd_h is None:
        raise KineticsError(
            "t_eff_mean_h/t_eff_sd_h",
            "give both the population mean and SD",
            (t_eff_mean_h, t_eff_sd_h),
            "pass both, or tracer and organ for the look-up",
        )
    else:
        mean = _positive(t_eff_mean_h, "t_eff_mean_h", "give the mean T_eff in h")
        sd = _positive(t_eff_sd_h, "t_eff_sd_h", "give the SD of T_eff in h (> 0)")
        rules.append(f"prior: T_eff mean {mean:.4g} h, SD {sd:.4g} h (given)")
    s_ln = math.sqrt(math.log1p((sd / mean) ** 2))
    median = mean / math.sqrt(1.0 + (sd / mean) ** 2)
    mu = math.log(_LN2 / median)  # prior mean of theta = ln lambda
    lam_phys = nuc.decay_constant_per_h
    theta_min = math.log(lam_phys)
    if mu + 8 * s_ln <= theta_min:
        raise KineticsError(
            "t_eff_mean_h",
            "prior effective half-life is longer than the physical half-life",
            mean,
            f"T_eff must be below T_phys = {nuc.half_life_h:.4g} h for non-decay-corrected data",
        )
    theta = np.linspace(max(mu - 8 * s_ln, theta_min), mu + 8 * s_ln, int(n_grid))

    def profile(th: NDArray[np.float64]) -> tuple[NDArray[np.float64], ...]:
        lam = np.exp(th)[:, None]
        e = np.exp(-lam * t[None, :])  # (G, k)
        w = np.ones(t.size) if s is None else 1.0 / s**2
        see = e**2 @ w
        a0 = (e * a) @ w / see
        chi2 = ((a[None, :] - a0[:, None] * e) ** 2) @ w if s is not None else 0.0 * a0
        var_a0 = 1.0 / see if s is not None else 0.0 * a0
        logpost = -0.5 * chi2 - 0.5 * ((th - mu) / s_ln) ** 2
        return a0, var_a0, logpost

    a0, var_a0, logpost = profile(theta)
    lam = np.exp(theta)
    weights = np.exp(logpost - logpost.max())
    weights /= np.trapezoid(weights, theta)
    tia_grid = a0 / lam
    mean_tia = float(np.trapezoid(weights * tia_grid, theta))
    var = float(np.trapezoid(weights * (var_a0 / lam**2 + (tia_grid - mean_tia) ** 2), theta))
    theta_map = _refine_max(theta, logpost, lambda th: profile(np.atleast_1d(th))[2][0])
    a0_map = float(profile(np.array([theta_map]))[0][0])
    lam_map = math.exp(theta_map)
    tia = a0_map / lam_map
    warnings = []
    if theta_map <= theta_min + 1e-9:
        warnings.append("MAP lambda at lambda_phys (posterior truncated at physical decay)")
    details = {
        "lambda_map_per_h": lam_map,
        "t_eff_map_h": _LN2 / lam_map,
        "posterior_mean_tia_mbq_h": mean_tia,
        "prior_median_t_eff_h": median,
        "prior_log_sigma": s_ln,
    }
    return TIAResult(
        tia,
        math.sqrt(max(var, 0.0)),
        "prior_mono",
        tuple(rules),
        nuc.name,
        MappingProxyType({"0-inf": tia}),
        MappingProxyType(details),
        tuple(warnings),
    )


def _refine_max(theta: NDArray[np.float64], logpost: NDArray[np.float64], f) -> float:
    """Maximise ``f`` (log posterior) near the grid maximum by golden-section search."""
    i = int(np.argmax(logpost))
    lo, hi = theta[max(i - 1, 0)], theta[min(i + 1, theta.size - 1)]
    gr = (math.sqrt(5.0) - 1.0) / 2.0
    c, d = hi - gr * (hi - lo), lo + gr * (hi - lo)
    fc, fd = f(c), f(d)
    for _ in range(80):
        if fc > fd:
            hi, d, fd = d, c, fc
            c = hi - gr * (hi - lo)
            fc = f(c)
        else:
            lo, c, fc = c, d, fd
            d = lo + gr * (hi - lo)
            fd = f(d)
    best = (lo + hi) / 2.0
    return best if f(best) >= logpost[i] else float(theta[i])
