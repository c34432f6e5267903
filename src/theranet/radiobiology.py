"""Linear–quadratic radiobiology of radionuclide therapy: BED, EQD2, cycles, BED maps.

The biologically effective dose (BED) of a protracted irradiation with
mono-exponential repair of sub-lethal damage (Dale 1985, the formulation used in
radionuclide therapy, MIRD Pamphlet 20 and clinical.md §5.6) is

.. math::

    \\mathrm{BED} = D + \\frac{1}{\\alpha/\\beta}\\, Q,\\qquad
    Q = 2\\int_0^\\infty \\dot D(t) \\int_0^t \\dot D(w)\\, e^{-\\mu (t - w)}\\, dw\\, dt,

with the absorbed dose ``D`` (Gy), the dose rate ``Ddot(t)`` (Gy/h), the tissue's
``alpha/beta`` (Gy) and the repair rate ``mu = ln2 / T_rep`` (1/h, ``T_rep`` the
repair half-time). ``G = Q / D**2`` is the Lea–Catcheside (dose-protraction)
factor, ``0 < G <= 1``: ``BED = D (1 + G D / (alpha/beta))``.

Dose rate
---------
The absorbed-dose rate of a region is taken proportional to its activity, a sum
of exponentials (:mod:`theranet.kinetics.models`):
``Ddot(t) = sum_i a_i exp(-lambda_i t)`` (:class:`DoseRate`), amplitudes in
Gy/h (negative for an uptake phase), effective rate constants in 1/h. For such a
dose rate ``Q`` has a closed form (:func:`quadratic_term_gy2`, derivation there).

Parameters
----------
``alpha/beta`` and ``T_rep`` per tissue come from a versioned, sourced table
(``theranet/data/radiobiology.toml``; :func:`load_tissues`, :func:`tissue`). The
values are uncertain and sources disagree (clinical.md §5.6, §9a): every one is a
configurable default with its source and status.

Cycles
------
Cycles weeks apart add in BED, not in absorbed dose (:func:`cumulative_bed_gy`).

References
----------
Dale RG. The application of the linear-quadratic dose-effect equation to
fractionated and protracted radiotherapy. Br J Radiol 1985;58:515–528.

Wessels BW, Konijnenberg MW, Dale RG, et al. MIRD pamphlet No. 20: the effect of
model assumptions on kidney dosimetry and response — implications for
radionuclide therapy. J Nucl Med 2008;49:1884–1899.

Examples
--------
>>> from theranet import radiobiology as rb
>>> kidney = rb.tissue("kidneys")
>>> kidney.alpha_beta_gy, kidney.repair_half_time_h
(2.6, 2.8)
>>> rate = rb.DoseRate.mono(dose_gy=3.7, effective_half_life_h=50.0)
>>> round(rb.bed_gy(rate, kidney), 3)
3.979
>>> round(rb.eqd2_gy(3.979, kidney.alpha_beta_gy), 2)
2.25
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from os import PathLike
from types import MappingProxyType
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from theranet import _checks
from theranet._tables import SourcedTable, load_user_table, parse_toml, read_shipped
from theranet.errors import TheranetError
from theranet.radiopharmaceuticals import Sourced

__all__ = [
    "CycleBED",
    "DoseRate",
    "PiecewiseDoseRate",
    "RadiobiologyError",
    "Tissue",
    "TissueTable",
    "bed_gy",
    "bed_map_gy",
    "bed_numerical_gy",
    "cumulative_bed_gy",
    "eqd2_gy",
    "g_factor",
    "load_tissues",
    "quadratic_term_gy2",
    "tissue",
    "tissue_of",
]

logger = logging.getLogger(__name__)

_LN2 = math.log(2.0)
_DATA_FILE = "data/radiobiology.toml"
_TOP_KEYS = frozenset({"version", "tissue"})
_TISSUE_KEYS = frozenset({"aliases", "alpha_beta", "repair_half_time"})
# unit -> factor to the internal unit, per parameter
_UNITS: dict[str, dict[str, float]] = {
    "alpha_beta": {"Gy": 1.0},
    "repair_half_time": {"h": 1.0, "min": 1.0 / 60.0, "s": 1.0 / 3600.0},
}
# Relative size of the largest exponential term against the dose above which the
# closed form loses digits to cancellation (near-equal rate constants).
_CANCELLATION_WARN = 1e6


class RadiobiologyError(TheranetError, ValueError):
    """A radiobiological parameter, dose or dose-rate argument is unusable."""


# ----------------------------------------------------------------------------------------
# argument checks


def _finite_float(name: str, value: Any) -> float:
    return _checks.finite_number(RadiobiologyError, name, value)


def _positive(name: str, value: Any, unit: str) -> float:
    return _checks.positive(RadiobiologyError, name, value, unit)


def _non_negative(name: str, value: Any, unit: str) -> float:
    return _checks.non_negative(RadiobiologyError, name, value, unit)


_normalise_name = _checks.lookup_key


# ----------------------------------------------------------------------------------------
# tissues


@dataclass(frozen=True)
class Tissue:
    """Linear–quadratic parameters of a tissue.

    Parameters
    ----------
    name : str
        Canonical tissue name, e.g. ``"kidney"``.
    alpha_beta_gy : float
        ``alpha/beta`` ratio, Gy (> 0).
    repair_half_time_h : float
        Half-time of sub-lethal damage repair ``T_rep``, h (> 0); repair rate
        ``mu = ln2 / T_rep``.
    sources : mapping of str to Sourced, optional
        Provenance of each value (keys ``"alpha_beta"`` and ``"repair_half_time"``);
        empty for ad-hoc tissues.
    aliases : tuple of str, optional
        Other accepted spellings.

    Raises
    ------
    RadiobiologyError
        ``alpha_beta_gy`` or ``repair_half_time_h`` not finite and positive.

    Examples
    --------
    >>> Tissue("kidney (site)", alpha_beta_gy=2.6, repair_half_time_h=1.5).repair_rate_per_h
    0.46209812037329684
    """

    name: str
    alpha_beta_gy: float
    repair_half_time_h: float
    sources: Mapping[str, Sourced] = field(default_factory=dict, compare=False, repr=False)
    aliases: tuple[str, ...] = field(default=(), compare=False, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise RadiobiologyError("name", "must be a non-empty string", self.name)
        object.__setattr__(
            self, "alpha_beta_gy", _positive("alpha_beta_gy", self.alpha_beta_gy, "Gy")
        )
        object.__setattr__(
            self,
            "repair_half_time_h",
            _positive("repair_half_time_h", self.repair_half_time_h, "h"),
        )
        object.__setattr__(self, "sources", MappingProxyType(dict(self.sources)))
        object.__setattr__(self, "aliases", tuple(self.aliases))

    @property
    def repair_rate_per_h(self) -> float:
        """Repair rate constant ``mu = ln2 / T_rep``, 1/h."""
        return _LN2 / self.repair_half_time_h

    @property
    def is_verified(self) -> bool:
        """Whether both values carry a source marked verified (✔) in the reference."""
        keys = ("alpha_beta", "repair_half_time")
        return all(k in self.sources and self.sources[k].is_verified for k in keys)


class TissueTable(SourcedTable[Tissue]):
    """A validated table of tissues, looked up by name or alias.

    Parameters
    ----------
    tissues : iterable of Tissue
    version : str
        Version of the table(s) the entries come from.
    paths : tuple of str, optional
        Files the table was read from (shipped table first).

    Raises
    ------
    RadiobiologyError
        Two tissues share a name or alias.
    """

    _entry_type = Tissue
    _normalise = staticmethod(_normalise_name)

    def __init__(self, tissues: Iterable[Tissue], version: str, paths: tuple[str, ...] = ()):
        super().__init__(tissues, version, paths)

    def _clash_error(self, entry: Tissue, other: Tissue, key: str) -> RadiobiologyError:
        return RadiobiologyError(
            f"tissue.{entry.name}",
            f"name or alias also used by '{other.name}'",
            key,
            "make tissue names and aliases unique",
            source=" + ".join(self._paths) or None,
        )

    def get(self, name: str | Tissue) -> Tissue:
        """Look up a tissue by name or alias (case, spaces and hyphens ignored).

        Parameters
        ----------
        name : str or Tissue
            E.g. ``"kidney"``, ``"Kidneys"``, ``"red marrow"``; a :class:`Tissue`
            is returned as is.

        Returns
        -------
        Tissue

        Raises
        ------
        RadiobiologyError
            Unknown tissue; the message lists the known ones.
        """
        if isinstance(name, Tissue):
            return name
        if not isinstance(name, str):
            raise RadiobiologyError("tissue", "must be a tissue name or a Tissue", name)
        entry = self._lookup(name)
        if entry is None:
            raise RadiobiologyError(
                "tissue",
                "unknown tissue",
                name,
                f"use one of {', '.join(self.names())} (or an alias), pass a "
                "Tissue(name, alpha_beta_gy, repair_half_time_h), or add the tissue with "
                "load_tissues('site.toml')",
            )
        return entry

    def __repr__(self) -> str:
        return f"TissueTable(version={self._version!r}, tissues={list(self.names())})"


def _read_toml(text: str, source: str) -> dict[str, Any]:
    doc = parse_toml(RadiobiologyError, text, source)
    unknown = sorted(set(doc) - _TOP_KEYS)
    if unknown:
        raise RadiobiologyError(
            "table", "unknown key(s)", unknown, "allowed keys are tissue, version", source
        )
    tissues = doc.get("tissue", {})
    if not isinstance(tissues, Mapping):
        raise RadiobiologyError(
            "tissue", "must be a table of tables ([tissue.<name>])", tissues, source=source
        )
    for name, raw in tissues.items():
        if not isinstance(raw, Mapping):
            raise RadiobiologyError(f"tissue.{name}", "must be a table", raw, source=source)
        unknown = sorted(set(raw) - _TISSUE_KEYS)
        if unknown:
            raise RadiobiologyError(
                f"tissue.{name}",
                "unknown key(s)",
                unknown,
                f"allowed keys are {', '.join(sorted(_TISSUE_KEYS))}",
                source,
            )
    return doc


def _parse_param(raw: Any, key: str, where: str, source: str) -> Sourced:
    return _checks.sourced_value(
        RadiobiologyError, raw, where, source, factors=_UNITS[key],
        internal_unit="Gy" if key == "alpha_beta" else "h",
    )  # fmt: skip


def _parse_tissue(name: str, raw: Mapping[str, Any], source: str) -> Tissue:
    where = f"tissue.{name}"
    params: dict[str, Sourced] = {}
    for key in ("alpha_beta", "repair_half_time"):
        if key not in raw:
            raise RadiobiologyError(
                f"{where}.{key}",
                "missing",
                fix="give both alpha_beta (Gy) and repair_half_time (h) with their sources",
                source=source,
            )
        params[key] = _parse_param(raw[key], key, f"{where}.{key}", source)
    aliases = raw.get("aliases", [])
    if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
        raise RadiobiologyError(
            f"{where}.aliases", "must be a list of strings", aliases, source=source
        )
    return Tissue(
        name=_normalise_name(name),
        alpha_beta_gy=float(params["alpha_beta"].value),
        repair_half_time_h=float(params["repair_half_time"].value),
        sources=params,
        aliases=tuple(aliases),
    )


def _merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    tissues: dict[str, Any] = merged.setdefault("tissue", {})
    keys = {}
    for name, raw in tissues.items():
        for alias in (name, *raw.get("aliases", [])):
            keys[_normalise_name(alias)] = name
    for name, raw in override.get("tissue", {}).items():
        target = keys.get(_normalise_name(name))
        if target is None:
            tissues[name] = copy.deepcopy(dict(raw))
        else:
            tissues[target].update(copy.deepcopy(dict(raw)))
    return merged


def _build(doc: Mapping[str, Any], version: str, paths: tuple[str, ...]) -> TissueTable:
    source = " + ".join(paths)
    tissues = [_parse_tissue(n, raw, source) for n, raw in doc.get("tissue", {}).items()]
    if not tissues:
        raise RadiobiologyError("tissue", "no tissues in the table", source=source)
    return TissueTable(tissues, version, paths)


@lru_cache(maxsize=1)
def _shipped_doc() -> tuple[dict[str, Any], str]:
    return read_shipped(_DATA_FILE, _read_toml)


@lru_cache(maxsize=1)
def _shipped() -> TissueTable:
    doc, source = _shipped_doc()
    return _build(doc, str(doc.get("version", "")), (source,))


def load_tissues(path: str | PathLike[str] | None = None, *, merge: bool = True) -> TissueTable:
    """Read and validate a table of tissue parameters.

    Parameters
    ----------
    path : str or path-like, optional
        A user TOML with the layout of the shipped ``radiobiology.toml``
        (``[tissue.<name>]`` tables with ``alpha_beta`` and ``repair_half_time``
        parameters, each ``{value, unit, source, section, status}``). ``None``
        reads the shipped table.
    merge : bool, default True
        If true, the user table overrides the shipped one: a tissue whose name
        equals a shipped name or alias has the parameters (and ``aliases``) it gives
        replaced, each parameter as a whole; other tissues are added. If false the
        user table replaces the shipped one and must be complete.

    Returns
    -------
    TissueTable

    Raises
    ------
    RadiobiologyError
        Unreadable file, unknown keys, missing value/unit/source/section/status,
        non-positive values, disallowed units or statuses, duplicate names.

    Examples
    --------
    A site table that changes the kidney repair half-time::

        [tissue.kidney]
        repair_half_time = { value = 1.5, unit = "h", source = "site protocol",
                             section = "SOP 12", status = "uncertain" }
    """
    if path is None:
        return _shipped()
    return load_user_table(
        RadiobiologyError,
        path,
        merge=merge,
        shipped=_shipped_doc(),
        read_toml=_read_toml,
        merge_docs=_merge,
        build=_build,
    )


def tissue(name: str | Tissue, table: TissueTable | None = None) -> Tissue:
    """Look up a tissue's LQ parameters by name or alias.

    Parameters
    ----------
    name : str or Tissue
        ``"kidney"``, ``"red_marrow"``, ``"liver"``, ``"tumour"`` or an alias
        (``"kidneys"``, ``"marrow"``, ``"tumor"`` …); a Tissue is returned as is.
    table : TissueTable, optional
        Table to look in (from :func:`load_tissues`); default the shipped table.

    Returns
    -------
    Tissue

    Raises
    ------
    RadiobiologyError
        Unknown tissue (the message names the known ones).
    """
    return (table if table is not None else _shipped()).get(name)


# ----------------------------------------------------------------------------------------
# dose rate


def _exponentials_of_fit(fit_result: Any) -> tuple[list[float], list[float]]:
    """Amplitudes (MBq) and rate constants (1/h) of a fitted sum-of-exponentials model."""
    model = getattr(fit_result, "model", None)
    params = getattr(fit_result, "params", None)
    name = getattr(model, "name", None)
    if model is None or params is None or name is None:
        raise RadiobiologyError(
            "fit_result",
            "needs .model (with .name) and .params",
            type(fit_result).__name__,
            "pass a theranet.kinetics FitResult",
        )
    p = [float(v) for v in np.asarray(params, dtype=np.float64).ravel()]
    try:
        if name == "physical":
            return [p[0]], [float(model.decay_constant_per_h)]
        if name == "mono":
            return [p[0]], [p[1]]
        if name == "biexp_uptake":
            return [p[0], -p[0]], [p[1], p[2]]
        if name == "biexp":
            return [p[0], p[2]], [p[1], p[3]]
        if name == "triexp":
            return [p[0], p[2], -(p[0] + p[2])], [p[1], p[3], p[4]]
    except (IndexError, TypeError):
        raise RadiobiologyError(
            "fit_result.params", f"wrong number of parameters for model {name!r}", p
        ) from None
    raise RadiobiologyError(
        "fit_result.model",
        "not a sum-of-exponentials model",
        name,
        "use a fit of physical, mono, biexp_uptake, biexp or triexp",
    )


@dataclass(frozen=True)
class DoseRate:
    """Absorbed-dose rate as a sum of exponentials, ``Ddot(t) = sum_i a_i exp(-lambda_i t)``.

    Parameters
    ----------
    amplitudes_gy_per_h : sequence of float
        Amplitudes ``a_i``, Gy/h; may be negative (uptake phase), but the dose
        rate must be ``>= 0`` at all times.
    rates_per_h : sequence of float
        Effective rate constants ``lambda_i``, 1/h, finite and ``> 0``.

    Raises
    ------
    RadiobiologyError
        Lengths differ or are zero, values not finite, a rate constant ``<= 0``,
        or the dose rate is negative somewhere (or in total).

    Notes
    -----
    ``t`` is the time after injection (h). Use :meth:`mono`, :meth:`uptake_washout`
    or :meth:`from_fit` rather than the amplitudes directly.
    """

    amplitudes_gy_per_h: tuple[float, ...]
    rates_per_h: tuple[float, ...]

    def __post_init__(self) -> None:
        a = np.atleast_1d(np.asarray(self.amplitudes_gy_per_h, dtype=np.float64))
        lam = np.atleast_1d(np.asarray(self.rates_per_h, dtype=np.float64))
        if a.ndim != 1 or lam.ndim != 1 or a.size != lam.size or a.size == 0:
            raise RadiobiologyError(
                "amplitudes_gy_per_h/rates_per_h",
                "need the same number (>= 1) of amplitudes and rate constants",
                (a.shape, lam.shape),
                "give one amplitude per rate constant",
            )
        if not np.all(np.isfinite(a)):
            raise RadiobiologyError(
                "amplitudes_gy_per_h", "must be finite", a.tolist(), "give finite Gy/h"
            )
        if not np.all(np.isfinite(lam)) or np.any(lam <= 0.0):
            raise RadiobiologyError(
                "rates_per_h",
                "rate constants must be finite and > 0",
                lam.tolist(),
                "give effective rate constants ln2 / T_eff in 1/h (T_eff finite)",
            )
        object.__setattr__(self, "amplitudes_gy_per_h", tuple(float(v) for v in a))
        object.__setattr__(self, "rates_per_h", tuple(float(v) for v in lam))
        scale = float(np.sum(np.abs(a)))
        if scale == 0.0:
            return
        # non-negativity on a time grid spanning the fastest to the slowest phase
        t = np.concatenate(([0.0], np.geomspace(1e-3 / lam.max(), 60.0 / lam.min(), 400)))
        values = self.evaluate(t)
        if np.min(values) < -1e-9 * scale or self.dose_gy < 0.0:
            i = int(np.argmin(values))
            raise RadiobiologyError(
                "amplitudes_gy_per_h",
                f"dose rate is negative (at t = {t[i]:.4g} h: {values[i]:.4g} Gy/h)",
                list(self.amplitudes_gy_per_h),
                "check the signs of the amplitudes (an uptake phase needs a faster rate "
                "than the washout it subtracts from)",
            )

    # ---- constructors -------------------------------------------------------------------

    @classmethod
    def mono(cls, dose_gy: float, effective_half_life_h: float) -> DoseRate:
        """Instant uptake, mono-exponential clearance: ``Ddot = D lambda exp(-lambda t)``.

        Parameters
        ----------
        dose_gy : float
            Absorbed dose ``D`` (0 to infinity), Gy, ``>= 0``.
        effective_half_life_h : float
            Effective half-life ``T_eff``, h, finite and ``> 0``; ``lambda = ln2 / T_eff``.

        Returns
        -------
        DoseRate
        """
        d = _non_negative("dose_gy", dose_gy, "Gy")
        lam = _LN2 / _positive("effective_half_life_h", effective_half_life_h, "h")
        return cls((d * lam,), (lam,))

    @classmethod
    def uptake_washout(
        cls, dose_gy: float, uptake_half_life_h: float, effective_half_life_h: float
    ) -> DoseRate:
        """Uptake then washout: ``Ddot = R0 (exp(-lambda_c t) - exp(-lambda_u t))``.

        Parameters
        ----------
        dose_gy : float
            Absorbed dose ``D = R0 (1/lambda_c - 1/lambda_u)``, Gy, ``>= 0``.
        uptake_half_life_h : float
            Uptake half-life ``ln2 / lambda_u``, h, ``> 0`` and shorter than the
            effective (washout) half-life.
        effective_half_life_h : float
            Effective washout half-life ``ln2 / lambda_c``, h.

        Returns
        -------
        DoseRate

        Raises
        ------
        RadiobiologyError
            Bad values, or uptake not faster than washout.
        """
        d = _non_negative("dose_gy", dose_gy, "Gy")
        t_up = _positive("uptake_half_life_h", uptake_half_life_h, "h")
        t_eff = _positive("effective_half_life_h", effective_half_life_h, "h")
        if not t_up < t_eff:
            raise RadiobiologyError(
                "uptake_half_life_h",
                f"must be shorter than effective_half_life_h ({t_eff} h)",
                uptake_half_life_h,
                "swap the arguments, or build DoseRate(amplitudes, rates) directly",
            )
        lam_c, lam_u = _LN2 / t_eff, _LN2 / t_up
        r0 = d / (1.0 / lam_c - 1.0 / lam_u)
        return cls((r0, -r0), (lam_c, lam_u))

    @classmethod
    def from_fit(cls, fit_result: Any, dose_gy: float) -> DoseRate:
        """Dose rate with the shape of a fitted activity curve and a given absorbed dose.

        ``Ddot(t) = D A(t) / integral_0^inf A dt``: the absorbed-dose rate is taken
        proportional to the region's (not decay-corrected) activity.

        Parameters
        ----------
        fit_result : FitResult
            A :func:`theranet.kinetics.fit_tac` result (``.model``, ``.params``) of
            model ``physical``, ``mono``, ``biexp_uptake``, ``biexp`` or ``triexp``.
        dose_gy : float
            Absorbed dose of the region, Gy, ``>= 0``.

        Returns
        -------
        DoseRate

        Raises
        ------
        RadiobiologyError
            Not a sum-of-exponentials fit, a rate constant ``<= 0`` (infinite
            TIA), or a fitted curve with zero or negative time integral.
        """
        d = _non_negative("dose_gy", dose_gy, "Gy")
        amps_mbq, rates = _exponentials_of_fit(fit_result)
        if not all(math.isfinite(r) and r > 0.0 for r in rates):
            raise RadiobiologyError(
                "fit_result.params",
                "rate constants must be finite and > 0 (finite time-integrated activity)",
                rates,
                "refit with the terminal rate bounded by the physical decay constant",
            )
        tia_mbq_h = math.fsum(a / r for a, r in zip(amps_mbq, rates, strict=True))
        if not (math.isfinite(tia_mbq_h) and tia_mbq_h > 0.0):
            raise RadiobiologyError(
                "fit_result.params",
                "fitted curve has no positive time integral",
                tia_mbq_h,
                "check the fit (zero amplitude or coinciding uptake and washout rates)",
            )
        scale = d / tia_mbq_h  # Gy per MBq h
        return cls(tuple(a * scale for a in amps_mbq), tuple(rates))

    # ---- values -------------------------------------------------------------------------

    @property
    def dose_gy(self) -> float:
        """Absorbed dose ``D = sum_i a_i / lambda_i`` (0 to infinity), Gy."""
        return math.fsum(
            a / lam for a, lam in zip(self.amplitudes_gy_per_h, self.rates_per_h, strict=True)
        )

    def evaluate(self, t_h: ArrayLike) -> NDArray[np.float64]:
        """Dose rate ``Ddot(t)`` in Gy/h at times ``t_h`` (h after injection)."""
        t = np.asarray(t_h, dtype=np.float64)
        a = np.asarray(self.amplitudes_gy_per_h)
        lam = np.asarray(self.rates_per_h)
        return np.sum(a * np.exp(-np.multiply.outer(t, lam)), axis=-1)

    def scaled(self, factor: float) -> DoseRate:
        """A new dose rate with every amplitude multiplied by ``factor`` (>= 0)."""
        f = _non_negative("factor", factor, "1")
        return DoseRate(tuple(a * f for a in self.amplitudes_gy_per_h), self.rates_per_h)


@dataclass(frozen=True)
class PiecewiseDoseRate:
    """A dose rate linear between knots from injection, then a mono-exponential tail.

    ``Ddot(t)`` is interpolated linearly between ``(t_i, r_i)`` for
    ``0 = t_0 < ... < t_k`` and is ``c exp(-lambda t)`` for ``t >= t_k``: the shape
    of a curve integrated by head rule, trapezoids and a fitted tail (the hybrid
    rule of :func:`theranet.kinetics.integrate.hybrid_tia`), for which a sum of
    exponentials fitted to the tail alone would drop the early washout. The BED
    is then Dale's integral of this curve, evaluated segment by segment in closed
    form (:meth:`quadratic_term_gy2`), the approach of piecewise dose-rate fits
    (Hobbs & Sgouros 2009).

    Parameters
    ----------
    knots_h : sequence of float, shape (k + 1,)
        ``0 = t_0 < t_1 < ... < t_k``, h after injection.
    rates_gy_per_h : sequence of float, shape (k + 1,)
        Dose rates at the knots, Gy/h, ``>= 0``.
    tail_amplitude_gy_per_h : float
        ``c`` of the tail ``c exp(-lambda t)``, Gy/h (at ``t = 0``), ``>= 0``.
    tail_rate_per_h : float
        ``lambda`` of the tail, 1/h, ``> 0``.

    Raises
    ------
    RadiobiologyError
        Knots not starting at 0 or not increasing, lengths that differ, negative or
        non-finite rates, a tail rate ``<= 0``.
    """

    knots_h: tuple[float, ...]
    rates_gy_per_h: tuple[float, ...]
    tail_amplitude_gy_per_h: float
    tail_rate_per_h: float

    def __post_init__(self) -> None:
        t = np.asarray(self.knots_h, dtype=np.float64)
        r = np.asarray(self.rates_gy_per_h, dtype=np.float64)
        if t.ndim != 1 or t.size < 1 or r.shape != t.shape:
            raise RadiobiologyError(
                "knots_h/rates_gy_per_h",
                "need the same number (>= 1) of knots and rates",
                (t.shape, r.shape),
                "give one dose rate per knot",
            )
        if not np.all(np.isfinite(t)) or t[0] != 0.0 or np.any(np.diff(t) <= 0.0):
            raise RadiobiologyError(
                "knots_h", "must start at 0 h and increase", t.tolist(), "give 0 < t_1 < ..."
            )
        if not np.all(np.isfinite(r)) or np.any(r < 0.0):
            raise RadiobiologyError(
                "rates_gy_per_h", "must be finite and >= 0", r.tolist(), "give Gy/h >= 0"
            )
        c = _non_negative("tail_amplitude_gy_per_h", self.tail_amplitude_gy_per_h, "Gy/h")
        lam = _positive("tail_rate_per_h", self.tail_rate_per_h, "1/h")
        object.__setattr__(self, "knots_h", tuple(float(v) for v in t))
        object.__setattr__(self, "rates_gy_per_h", tuple(float(v) for v in r))
        object.__setattr__(self, "tail_amplitude_gy_per_h", c)
        object.__setattr__(self, "tail_rate_per_h", lam)

    @property
    def dose_gy(self) -> float:
        """Absorbed dose, Gy: trapezoids over the knots plus ``c exp(-lambda t_k) / lambda``."""
        t, r = np.asarray(self.knots_h), np.asarray(self.rates_gy_per_h)
        body = float(np.sum(np.diff(t) * (r[1:] + r[:-1]) / 2.0)) if t.size > 1 else 0.0
        lam = self.tail_rate_per_h
        return body + self.tail_amplitude_gy_per_h * math.exp(-lam * t[-1]) / lam

    def evaluate(self, t_h: ArrayLike) -> NDArray[np.float64]:
        """Dose rate ``Ddot(t)`` in Gy/h at times ``t_h`` (h after injection)."""
        t = np.asarray(t_h, dtype=np.float64)
        lam, c = self.tail_rate_per_h, self.tail_amplitude_gy_per_h
        tk = self.knots_h[-1]
        inside = np.interp(t, self.knots_h, self.rates_gy_per_h)
        return np.where(t >= tk, c * np.exp(-lam * t), inside)

    def scaled(self, factor: float) -> PiecewiseDoseRate:
        """A new dose rate with every rate multiplied by ``factor`` (>= 0)."""
        f = _non_negative("factor", factor, "1")
        return PiecewiseDoseRate(
            self.knots_h,
            tuple(v * f for v in self.rates_gy_per_h),
            self.tail_amplitude_gy_per_h * f,
            self.tail_rate_per_h,
        )

    def quadratic_term_gy2(self, repair_half_time_h: float) -> float:
        """Dale's protraction integral ``Q`` of this dose rate, Gy², in closed form.

        With ``Y(t) = ∫0^t Ddot(w) e^{-mu (t-w)} dw`` carried across the knots,
        ``Q = 2 ∫ Ddot Y dt``. On a segment of length ``h`` with ``Ddot = p + q tau``::

            Y(tau) = alpha e^{-mu tau} + beta + gamma tau,
            alpha = Y0 - p/mu + q/mu²,  beta = p/mu - q/mu²,  gamma = q/mu
            Q_seg  = 2 [ (p alpha) J0 + (q alpha) J1 + p beta h
                         + (p gamma + q beta) h²/2 + q gamma h³/3 ]

        with ``J0 = ∫0^h e^{-mu tau}``, ``J1 = ∫0^h tau e^{-mu tau}``; on the tail
        ``c e^{-lambda t}`` from ``t_k``::

            Q_tail = 2 c e^{-lambda t_k} [ Y_k / (lambda + mu)
                                           + c e^{-lambda t_k} / (2 lambda (lambda + mu)) ]

        (``t_k = 0``, ``Y_k = 0`` gives the mono-exponential ``G = lambda/(lambda + mu)``).

        Parameters
        ----------
        repair_half_time_h : float
            ``T_rep``, h; ``mu = ln2 / T_rep``.

        Returns
        -------
        float
            ``Q`` in Gy².
        """
        mu = _LN2 / _positive("repair_half_time_h", repair_half_time_h, "h")
        t, r = self.knots_h, self.rates_gy_per_h
        y = 0.0
        q_total = 0.0
        for i in range(len(t) - 1):
            h = t[i + 1] - t[i]
            p = r[i]
            q = (r[i + 1] - r[i]) / h
            alpha = y - p / mu + q / mu**2
            beta = p / mu - q / mu**2
            gamma = q / mu
            e = math.exp(-mu * h)
            one_minus_e = -math.expm1(-mu * h)
            j0 = one_minus_e / mu
            j1 = (one_minus_e - mu * h * e) / mu**2
            q_total += 2.0 * (
                p * alpha * j0
                + q * alpha * j1
                + p * beta * h
                + (p * gamma + q * beta) * h**2 / 2.0
                + q * gamma * h**3 / 3.0
            )
            y = alpha * e + beta + gamma * h
        lam, c = self.tail_rate_per_h, self.tail_amplitude_gy_per_h
        ck = c * math.exp(-lam * t[-1])
        q_total += 2.0 * ck * (y / (lam + mu) + ck / (2.0 * lam * (lam + mu)))
        return max(q_total, 0.0)


# ----------------------------------------------------------------------------------------
# BED


def _tissue_params(
    tissue_or_alpha_beta_gy: Tissue | str | float, repair_half_time_h: float | None
) -> tuple[float, float]:
    """``(alpha_beta_gy, repair_half_time_h)`` from a tissue or from two numbers."""
    if isinstance(tissue_or_alpha_beta_gy, Tissue | str):
        if repair_half_time_h is not None:
            raise RadiobiologyError(
                "repair_half_time_h",
                "given together with a tissue (ambiguous)",
                repair_half_time_h,
                "pass either a tissue, or alpha/beta in Gy with repair_half_time_h, or a "
                "Tissue(name, alpha_beta_gy, repair_half_time_h)",
            )
        t = tissue(tissue_or_alpha_beta_gy)
        return t.alpha_beta_gy, t.repair_half_time_h
    ab = _positive("alpha_beta_gy", tissue_or_alpha_beta_gy, "Gy")
    if repair_half_time_h is None:
        raise RadiobiologyError(
            "repair_half_time_h",
            "required when alpha/beta is given as a number",
            None,
            "pass repair_half_time_h in h, or a tissue name / Tissue",
        )
    return ab, _positive("repair_half_time_h", repair_half_time_h, "h")


def quadratic_term_gy2(dose_rate: DoseRate | PiecewiseDoseRate, repair_half_time_h: float) -> float:
    """Protraction integral ``Q = 2 ∫0^∞ Ddot(t) ∫0^t Ddot(w) e^{-mu (t-w)} dw dt``, Gy².

    Closed form for ``Ddot(t) = sum_i a_i exp(-lambda_i t)``::

        Q = 2 sum_i sum_j a_i a_j / ((lambda_i + lambda_j) (mu + lambda_j))

    Parameters
    ----------
    dose_rate : DoseRate or PiecewiseDoseRate
        A piecewise dose rate uses :meth:`PiecewiseDoseRate.quadratic_term_gy2`.
    repair_half_time_h : float
        ``T_rep``, h (> 0); ``mu = ln2 / T_rep``.

    Returns
    -------
    float
        ``Q`` in Gy² (``BED = D + Q / (alpha/beta)``; ``G = Q / D**2``).

    Notes
    -----
    Derivation. The inner integral, for ``mu != lambda_j``::

        I(t) = sum_j a_j e^{-mu t} ∫0^t e^{(mu - lambda_j) w} dw
             = sum_j a_j (e^{-lambda_j t} - e^{-mu t}) / (mu - lambda_j)

    (for ``mu = lambda_j`` the term is ``a_j t e^{-mu t}``, the limit of the
    same expression). Then, with ``∫0^∞ e^{-k t} dt = 1/k``::

        ∫0^∞ a_i e^{-lambda_i t} I(t) dt
            = sum_j a_i a_j / (mu - lambda_j) * [1/(lambda_i + lambda_j) - 1/(lambda_i + mu)]
            = sum_j a_i a_j / ((lambda_i + lambda_j) (lambda_i + mu))

    because ``1/(l_i + l_j) - 1/(l_i + mu) = (mu - l_j) / ((l_i + l_j)(l_i + mu))``:
    the factor ``mu - lambda_j`` cancels, so the result also holds at
    ``mu = lambda_j``. Summing over ``i`` and doubling gives ``Q``; swapping the
    summation indices (``a_i a_j`` and ``lambda_i + lambda_j`` are symmetric)
    turns ``(lambda_i + mu)`` into ``(mu + lambda_j)``, the form used here.

    Special cases (checked in the tests against numerical integration):

    * mono-exponential, ``a = D lambda``: ``Q = D² lambda / (lambda + mu)``, i.e.
      ``G = lambda / (lambda + mu)`` and Dale's (1985) classic
      ``BED = D (1 + D lambda / ((mu + lambda) (alpha/beta)))``;
    * ``lambda -> 0`` (very long half-life): ``G -> 0``, ``BED -> D``;
    * ``lambda -> inf`` (acute): ``G -> 1``, ``BED -> D (1 + D/(alpha/beta))``;
    * uptake + washout ``R0 (e^{-lc t} - e^{-lu t})``:
      ``G = lc lu (lc + lu + mu) / ((lc + lu)(lc + mu)(lu + mu))`` (clinical.md §5.6).

    With near-equal rate constants of opposite-sign amplitudes the terms cancel
    and digits are lost (a warning is logged when the largest term exceeds the
    dose by 10⁶).
    """
    if isinstance(dose_rate, PiecewiseDoseRate):
        return dose_rate.quadratic_term_gy2(repair_half_time_h)
    mu = _LN2 / _positive("repair_half_time_h", repair_half_time_h, "h")
    a = np.asarray(dose_rate.amplitudes_gy_per_h, dtype=np.float64)
    lam = np.asarray(dose_rate.rates_per_h, dtype=np.float64)
    terms = np.outer(a, a) / (np.add.outer(lam, lam) * (mu + lam)[None, :])
    q = 2.0 * math.fsum(terms.ravel())
    dose = dose_rate.dose_gy
    if dose > 0.0 and float(np.max(np.abs(a / lam))) > _CANCELLATION_WARN * dose:
        logger.warning(
            "quadratic_term_gy2: amplitudes cancel (largest term %.3g Gy vs dose %.3g Gy); "
            "the closed form may have lost digits",
            float(np.max(np.abs(a / lam))),
            dose,
        )
    return max(q, 0.0)


def g_factor(dose_rate: DoseRate | PiecewiseDoseRate, repair_half_time_h: float) -> float:
    """Lea–Catcheside dose-protraction factor ``G = Q / D²`` (dimensionless, 0 < G <= 1).

    Parameters
    ----------
    dose_rate : DoseRate or PiecewiseDoseRate
        With an absorbed dose ``> 0``.
    repair_half_time_h : float
        ``T_rep``, h.

    Returns
    -------
    float
        ``G``; ``BED = D (1 + G D / (alpha/beta))``. For a mono-exponential dose
        rate ``G = lambda / (lambda + mu) = T_rep / (T_rep + T_eff)``.

    Raises
    ------
    RadiobiologyError
        Zero absorbed dose (``G`` undefined).
    """
    dose = dose_rate.dose_gy
    if dose <= 0.0:
        raise RadiobiologyError(
            "dose_rate", "G is undefined for a zero absorbed dose", dose, "give a dose > 0"
        )
    return quadratic_term_gy2(dose_rate, repair_half_time_h) / dose**2


def bed_gy(
    dose_rate: DoseRate | PiecewiseDoseRate,
    tissue_or_alpha_beta_gy: Tissue | str | float,
    repair_half_time_h: float | None = None,
) -> float:
    """Biologically effective dose of a protracted irradiation (Dale 1985), Gy.

    ``BED = D + Q / (alpha/beta)`` with ``Q`` from :func:`quadratic_term_gy2`.

    Parameters
    ----------
    dose_rate : DoseRate or PiecewiseDoseRate
        Dose rate of the region (:meth:`DoseRate.mono`, :meth:`DoseRate.from_fit` …).
    tissue_or_alpha_beta_gy : Tissue, str or float
        A tissue (or its name, looked up in the shipped table), or ``alpha/beta``
        in Gy together with ``repair_half_time_h``.
    repair_half_time_h : float, optional
        ``T_rep`` in h; only with a numeric ``alpha/beta``.

    Returns
    -------
    float
        BED in Gy (``= D`` for ``D = 0``).

    Raises
    ------
    RadiobiologyError
        Unknown tissue, ``alpha/beta <= 0``, ``T_rep <= 0`` or ambiguous arguments.
    """
    ab, t_rep = _tissue_params(tissue_or_alpha_beta_gy, repair_half_time_h)
    return dose_rate.dose_gy + quadratic_term_gy2(dose_rate, t_rep) / ab


def eqd2_gy(
    bed_gy: float | ArrayLike, alpha_beta_gy: float | Tissue | str
) -> float | NDArray[np.float64]:
    """Equivalent dose in 2-Gy fractions, ``EQD2 = BED / (1 + 2 / (alpha/beta))``, Gy.

    Parameters
    ----------
    bed_gy : float or array_like of float
        BED, Gy, ``>= 0``.
    alpha_beta_gy : float, Tissue or str
        ``alpha/beta`` in Gy (> 0), or a tissue / tissue name.

    Returns
    -------
    float or ndarray of float
        EQD2 in Gy, shape of ``bed_gy``.

    Raises
    ------
    RadiobiologyError
        ``alpha/beta <= 0``; BED negative or not finite.
    """
    if isinstance(alpha_beta_gy, Tissue | str):
        ab = tissue(alpha_beta_gy).alpha_beta_gy
    else:
        ab = _positive("alpha_beta_gy", alpha_beta_gy, "Gy")
    b = np.asarray(bed_gy, dtype=np.float64)
    if not np.all(np.isfinite(b)) or np.any(b < 0.0):
        raise RadiobiologyError(
            "bed_gy", "must be finite and >= 0", bed_gy if b.ndim == 0 else b.shape
        )
    out = b / (1.0 + 2.0 / ab)
    return float(out) if out.ndim == 0 else out


def bed_numerical_gy(
    dose_rate: DoseRate | Callable[[float], float],
    tissue_or_alpha_beta_gy: Tissue | str | float,
    repair_half_time_h: float | None = None,
    *,
    t_max_h: float | None = None,
    rtol: float = 1e-10,
) -> float:
    """BED by numerical integration of Dale's double integral (reference implementation).

    Integrates, with ``scipy.integrate.solve_ivp`` (LSODA, which switches to a stiff
    method once the fast repair kernel has equilibrated), the system::

        dD/dt = Ddot(t)
        dY/dt = Ddot(t) - mu Y          (Y(t) = ∫0^t Ddot(w) e^{-mu (t-w)} dw)
        dQ/dt = 2 Ddot(t) Y(t)

    from 0 to ``t_max_h``: the cumulative convolution of the dose rate with the
    repair kernel, without the closed form. Used to verify :func:`bed_gy`; also
    usable for a dose rate that is not a sum of exponentials.

    Parameters
    ----------
    dose_rate : DoseRate or callable
        A DoseRate, or a function ``Ddot(t_h) -> Gy/h`` (scalar in, scalar out).
    tissue_or_alpha_beta_gy, repair_half_time_h
        As in :func:`bed_gy`.
    t_max_h : float, optional
        Upper integration limit, h. Default for a DoseRate: 60 slowest half-lives
        (neglected tail < 1e-18 of the dose); required for a callable.
    rtol : float, optional
        Relative tolerance of the integrator.

    Returns
    -------
    float
        BED in Gy, ``D + Q / (alpha/beta)`` with the numerically integrated ``D``.
    """
    from scipy.integrate import solve_ivp

    ab, t_rep = _tissue_params(tissue_or_alpha_beta_gy, repair_half_time_h)
    mu = _LN2 / t_rep
    if isinstance(dose_rate, DoseRate):
        terms = tuple(zip(dose_rate.amplitudes_gy_per_h, dose_rate.rates_per_h, strict=True))

        def rate_fn(t: float) -> float:
            return math.fsum(a * math.exp(-k * t) for a, k in terms)

        lam = np.asarray(dose_rate.rates_per_h)
        t_end = 60.0 * _LN2 / float(lam.min()) if t_max_h is None else t_max_h
        first_step = min(0.01 / float(lam.max()), 0.01 / mu)
    else:
        if t_max_h is None:
            raise RadiobiologyError(
                "t_max_h", "required for a callable dose rate", None, "give the end time in h"
            )
        rate_fn = dose_rate  # type: ignore[assignment]
        t_end = t_max_h
        first_step = None
    t_end = _positive("t_max_h", t_end, "h")

    def rhs(t: float, y: NDArray[np.float64]) -> list[float]:
        r = rate_fn(t)
        return [r, r - mu * y[1], 2.0 * r * y[1]]

    sol = solve_ivp(
        rhs,
        (0.0, t_end),
        [0.0, 0.0, 0.0],
        method="LSODA",
        rtol=rtol,
        atol=1e-14,
        first_step=first_step,
    )
    if not sol.success:  # pragma: no cover - integrator failure
        raise RadiobiologyError("dose_rate", f"numerical integration failed: {sol.message}")
    dose, _, q = sol.y[:, -1]
    return float(dose + q / ab)


def bed_map_gy(
    dose_gy: ArrayLike,
    effective_half_life_h: ArrayLike,
    tissue_or_alpha_beta_gy: Tissue | str | float,
    repair_half_time_h: float | None = None,
) -> float | NDArray[np.float64]:
    """Voxel-wise BED for mono-exponential clearance (instant uptake), Gy.

    ``BED = D (1 + D lambda / ((mu + lambda) (alpha/beta)))``, ``lambda = ln2 / T_eff``,
    ``mu = ln2 / T_rep`` (Dale 1985), i.e. ``G = T_rep / (T_rep + T_eff)``.

    Parameters
    ----------
    dose_gy : array_like of float, shape (Z, Y, X) or any
        Absorbed dose per voxel, Gy, finite and ``>= 0``.
    effective_half_life_h : array_like of float or float
        Effective half-life per voxel (broadcast against ``dose_gy``), h, ``> 0``;
        ``inf`` allowed (no clearance within repair times: ``BED = D``).
    tissue_or_alpha_beta_gy : Tissue, str or float
        Tissue (or name), or ``alpha/beta`` in Gy with ``repair_half_time_h``.
    repair_half_time_h : float, optional
        ``T_rep`` in h; only with a numeric ``alpha/beta``.

    Returns
    -------
    float or ndarray of float
        BED in Gy, shape ``broadcast(dose_gy, effective_half_life_h)``.

    Raises
    ------
    RadiobiologyError
        Negative or non-finite dose, non-positive or NaN half-life, bad tissue
        parameters, shapes that do not broadcast.
    """
    ab, t_rep = _tissue_params(tissue_or_alpha_beta_gy, repair_half_time_h)
    d = np.asarray(dose_gy, dtype=np.float64)
    t_eff = np.asarray(effective_half_life_h, dtype=np.float64)
    if not np.all(np.isfinite(d)) or np.any(d < 0.0):
        bad = int(np.count_nonzero(~np.isfinite(d) | (d < 0.0)))
        raise RadiobiologyError(
            "dose_gy",
            f"{bad} voxel(s) negative, NaN or infinite",
            None,
            "mask or fill those voxels first (absorbed dose must be finite and >= 0 Gy)",
        )
    if np.any(np.isnan(t_eff)) or np.any(t_eff <= 0.0):
        bad = int(np.count_nonzero(np.isnan(t_eff) | (t_eff <= 0.0)))
        raise RadiobiologyError(
            "effective_half_life_h",
            f"{bad} value(s) NaN or <= 0",
            None,
            "give effective half-lives > 0 h (inf for no clearance); mask failed fits",
        )
    try:
        d, t_eff = np.broadcast_arrays(d, t_eff)
    except ValueError:
        raise RadiobiologyError(
            "effective_half_life_h",
            "shape does not broadcast against dose_gy",
            (np.shape(effective_half_life_h), np.shape(dose_gy)),
            "give one half-life or one per voxel",
        ) from None
    # G = lambda / (lambda + mu) = T_rep / (T_rep + T_eff); 0 for T_eff = inf
    g = t_rep / (t_rep + t_eff)
    out = d * (1.0 + g * d / ab)
    return float(out) if out.ndim == 0 else out


# ----------------------------------------------------------------------------------------
# cycles


@dataclass(frozen=True)
class CycleBED:
    """BED of one therapy cycle in one tissue.

    Attributes
    ----------
    cycle : int
        Cycle number (1-based).
    tissue : str
        Tissue name.
    dose_gy : float
        Absorbed dose of the cycle, Gy.
    bed_gy : float
        BED of the cycle, Gy.
    g_factor : float
        Lea–Catcheside factor of the cycle's dose rate (NaN for zero dose).
    alpha_beta_gy, repair_half_time_h : float
        Parameters used, Gy and h.
    """

    cycle: int
    tissue: str
    dose_gy: float
    bed_gy: float
    g_factor: float
    alpha_beta_gy: float
    repair_half_time_h: float

    @classmethod
    def from_dose_rate(
        cls, dose_rate: DoseRate, tissue_or_name: Tissue | str, cycle: int = 1
    ) -> CycleBED:
        """Compute the BED of one cycle from its dose rate.

        Parameters
        ----------
        dose_rate : DoseRate
        tissue_or_name : Tissue or str
        cycle : int, optional
            Cycle number, ``>= 1``.

        Returns
        -------
        CycleBED
        """
        if isinstance(cycle, bool) or not isinstance(cycle, int) or cycle < 1:
            raise RadiobiologyError("cycle", "must be an integer >= 1", cycle)
        t = tissue(tissue_or_name)
        dose = dose_rate.dose_gy
        g = g_factor(dose_rate, t.repair_half_time_h) if dose > 0.0 else math.nan
        return cls(
            cycle=cycle,
            tissue=t.name,
            dose_gy=dose,
            bed_gy=bed_gy(dose_rate, t),
            g_factor=g,
            alpha_beta_gy=t.alpha_beta_gy,
            repair_half_time_h=t.repair_half_time_h,
        )

    @property
    def eqd2_gy(self) -> float:
        """EQD2 of the cycle, Gy."""
        return float(eqd2_gy(self.bed_gy, self.alpha_beta_gy))


def cumulative_bed_gy(
    beds: Iterable[float | ArrayLike | CycleBED],
) -> float | NDArray[np.float64]:
    """Cumulative BED over therapy cycles: the sum of the cycles' BEDs, Gy.

    Rationale: in the LQ model the quadratic term comes from pairs of sub-lethal
    lesions interacting before they are repaired. Cycles are weeks apart (8 weeks
    for 177Lu-DOTATATE) while repair half-times are hours, so damage from one cycle
    is fully repaired before the next and no cross-cycle quadratic term arises: the
    log cell kill, hence BED, adds over cycles (clinical.md §5.6; the approach of
    Bodei 2008 for cumulative renal BED). BED is **not** the BED of the summed
    absorbed dose, which would count a quadratic interaction between cycles and
    overestimate the effect. Repopulation between cycles is ignored (no accepted
    values for late-responding normal tissue or PRRT tumours).

    Parameters
    ----------
    beds : iterable of float, array_like or CycleBED
        BED of each cycle, Gy (scalars, or BED maps of one shape), ``>= 0``.

    Returns
    -------
    float or ndarray of float
        Summed BED, Gy (0.0 for no cycles).

    Raises
    ------
    RadiobiologyError
        A BED negative or not finite, or maps of different shapes.
    """
    total: float | NDArray[np.float64] = 0.0
    for k, item in enumerate(beds):
        value = np.asarray(item.bed_gy if isinstance(item, CycleBED) else item, dtype=np.float64)
        if not np.all(np.isfinite(value)) or np.any(value < 0.0):
            raise RadiobiologyError(
                f"beds[{k}]", "BED must be finite and >= 0 Gy", item if value.ndim == 0 else None
            )
        try:
            total = np.add(total, value)
        except ValueError:
            raise RadiobiologyError(
                f"beds[{k}]", "shape differs from the previous cycles", value.shape
            ) from None
    arr = np.asarray(total)
    return float(arr) if arr.ndim == 0 else arr


def tissue_of(region: str) -> str | None:
    """The tissue of this table that a region name stands for (None if none).

    ``lesion*`` -> tumour, names with ``kidney`` -> kidney, ``red_marrow``,
    ``liver``; other regions have no parameters here.
    """
    low = region.lower()
    if low.startswith("lesion"):
        return "tumour"
    if "kidney" in low:
        return "kidney"
    if low == "red_marrow":
        return "red_marrow"
    if low == "liver":
        return "liver"
    return None
