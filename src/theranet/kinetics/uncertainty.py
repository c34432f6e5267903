"""Uncertainty propagation from counts to TIA (EANM, Gear et al. EJNMMI 2018).

Activity at each time point (clinical.md §4.6, §6.5)::

    A = R / (CF * RC)
    (u_A/A)^2 = (u_R/R)^2 + (u_CF/CF)^2 + (u_RC/RC)^2

with ``R`` the count rate (cps; Poisson ``u_R/R = 1/sqrt(R * t_acq)`` plus an
optional VOI/segmentation term), ``CF`` the calibration factor (cps/MBq) and
``RC`` the recovery coefficient, ``u_RC = |dRC/dV| u_V`` from a recovery curve
``RC(V)`` and the volume uncertainty (:func:`recovery_uncertainty`).

Correlation across time points
------------------------------
The calibration factor is the *same* at every time point, so its error is fully
correlated: it multiplies every activity by the same factor and, because the
fitted amplitudes are linear in the data, scales the TIA by that factor while
leaving the rate constants unchanged. It must therefore **not** enter the
per-point sigmas of the fit (it would be averaged down as if independent) but
be added **once** to the TIA relative variance::

    (u_TIA/TIA)^2 = (u_fit/TIA)^2 + (u_CF/CF)^2 [+ (u_RC/RC)^2 if RC is common]

The same holds for the recovery coefficient when one volume (one RC) is used at
all time points (``recovery_correlated=True``, the default); with a volume
segmented per time point the RC errors are independent and go into the per-point
sigmas instead. :attr:`ActivityUncertainty.sigma_fit_mbq` holds the
uncorrelated part for :func:`~theranet.kinetics.fit.fit_tac`, and
:func:`tia_uncertainty` adds the correlated part.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from theranet.kinetics.models import KineticsError

__all__ = [
    "ActivityUncertainty",
    "TIAUncertainty",
    "activity_uncertainty",
    "recovery_uncertainty",
    "tia_uncertainty",
]

logger = logging.getLogger(__name__)


def _ro(x: ArrayLike) -> NDArray[np.float64]:
    out = np.array(x, dtype=np.float64)
    out.setflags(write=False)
    return out


def _finite(x: ArrayLike, name: str, *, positive: bool, fix: str) -> NDArray[np.float64]:
    a = np.atleast_1d(np.asarray(x, dtype=np.float64))
    bad = ~np.isfinite(a) | ((a <= 0) if positive else (a < 0))
    if np.any(bad):
        raise KineticsError(
            name, "must be finite and " + ("> 0" if positive else ">= 0"), a.tolist(), fix
        )
    return a


def recovery_uncertainty(
    rc_model: Callable[[float], float],
    volume_ml: float,
    u_volume_ml: float,
    *,
    rc_derivative: Callable[[float], float] | None = None,
    rel_step: float = 1e-4,
) -> tuple[float, float]:
    """Recovery coefficient and its uncertainty from an RC(V) curve, ``u_RC = |dRC/dV| u_V``.

    Parameters
    ----------
    rc_model : callable
        ``RC(V)`` with ``V`` in mL (for example a fitted sigmoid
        ``RC_max / (1 + (V0/V)^n)``, clinical.md §4.6).
    volume_ml : float
        Segmented volume, mL (> 0).
    u_volume_ml : float
        Its standard uncertainty, mL (>= 0).
    rc_derivative : callable, optional
        ``dRC/dV`` in 1/mL; default a central difference with step
        ``rel_step * V``.
    rel_step : float, optional
        Relative step of the central difference.

    Returns
    -------
    rc, u_rc : float
        ``RC(V)`` and ``|dRC/dV| u_V`` (dimensionless).

    Raises
    ------
    KineticsError
        Non-positive volume, negative ``u_V`` or an RC outside ``(0, inf)``.
    """
    v = float(_finite(volume_ml, "volume_ml", positive=True, fix="give the volume in mL")[0])
    u_v = float(_finite(u_volume_ml, "u_volume_ml", positive=False, fix="give u_V >= 0 mL")[0])
    rc = float(rc_model(v))
    if not (math.isfinite(rc) and rc > 0):
        raise KineticsError(
            "rc_model", "RC(V) must be finite and > 0", rc, "check the recovery curve at V"
        )
    if rc_derivative is not None:
        d = float(rc_derivative(v))
    else:
        h = rel_step * v
        d = (float(rc_model(v + h)) - float(rc_model(v - h))) / (2.0 * h)
    return rc, abs(d) * u_v


@dataclass(frozen=True, eq=False)
class ActivityUncertainty:
    """Activities and their relative uncertainty components (Gear 2018 chain).

    Attributes
    ----------
    activity_mbq : ndarray of float, shape (n,)
        ``R / (CF * RC)``, MBq.
    u_count_rel : ndarray of float, shape (n,)
        Relative uncertainty of the count rate (Poisson and VOI terms).
    u_calibration_rel : float
        ``u_CF / CF`` (common to all points).
    u_recovery_rel : ndarray of float, shape (n,)
        ``u_RC / RC``.
    recovery_correlated : bool
        True when one RC (one volume) applies to all points.
    """

    activity_mbq: NDArray[np.float64]
    u_count_rel: NDArray[np.float64]
    u_calibration_rel: float
    u_recovery_rel: NDArray[np.float64]
    recovery_correlated: bool

    @property
    def u_total_rel(self) -> NDArray[np.float64]:
        """Total relative uncertainty per point, ``sqrt(u_R^2 + u_CF^2 + u_RC^2)``."""
        return np.sqrt(self.u_count_rel**2 + self.u_calibration_rel**2 + self.u_recovery_rel**2)

    @property
    def sigma_total_mbq(self) -> NDArray[np.float64]:
        """Total standard uncertainty per point, MBq."""
        return self.activity_mbq * self.u_total_rel

    @property
    def sigma_fit_mbq(self) -> NDArray[np.float64]:
        """Independent (uncorrelated) part of the SD per point, MBq: the fit's ``sigma_mbq``."""
        rc = 0.0 if self.recovery_correlated else self.u_recovery_rel
        return self.activity_mbq * np.sqrt(self.u_count_rel**2 + rc**2)

    @property
    def u_scale_rel(self) -> float:
        """Fully correlated relative uncertainty (calibration, common RC): scales the TIA."""
        rc = float(self.u_recovery_rel[0]) if self.recovery_correlated else 0.0
        return math.sqrt(self.u_calibration_rel**2 + rc**2)


def activity_uncertainty(
    count_rate_cps: ArrayLike,
    calibration_cps_per_mbq: float,
    *,
    acquisition_s: ArrayLike | None = None,
    u_count_extra_rel: ArrayLike = 0.0,
    u_calibration_cps_per_mbq: float = 0.0,
    recovery: ArrayLike = 1.0,
    u_recovery: ArrayLike = 0.0,
    recovery_correlated: bool = True,
) -> ActivityUncertainty:
    """Activities and uncertainties from count rates (``A = R / (CF * RC)``).

    Parameters
    ----------
    count_rate_cps : array_like of float, shape (n,)
        VOI count rates, counts/s (> 0).
    calibration_cps_per_mbq : float
        Calibration factor CF, cps/MBq (> 0).
    acquisition_s : array_like of float, shape (n,) or scalar, optional
        Acquisition durations, s: Poisson ``u_R/R = 1/sqrt(R t_acq)``. Omit to
        leave out counting statistics.
    u_count_extra_rel : array_like of float, shape (n,) or scalar, optional
        Further relative uncertainty of ``R`` (VOI/segmentation), added in
        quadrature.
    u_calibration_cps_per_mbq : float, optional
        Standard uncertainty of CF, cps/MBq.
    recovery : array_like of float, shape (n,) or scalar, optional
        Recovery coefficient(s) RC (> 0); use :func:`recovery_uncertainty` for an
        RC(V) curve.
    u_recovery : array_like of float, shape (n,) or scalar, optional
        Standard uncertainty of RC.
    recovery_correlated : bool, optional
        True (default) when one RC applies at all points: its error is common
        (must then be the same relative value at every point).

    Returns
    -------
    ActivityUncertainty

    Raises
    ------
    KineticsError
        Non-finite or non-positive inputs, mismatched lengths, or a correlated
        RC uncertainty that differs between points.
    """
    r = _finite(count_rate_cps, "count_rate_cps", positive=True, fix="give count rates in cps")
    n = r.size
    cf = float(
        _finite(calibration_cps_per_mbq, "calibration_cps_per_mbq", positive=True, fix="CF > 0")[0]
    )
    u_cf = float(
        _finite(u_calibration_cps_per_mbq, "u_calibration_cps_per_mbq", positive=False, fix=">= 0")[
            0
        ]
    )

    def per_point(x: ArrayLike, name: str, positive: bool) -> NDArray[np.float64]:
        arr = _finite(x, name, positive=positive, fix=f"give {name} as a scalar or one per point")
        if arr.size not in (1, n):
            raise KineticsError(
                name,
                f"length {arr.size} differs from count_rate_cps length {n}",
                arr.size,
                "give a scalar or one value per time point",
            )
        return np.broadcast_to(arr, (n,)).astype(np.float64)

    rc = per_point(recovery, "recovery", True)
    u_rc = per_point(u_recovery, "u_recovery", False)
    extra = per_point(u_count_extra_rel, "u_count_extra_rel", False)
    if acquisition_s is None:
        poisson = np.zeros(n)
    else:
        poisson = 1.0 / np.sqrt(r * per_point(acquisition_s, "acquisition_s", True))
    u_rc_rel = u_rc / rc
    if recovery_correlated and not np.allclose(u_rc_rel, u_rc_rel[0], rtol=1e-9, atol=0.0):
        raise KineticsError(
            "u_recovery",
            "a correlated (common) recovery uncertainty must be the same relative value at "
            "every time point",
            u_rc_rel.tolist(),
            "use one RC and u_RC for all points, or recovery_correlated=False for volumes "
            "segmented per time point",
        )
    return ActivityUncertainty(
        _ro(r / (cf * rc)),
        _ro(np.sqrt(poisson**2 + extra**2)),
        u_cf / cf,
        _ro(u_rc_rel),
        bool(recovery_correlated),
    )


@dataclass(frozen=True)
class TIAUncertainty:
    """TIA with its uncertainty budget.

    Attributes
    ----------
    tia_mbq_h : float
        TIA, MBq·h.
    u_fit_mbq_h : float
        From the fit (independent per-point errors), MBq·h.
    u_scale_rel : float
        Fully correlated relative part (calibration, common RC), added once.
    u_total_mbq_h : float
        ``TIA sqrt((u_fit/TIA)^2 + u_scale_rel^2)``, MBq·h.
    """

    tia_mbq_h: float
    u_fit_mbq_h: float
    u_scale_rel: float
    u_total_mbq_h: float

    @property
    def u_total_rel(self) -> float:
        """Total relative uncertainty of the TIA."""
        return self.u_total_mbq_h / self.tia_mbq_h


def tia_uncertainty(
    result: object,
    activity: ActivityUncertainty | None = None,
    *,
    calibration_rel: float | None = None,
    recovery_rel: float = 0.0,
) -> TIAUncertainty:
    """Combine the fit uncertainty of a TIA with the correlated calibration/RC terms.

    Parameters
    ----------
    result : FitResult or TIAResult
        Anything with ``tia_mbq_h`` and ``tia_sd_mbq_h`` (a fit) or ``sd_mbq_h``
        (a TIA result); the fit should have used ``activity.sigma_fit_mbq``.
    activity : ActivityUncertainty, optional
        Supplies the correlated part (:attr:`ActivityUncertainty.u_scale_rel`).
    calibration_rel : float, optional
        ``u_CF/CF`` when ``activity`` is not given.
    recovery_rel : float, optional
        Common ``u_RC/RC`` when ``activity`` is not given.

    Returns
    -------
    TIAUncertainty
        ``(u/TIA)^2 = (u_fit/TIA)^2 + u_CF_rel^2 + u_RC_rel^2`` (correlated terms
        once, not per point).

    Raises
    ------
    KineticsError
        Neither or both of ``activity`` and ``calibration_rel``; bad values.
    """
    tia = float(result.tia_mbq_h)
    sd = getattr(result, "tia_sd_mbq_h", None)
    u_fit = float(result.sd_mbq_h if sd is None else sd)
    if (activity is None) == (calibration_rel is None):
        raise KineticsError(
            "activity/calibration_rel",
            "give exactly one source of the correlated uncertainty",
            None,
            "pass the ActivityUncertainty used for the fit, or calibration_rel (and recovery_rel)",
        )
    if activity is not None:
        scale = activity.u_scale_rel
    else:
        cal = float(_finite(calibration_rel, "calibration_rel", positive=False, fix=">= 0")[0])
        rec = float(_finite(recovery_rel, "recovery_rel", positive=False, fix=">= 0")[0])
        scale = math.hypot(cal, rec)
    total = tia * math.sqrt((u_fit / tia) ** 2 + scale**2) if tia else math.nan
    return TIAUncertainty(tia, u_fit, scale, total)
