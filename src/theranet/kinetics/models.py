"""Time–activity curve models: sums of exponentials with analytic integrals.

Every model describes the activity ``A(t)`` in MBq present in a region at time
``t`` in h after injection. Activities are **not decay-corrected**: the rate
constants are effective constants, ``lambda_eff = lambda_bio + lambda_phys`` in
1/h (clinical.md §6.2).

=================  =========================================================  ===
name               A(t)                                                       K
=================  =========================================================  ===
``physical``       ``A1 exp(-lambda_phys t)`` (lambda_phys fixed)              1
``mono``           ``A1 exp(-l1 t)``                                           2
``biexp_uptake``   ``A1 (exp(-l1 t) - exp(-l2 t))``, ``l2 >= l1``              3
``biexp``          ``A1 exp(-l1 t) + A2 exp(-l2 t)``, ``l2 >= l1``             4
``triexp``         ``A1 exp(-l1 t) + A2 exp(-l2 t) - (A1 + A2) exp(-l3 t)``,   5
                   ``l1 <= l2 <= l3`` (two washout phases, uptake l3, A(0)=0)
=================  =========================================================  ===

Conventions
-----------
* ``lambda1_per_h`` is always the slowest, terminal (washout) rate constant.
  For non-decay-corrected data it must satisfy ``lambda1 >= lambda_phys``
  (terminal effective half-life no longer than the physical one); the fitting
  code enforces it through :meth:`Model.bounds` unless told otherwise.
* Rate constants are ordered (``l1 <= l2 <= l3``). Box bounds cannot express an
  ordering, so fits use *internal* parameters ``q`` (the slowest rate and the
  non-negative increments between consecutive rates) with ``p = T q``, ``T`` =
  :attr:`Model.ordering_matrix`. The map is linear, so a covariance transforms
  exactly.
* Amplitudes are non-negative.

All functions are vectorised: ``params`` has shape ``(K, ...)`` (first axis
indexes the parameters; any further axes broadcast against ``t_h``), so
voxel-wise code can evaluate many curves at once. This module imports numpy
only.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike, NDArray

from theranet.errors import TheranetError

__all__ = [
    "BIEXP",
    "BIEXP_UPTAKE",
    "MODEL_NAMES",
    "MONO",
    "TRIEXP",
    "KineticsError",
    "Model",
    "get_model",
    "physical_model",
]

logger = logging.getLogger(__name__)

#: Upper bound on every rate constant in fits, 1/h (half-life 25 s); curves this
#: fast are not resolved by clinical sampling.
RATE_MAX_PER_H = 100.0


class KineticsError(TheranetError, ValueError):
    """Time–activity data or kinetic-model arguments are unusable."""


def _split(params: ArrayLike, k: int, name: str) -> list[NDArray[np.float64]]:
    """Return the ``k`` parameter arrays of ``params`` (first axis)."""
    p = np.asarray(params, dtype=np.float64)
    if p.ndim == 0 or p.shape[0] != k:
        raise KineticsError(
            "params",
            f"model {name!r} takes {k} parameters along the first axis",
            p.shape,
            "pass an array of shape (K, ...) in the order of Model.param_names",
        )
    return [p[i] for i in range(k)]


@dataclass(frozen=True)
class Model:
    """A sum-of-exponentials time–activity model.

    Parameters
    ----------
    name : str
        ``"physical"``, ``"mono"``, ``"biexp_uptake"``, ``"biexp"`` or ``"triexp"``.
    param_names : tuple of str
        Names, unit in each name: amplitudes ``a*_mbq`` (MBq), rate constants
        ``lambda*_per_h`` (1/h).
    formula : str
        The model in words.
    decay_constant_per_h : float or None
        The fixed physical decay constant of the ``physical`` model (1/h);
        ``None`` for the others.

    Notes
    -----
    Use the module constants :data:`MONO`, :data:`BIEXP_UPTAKE`, :data:`BIEXP`,
    :data:`TRIEXP`, :func:`physical_model` or :func:`get_model`.
    """

    name: str
    param_names: tuple[str, ...]
    formula: str
    decay_constant_per_h: float | None = None
    amp_index: tuple[int, ...] = field(default=(), repr=False)
    rate_index: tuple[int, ...] = field(default=(), repr=False)
    washout_index: tuple[int, ...] = field(default=(), repr=False)

    # ---- description ----------------------------------------------------------------

    @property
    def n_params(self) -> int:
        """Number of free parameters K."""
        return len(self.param_names)

    @property
    def param_units(self) -> tuple[str, ...]:
        """Unit of each parameter (``"MBq"`` or ``"1/h"``)."""
        return tuple("MBq" if n.endswith("_mbq") else "1/h" for n in self.param_names)

    @property
    def terminal_index(self) -> int | None:
        """Index of the terminal (slowest) rate constant in the parameters, or ``None``."""
        return self.rate_index[0] if self.rate_index else None

    @property
    def ordering_matrix(self) -> NDArray[np.float64]:
        """Matrix ``T``, shape (K, K), with ``p = T q`` (``q``: slowest rate + increments)."""
        k = self.n_params
        t = np.eye(k)
        for j, idx in enumerate(self.rate_index):
            for prev in self.rate_index[:j]:
                t[idx, prev] = 1.0
        return t

    def bounds(
        self,
        terminal_min_per_h: float,
        washout_max_per_h: float = RATE_MAX_PER_H,
        rate_max_per_h: float = RATE_MAX_PER_H,
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Box bounds of the internal parameters ``q`` (see :attr:`ordering_matrix`).

        Parameters
        ----------
        terminal_min_per_h : float
            Lower bound of the terminal rate constant ``lambda1``, 1/h: the
            physical decay constant for non-decay-corrected data, or ``0``.
        washout_max_per_h : float, optional
            Upper bound (1/h) of the increment ``lambda2 - lambda1`` of a
            *washout* phase that carries its own amplitude (``biexp`` and
            ``triexp`` ``lambda2``). Such a phase, if much faster than the first
            sample, is not identifiable and its amplitude (and TIA ``A2/lambda2``)
            can grow without limit; uptake rates are harmless (their TIA term
            vanishes as the rate grows) and get ``rate_max_per_h``.
        rate_max_per_h : float, optional
            Upper bound of the other rate constants and increments, 1/h.

        Returns
        -------
        lower, upper : ndarray of float, shape (K,)
            Amplitudes ``[0, inf)``; ``lambda1`` in ``[terminal_min, rate_max]``;
            increments ``[0, washout_max]`` or ``[0, rate_max]``.
        """
        lo = np.zeros(self.n_params)
        hi = np.full(self.n_params, np.inf)
        for j, idx in enumerate(self.rate_index):
            lo[idx] = terminal_min_per_h if j == 0 else 0.0
            hi[idx] = washout_max_per_h if idx in self.washout_index else rate_max_per_h
        return lo, hi

    # ---- values ---------------------------------------------------------------------

    def evaluate(self, params: ArrayLike, t_h: ArrayLike) -> NDArray[np.float64]:
        """Activity ``A(t)`` in MBq.

        Parameters
        ----------
        params : array_like of float, shape (K, ...)
            Parameters in the order of :attr:`param_names`; trailing axes broadcast
            against ``t_h``.
        t_h : array_like of float
            Times after injection, h.

        Returns
        -------
        ndarray of float
            ``A(t)`` in MBq, shape ``broadcast(params[0], t_h)``.
        """
        p = _split(params, self.n_params, self.name)
        t = np.asarray(t_h, dtype=np.float64)
        if self.name == "physical":
            return p[0] * np.exp(-self.decay_constant_per_h * t)
        if self.name == "mono":
            return p[0] * np.exp(-p[1] * t)
        if self.name == "biexp_uptake":
            return p[0] * (np.exp(-p[1] * t) - np.exp(-p[2] * t))
        if self.name == "biexp":
            return p[0] * np.exp(-p[1] * t) + p[2] * np.exp(-p[3] * t)
        a1, l1, a2, l2, l3 = p
        return a1 * np.exp(-l1 * t) + a2 * np.exp(-l2 * t) - (a1 + a2) * np.exp(-l3 * t)

    def jacobian(self, params: ArrayLike, t_h: ArrayLike) -> NDArray[np.float64]:
        """Partial derivatives of ``A(t)`` with respect to the parameters.

        Parameters
        ----------
        params : array_like of float, shape (K, ...)
        t_h : array_like of float

        Returns
        -------
        ndarray of float, shape (K, *broadcast(params[0], t_h).shape)
            ``dA/dp_k`` in MBq per parameter unit.
        """
        p = _split(params, self.n_params, self.name)
        t = np.asarray(t_h, dtype=np.float64)
        if self.name == "physical":
            cols = [np.exp(-self.decay_constant_per_h * t) + 0.0 * p[0]]
        elif self.name == "mono":
            e1 = np.exp(-p[1] * t)
            cols = [e1 + 0.0 * p[0], -p[0] * t * e1]
        elif self.name == "biexp_uptake":
            e1, e2 = np.exp(-p[1] * t), np.exp(-p[2] * t)
            cols = [e1 - e2, -p[0] * t * e1, p[0] * t * e2]
        elif self.name == "biexp":
            e1, e2 = np.exp(-p[1] * t), np.exp(-p[3] * t)
            cols = [e1 + 0.0 * p[0], -p[0] * t * e1, e2 + 0.0 * p[2], -p[2] * t * e2]
        else:
            a1, l1, a2, l2, l3 = p
            e1, e2, e3 = np.exp(-l1 * t), np.exp(-l2 * t), np.exp(-l3 * t)
            cols = [e1 - e3, -a1 * t * e1, e2 - e3, -a2 * t * e2, (a1 + a2) * t * e3]
        return np.stack(np.broadcast_arrays(*cols))

    def integral(self, params: ArrayLike) -> NDArray[np.float64] | float:
        """Time-integrated activity from 0 to infinity, ``sum A_i / lambda_i``, MBq·h.

        Parameters
        ----------
        params : array_like of float, shape (K, ...)

        Returns
        -------
        float or ndarray of float, shape params.shape[1:]
            The TIA in MBq·h (``inf`` when the terminal rate constant is 0).
        """
        p = _split(params, self.n_params, self.name)
        with np.errstate(divide="ignore"):
            if self.name == "physical":
                out = p[0] / self.decay_constant_per_h
            elif self.name == "mono":
                out = p[0] / p[1]
            elif self.name == "biexp_uptake":
                out = p[0] * (1.0 / p[1] - 1.0 / p[2])
            elif self.name == "biexp":
                out = p[0] / p[1] + p[2] / p[3]
            else:
                a1, l1, a2, l2, l3 = p
                out = a1 / l1 + a2 / l2 - (a1 + a2) / l3
        return float(out) if np.ndim(out) == 0 else out

    def terms(self, params: ArrayLike) -> tuple[tuple[float, float], ...]:
        """The curve as a sum of exponentials, ``A(t) = sum_i c_i exp(-k_i t)``.

        Parameters
        ----------
        params : array_like of float, shape (K,)

        Returns
        -------
        tuple of (float, float)
            ``(c_i, k_i)``: coefficient in MBq (negative for an uptake term) and
            rate constant in 1/h.
        """
        p = [float(v) for v in _split(params, self.n_params, self.name)]
        if self.name == "physical":
            return ((p[0], float(self.decay_constant_per_h)),)
        if self.name == "mono":
            return ((p[0], p[1]),)
        if self.name == "biexp_uptake":
            return ((p[0], p[1]), (-p[0], p[2]))
        if self.name == "biexp":
            return ((p[0], p[1]), (p[2], p[3]))
        a1, l1, a2, l2, l3 = p
        return ((a1, l1), (a2, l2), (-(a1 + a2), l3))

    def partial_integral(self, params: ArrayLike, start_h: float, end_h: float) -> float:
        """Time-integrated activity between two times, MBq·h.

        ``sum_i c_i (exp(-k_i t0) - exp(-k_i t1)) / k_i`` over :meth:`terms`;
        ``end_h = inf`` integrates to infinity.

        Parameters
        ----------
        params : array_like of float, shape (K,)
        start_h, end_h : float
            Times after injection, h, ``0 <= start_h <= end_h`` (``end_h`` may be
            ``inf``).

        Returns
        -------
        float
            MBq·h (``inf`` when a rate constant is 0 and ``end_h`` is ``inf``).
        """
        t0, t1 = float(start_h), float(end_h)
        if not (0.0 <= t0 <= t1) or math.isnan(t1):
            raise ValueError(f"partial_integral: need 0 <= start_h <= end_h, got {t0}, {t1}")
        total = 0.0
        for c, k in self.terms(params):
            if k == 0.0:
                total += c * (t1 - t0)
            else:
                e1 = 0.0 if math.isinf(t1) else math.exp(-k * t1)
                total += c * (math.exp(-k * t0) - e1) / k
        return total

    def integral_gradient(self, params: ArrayLike) -> NDArray[np.float64]:
        """Gradient of :meth:`integral` with respect to the parameters (delta method).

        Parameters
        ----------
        params : array_like of float, shape (K, ...)

        Returns
        -------
        ndarray of float, shape (K, ...)
            ``dTIA/dp_k``: h for amplitudes, MBq·h² for rate constants.
        """
        p = _split(params, self.n_params, self.name)
        with np.errstate(divide="ignore", invalid="ignore"):
            if self.name == "physical":
                cols = [1.0 / self.decay_constant_per_h + 0.0 * p[0]]
            elif self.name == "mono":
                cols = [1.0 / p[1], -p[0] / p[1] ** 2]
            elif self.name == "biexp_uptake":
                cols = [1.0 / p[1] - 1.0 / p[2], -p[0] / p[1] ** 2, p[0] / p[2] ** 2]
            elif self.name == "biexp":
                cols = [1.0 / p[1], -p[0] / p[1] ** 2, 1.0 / p[3], -p[2] / p[3] ** 2]
            else:
                a1, l1, a2, l2, l3 = p
                cols = [
                    1.0 / l1 - 1.0 / l3,
                    -a1 / l1**2,
                    1.0 / l2 - 1.0 / l3,
                    -a2 / l2**2,
                    (a1 + a2) / l3**2,
                ]
        return np.stack(np.broadcast_arrays(*cols))

    def tia_sd(self, params: ArrayLike, covariance: ArrayLike) -> float:
        """Standard deviation of the TIA by the delta method, ``sqrt(g C g^T)``, MBq·h.

        Parameters
        ----------
        params : array_like of float, shape (K,)
        covariance : array_like of float, shape (K, K)
            Parameter covariance in parameter units squared.

        Returns
        -------
        float
            ``sqrt(g C g^T)`` with ``g`` = :meth:`integral_gradient`; NaN when the
            covariance is not finite.
        """
        g = self.integral_gradient(np.asarray(params, dtype=np.float64))
        c = np.asarray(covariance, dtype=np.float64)
        if not np.all(np.isfinite(c)) or not np.all(np.isfinite(g)):
            return math.nan
        var = float(g @ c @ g)
        return math.sqrt(var) if var >= 0.0 else math.nan

    def terminal_rate(self, params: ArrayLike) -> float:
        """Terminal (slowest) effective rate constant in 1/h (the physical one for ``physical``)."""
        p = np.asarray(params, dtype=np.float64)
        if self.terminal_index is None:
            return float(self.decay_constant_per_h)
        return float(p[self.terminal_index])

    # ---- variable projection (amplitudes linear given the rates) ---------------------

    @property
    def n_rates(self) -> int:
        """Number of free rate constants."""
        return len(self.rate_index)

    def basis(self, rates: ArrayLike, t_h: ArrayLike) -> NDArray[np.float64]:
        """Basis functions multiplying the amplitudes, for given rate constants.

        Parameters
        ----------
        rates : array_like of float, shape (n_rates, G)
            Rate constants (1/h) in increasing order, for ``G`` candidate sets.
        t_h : array_like of float, shape (n,)

        Returns
        -------
        ndarray of float, shape (G, n_amplitudes, n)
            ``A(t) = sum_j amp_j * basis[:, j, :]``.
        """
        t = np.asarray(t_h, dtype=np.float64)[None, :]
        r = np.asarray(rates, dtype=np.float64)
        if self.name == "physical":
            return np.exp(-self.decay_constant_per_h * t)[None, :, :]
        e = [np.exp(-r[j][:, None] * t) for j in range(r.shape[0])]
        if self.name == "mono":
            cols = [e[0]]
        elif self.name == "biexp_uptake":
            cols = [e[0] - e[1]]
        elif self.name == "biexp":
            cols = [e[0], e[1]]
        else:
            cols = [e[0] - e[2], e[1] - e[2]]
        return np.stack(cols, axis=1)

    def assemble(self, amplitudes: ArrayLike, rates: ArrayLike) -> NDArray[np.float64]:
        """Parameters ``p`` from amplitudes and rate constants.

        Parameters
        ----------
        amplitudes : array_like of float, shape (n_amplitudes,)
            MBq.
        rates : array_like of float, shape (n_rates,)
            1/h, increasing.

        Returns
        -------
        ndarray of float, shape (K,)
        """
        p = np.empty(self.n_params)
        p[list(self.amp_index)] = np.asarray(amplitudes, dtype=np.float64)
        if self.rate_index:
            p[list(self.rate_index)] = np.asarray(rates, dtype=np.float64)
        return p


#: ``A1 exp(-lambda1 t)``.
MONO = Model(
    "mono",
    ("a1_mbq", "lambda1_per_h"),
    "A1 exp(-lambda1 t)",
    amp_index=(0,),
    rate_index=(1,),
)
#: ``A1 (exp(-lambda1 t) - exp(-lambda2 t))``, uptake ``lambda2 >= lambda1`` washout.
BIEXP_UPTAKE = Model(
    "biexp_uptake",
    ("a1_mbq", "lambda1_per_h", "lambda2_per_h"),
    "A1 (exp(-lambda1 t) - exp(-lambda2 t)), lambda2 >= lambda1 (uptake then washout)",
    amp_index=(0,),
    rate_index=(1, 2),
)
#: ``A1 exp(-lambda1 t) + A2 exp(-lambda2 t)``, ``lambda1`` slow (terminal).
BIEXP = Model(
    "biexp",
    ("a1_mbq", "lambda1_per_h", "a2_mbq", "lambda2_per_h"),
    "A1 exp(-lambda1 t) + A2 exp(-lambda2 t), lambda2 >= lambda1 (two clearance phases)",
    amp_index=(0, 2),
    rate_index=(1, 3),
    washout_index=(3,),
)
#: Uptake plus two washout phases with ``A(0) = 0``.
TRIEXP = Model(
    "triexp",
    ("a1_mbq", "lambda1_per_h", "a2_mbq", "lambda2_per_h", "lambda3_per_h"),
    "A1 exp(-lambda1 t) + A2 exp(-lambda2 t) - (A1 + A2) exp(-lambda3 t), "
    "lambda1 <= lambda2 <= lambda3 (uptake lambda3, A(0) = 0)",
    amp_index=(0, 2),
    rate_index=(1, 3, 4),
    washout_index=(3,),
)

#: All model names, simplest first.
MODEL_NAMES: tuple[str, ...] = ("physical", "mono", "biexp_uptake", "biexp", "triexp")

_FREE_MODELS = {m.name: m for m in (MONO, BIEXP_UPTAKE, BIEXP, TRIEXP)}


def physical_model(decay_constant_per_h: float) -> Model:
    """The one-parameter physical-decay model ``A1 exp(-lambda_phys t)``.

    Parameters
    ----------
    decay_constant_per_h : float
        Physical decay constant, 1/h (``Nuclide(...).decay_constant_per_h``).

    Returns
    -------
    Model

    Raises
    ------
    KineticsError
        If the decay constant is not finite and positive.
    """
    lam = float(decay_constant_per_h)
    if not (math.isfinite(lam) and lam > 0.0):
        raise KineticsError(
            "decay_constant_per_h",
            "physical decay constant must be finite and positive",
            decay_constant_per_h,
            "use Nuclide(name).decay_constant_per_h of a radioactive nuclide",
        )
    return Model(
        "physical",
        ("a1_mbq",),
        "A1 exp(-lambda_phys t) (physical decay only)",
        decay_constant_per_h=lam,
        amp_index=(0,),
        rate_index=(),
    )


def get_model(name: str | Model, decay_constant_per_h: float | None = None) -> Model:
    """Look up a model by name.

    Parameters
    ----------
    name : str or Model
        One of :data:`MODEL_NAMES`; a :class:`Model` is returned as is.
    decay_constant_per_h : float, optional
        Physical decay constant in 1/h; required for ``"physical"``.

    Returns
    -------
    Model

    Raises
    ------
    KineticsError
        Unknown name, or ``"physical"`` without a decay constant.
    """
    if isinstance(name, Model):
        return name
    key = str(name).strip().lower()
    if key == "physical":
        if decay_constant_per_h is None:
            raise KineticsError(
                "decay_constant_per_h",
                "the physical model needs the physical decay constant",
                None,
                "pass decay_constant_per_h=Nuclide(name).decay_constant_per_h",
            )
        return physical_model(decay_constant_per_h)
    if key not in _FREE_MODELS:
        raise KineticsError(
            "model", "unknown kinetic model", name, f"use one of {', '.join(MODEL_NAMES)}"
        )
    return _FREE_MODELS[key]
