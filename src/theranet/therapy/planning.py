"""Dose-based activity planning for the next cycle of radionuclide therapy (clinical.md §5.7).

After each cycle of a therapy given in cycles (177Lu-DOTATATE, standard 4 x 7.4 GBq,
clinical.md §5.2) the dosimetry of that cycle predicts the absorbed dose per
administered activity of the next one. This module finds the activity that brings
every organ at risk exactly to its limit and plans the smallest:

* kidney: cumulative biologically effective dose (BED), 40 Gy, or 28 Gy with risk
  factors (Bodei 2008; clinical.md §5.5); BED adds over cycles (clinical.md §5.6,
  :func:`theranet.radiobiology.cumulative_bed_gy`);
* red marrow: cumulative absorbed dose, 2 Gy (Menda 2018; clinical.md §5.5).

Model
-----
At therapeutic peptide amounts the kinetics do not depend on the activity, so the
dose-rate curve of the next cycle is the measured curve per GBq scaled by the
activity ``A`` (GBq): ``Ddot_A(t) = A Ddot_1(t)``. Its absorbed dose is ``d1 A``
(``d1`` the dose per GBq, Gy/GBq) and, because the Lea–Catcheside factor ``G``
depends on the shape of the curve only, its BED is (Dale 1985)::

    BED(A) = d1 A + G (d1 A)^2 / (alpha/beta)

The closed-form activity, its uncertainty and the one-sided 95 % activity are
derived in :func:`plan_next_cycle`. The limits and the standard regimen come from a
versioned, sourced table (``theranet/data/planning_limits.toml``; :func:`load_limits`,
:func:`limits`); every value is a configurable default.

References
----------
Bodei L, Cremonesi M, Ferrari M, et al. Long-term evaluation of renal toxicity after
peptide receptor radionuclide therapy with 90Y-DOTATOC and 177Lu-DOTATATE: the role of
associated risk factors. Eur J Nucl Med Mol Imaging 2008;35:1847–1856.

Menda Y, Madsen MT, O'Dorisio TM, et al. 90Y-DOTATOC dosimetry-based personalized
peptide receptor radionuclide therapy. J Nucl Med 2018;59:1692–1698.

Dale RG. The application of the linear-quadratic dose-effect equation to fractionated
and protracted radiotherapy. Br J Radiol 1985;58:515–528.

Examples
--------
The worked example of clinical.md §5.7: kidney 0.5 Gy/GBq, ``T_eff`` 50 h, three
standard cycles given (cumulative BED 3 x 3.979 Gy):

>>> from theranet.therapy.planning import OrganKinetics, limits, plan_next_cycle
>>> kidney = OrganKinetics.mono("kidney", dose_per_gbq_gy=0.5, effective_half_life_h=50.0)
>>> plan = plan_next_cycle(
...     {"kidney": 11.937}, [kidney], limits=limits(risk_factors=False), cycles_given=3
... )
>>> round(plan.activity_gbq, 1), plan.limiting_organ
(39.9, 'kidney')
>>> plan.n_standard_cycles_allowed
7
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from os import PathLike
from statistics import NormalDist
from types import MappingProxyType
from typing import Any

from theranet import _checks
from theranet import radiobiology as rb
from theranet._tables import load_user_table, parse_toml, read_shipped
from theranet.errors import TheranetError
from theranet.radiobiology import DoseRate, RadiobiologyError, Tissue
from theranet.radiopharmaceuticals import Sourced

__all__ = [
    "CONSTRAINTS",
    "Z_ONE_SIDED_95",
    "LimitTable",
    "Limits",
    "OrganKinetics",
    "OrganPlan",
    "Plan",
    "PlanningError",
    "limits",
    "load_limits",
    "plan_next_cycle",
]

logger = logging.getLogger(__name__)

#: Constraint kinds: cumulative BED, or cumulative absorbed dose.
CONSTRAINTS: tuple[str, ...] = ("bed", "dose")
#: One-sided 95 % quantile of the standard normal distribution (1.645).
Z_ONE_SIDED_95: float = NormalDist().inv_cdf(0.95)

_DATA_FILE = "data/planning_limits.toml"
_TOP_KEYS = frozenset({"version", "limit", "regimen"})
_LIMIT_KEYS = ("bed", "bed_risk_factors", "dose")
_REGIMEN_KEYS = ("standard_activity", "standard_cycles")
# parameter kind -> (internal unit, {accepted unit: factor to the internal unit})
_UNITS: dict[str, tuple[str, dict[str, float]]] = {
    "limit": ("Gy", {"Gy": 1.0}),
    "standard_activity": ("GBq", {"GBq": 1.0, "MBq": 1e-3}),
    "standard_cycles": ("1", {"1": 1.0}),
}
# Default constraint of the organs with a limit in clinical.md §5.5.
_DEFAULT_CONSTRAINT = {"kidney": "bed", "red_marrow": "dose"}
# Relative slack when counting whole cycles and comparing with a limit, so that a
# cumulative value that reaches the limit exactly is not rejected by rounding.
_SLACK = 1e-9


class PlanningError(TheranetError, ValueError):
    """An input of activity planning is unusable (the message names the field)."""


# ----------------------------------------------------------------------------------------
# argument checks


def _number(name: str, value: Any) -> float:
    return _checks.finite_number(PlanningError, name, value)


def _positive(name: str, value: Any, unit: str) -> float:
    return _checks.positive(PlanningError, name, value, unit)


def _non_negative(name: str, value: Any, unit: str) -> float:
    return _checks.non_negative(PlanningError, name, value, unit)


_key = _checks.lookup_key


def _canonical(name: str) -> str:
    """Canonical tissue name of the shipped radiobiology table, else the normalised name."""
    key = _key(name)
    table = rb.load_tissues()
    return table.get(key).name if key in table else key


def _from_radiobiology(exc: RadiobiologyError, field_name: str | None = None) -> PlanningError:
    return PlanningError(field_name or exc.field, exc.problem, exc.value, exc.fix, exc.source)


def _resolve_tissue(value: Tissue | str, field_name: str) -> Tissue:
    if not isinstance(value, Tissue | str) or (isinstance(value, str) and not value.strip()):
        raise PlanningError(field_name, "must be a tissue name or a Tissue", value)
    try:
        return rb.tissue(value)
    except RadiobiologyError as exc:
        raise _from_radiobiology(exc, field_name) from None


# ----------------------------------------------------------------------------------------
# limits


@dataclass(frozen=True)
class Limits:
    """The organ-at-risk limits and standard regimen that apply to one patient.

    Usually made by :func:`limits` from the sourced table; may be built directly for
    a site protocol.

    Parameters
    ----------
    constraints : mapping of (str, str) to Sourced or float
        ``(tissue, kind) -> limit``, ``kind`` in :data:`CONSTRAINTS`: cumulative BED
        (``"bed"``) or cumulative absorbed dose (``"dose"``), Gy. Tissue names are
        matched like :func:`theranet.radiobiology.tissue` (aliases, case, spaces and
        hyphens ignored). A bare float is recorded with source ``"user"``.
    standard_activity_gbq : float
        Activity per cycle of the standard regimen, GBq (> 0).
    standard_cycles : int
        Number of cycles of the standard regimen (>= 1).
    risk_factors : bool, optional
        Whether the kidney BED limit for patients with risk factors was selected.
    version : str, optional
        Version of the table the limits come from.

    Raises
    ------
    PlanningError
        Unknown constraint kind, a limit not finite and positive, a bad regimen.
    """

    constraints: Mapping[tuple[str, str], Sourced]
    standard_activity_gbq: float
    standard_cycles: int
    risk_factors: bool = False
    version: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.constraints, Mapping):
            raise PlanningError(
                "constraints", "must be a mapping (tissue, kind) -> limit", self.constraints
            )
        table: dict[tuple[str, str], Sourced] = {}
        for key, raw in self.constraints.items():
            if not (isinstance(key, tuple) and len(key) == 2 and isinstance(key[0], str)):
                raise PlanningError("constraints", "keys must be (tissue, kind) pairs", key)
            tissue_name, kind = key
            if kind not in CONSTRAINTS:
                raise PlanningError(
                    f"constraints[{key!r}]",
                    "unknown constraint kind",
                    kind,
                    f"use one of {', '.join(CONSTRAINTS)}",
                )
            entry = (
                raw
                if isinstance(raw, Sourced)
                else Sourced(
                    _number(f"constraints[{key!r}]", raw),
                    "Gy",
                    "user",
                    "Limits(...)",
                    "unconfirmed",
                )
            )
            if entry.unit != "Gy":
                raise PlanningError(f"constraints[{key!r}].unit", "must be Gy", entry.unit)
            _positive(f"constraints[{key!r}]", entry.value, "Gy")
            table[(_canonical(tissue_name), kind)] = entry
        object.__setattr__(self, "constraints", MappingProxyType(table))
        object.__setattr__(
            self,
            "standard_activity_gbq",
            _positive("standard_activity_gbq", self.standard_activity_gbq, "GBq"),
        )
        n = self.standard_cycles
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise PlanningError("standard_cycles", "must be an integer >= 1", n)
        if not isinstance(self.risk_factors, bool):
            raise PlanningError("risk_factors", "must be True or False", self.risk_factors)

    def _find(self, tissue: Tissue | str, constraint: str) -> Sourced | None:
        names = [tissue.name, *tissue.aliases] if isinstance(tissue, Tissue) else [tissue]
        for name in names:
            entry = self.constraints.get((_canonical(name), constraint))
            if entry is not None:
                return entry
        return None

    def source(self, tissue: Tissue | str, constraint: str) -> Sourced:
        """The sourced limit of a tissue and constraint kind.

        Parameters
        ----------
        tissue : str or Tissue
            Tissue name, alias or :class:`~theranet.radiobiology.Tissue`.
        constraint : {"bed", "dose"}

        Returns
        -------
        Sourced
            Value in Gy with source, section and status.

        Raises
        ------
        PlanningError
            No such limit; the message lists the limits there are.
        """
        entry = self._find(tissue, constraint)
        if entry is None:
            name = tissue.name if isinstance(tissue, Tissue) else tissue
            known = ", ".join(f"{t} {k}" for t, k in self.constraints) or "none"
            raise PlanningError(
                "constraint",
                f"no {constraint} limit for tissue {name!r}",
                constraint,
                f"limits available: {known}; choose one of them, or add the limit with "
                "load_limits('site.toml') or Limits({...})",
            )
        return entry

    def limit_gy(self, tissue: Tissue | str, constraint: str) -> float:
        """Limit of a tissue and constraint kind, Gy (see :meth:`source`)."""
        return float(self.source(tissue, constraint).value)

    @property
    def kidney_bed_gy(self) -> float:
        """Cumulative kidney BED limit, Gy."""
        return self.limit_gy("kidney", "bed")

    @property
    def red_marrow_dose_gy(self) -> float:
        """Cumulative red-marrow absorbed-dose limit, Gy."""
        return self.limit_gy("red_marrow", "dose")


@dataclass(frozen=True)
class LimitTable:
    """The sourced table of limits and standard regimen, before patient selection.

    Attributes
    ----------
    entries : mapping of str to mapping of str to Sourced
        ``tissue -> {"bed" | "bed_risk_factors" | "dose": limit}``, Gy.
    standard_activity : Sourced
        Activity per cycle of the standard regimen, GBq.
    standard_cycles : Sourced
        Number of cycles of the standard regimen (unit ``"1"``).
    version : str
        Table version (``"<shipped>+<user>"`` for a merged table).
    paths : tuple of str
        Files the table was read from (shipped table first).
    """

    entries: Mapping[str, Mapping[str, Sourced]]
    standard_activity: Sourced
    standard_cycles: Sourced
    version: str = ""
    paths: tuple[str, ...] = ()

    def select(
        self,
        risk_factors: bool,
        *,
        limit_kidney_bed_gy: float | None = None,
        limit_red_marrow_dose_gy: float | None = None,
    ) -> Limits:
        """The limits that apply to a patient.

        Parameters
        ----------
        risk_factors : bool
            Renal risk factors (mainly hypertension and diabetes, Bodei 2008): use
            each tissue's ``bed_risk_factors`` limit (kidney 28 Gy) instead of its
            ``bed`` limit (kidney 40 Gy).
        limit_kidney_bed_gy : float, optional
            Replaces the selected kidney BED limit, Gy (recorded with source
            ``"user override"``).
        limit_red_marrow_dose_gy : float, optional
            Replaces the red-marrow absorbed-dose limit, Gy.

        Returns
        -------
        Limits
        """
        if not isinstance(risk_factors, bool):
            raise PlanningError(
                "risk_factors", "must be True or False", risk_factors, "state it explicitly"
            )
        constraints: dict[tuple[str, str], Sourced] = {}
        for tissue_name, kinds in self.entries.items():
            bed_key = "bed_risk_factors" if risk_factors and "bed_risk_factors" in kinds else "bed"
            if bed_key in kinds:
                constraints[(tissue_name, "bed")] = kinds[bed_key]
            if "dose" in kinds:
                constraints[(tissue_name, "dose")] = kinds["dose"]
        overrides = (
            ("limit_kidney_bed_gy", limit_kidney_bed_gy, ("kidney", "bed")),
            ("limit_red_marrow_dose_gy", limit_red_marrow_dose_gy, ("red_marrow", "dose")),
        )
        for name, value, key in overrides:
            if value is None:
                continue
            number = _positive(name, value, "Gy")
            old = constraints.get(key)
            note = f"replaces {old.value} Gy ({old.source})" if old is not None else ""
            constraints[key] = Sourced(
                number, "Gy", "user override", f"argument {name}", "unconfirmed", note
            )
        return Limits(
            constraints,
            standard_activity_gbq=float(self.standard_activity.value),
            standard_cycles=int(self.standard_cycles.value),
            risk_factors=risk_factors,
            version=self.version,
        )


def _read_toml(text: str, source: str) -> dict[str, Any]:
    doc = parse_toml(PlanningError, text, source)
    unknown = sorted(set(doc) - _TOP_KEYS)
    if unknown:
        raise PlanningError(
            "table", "unknown key(s)", unknown, "allowed keys are limit, regimen, version", source
        )
    for top, allowed in (("limit", None), ("regimen", _REGIMEN_KEYS)):
        section = doc.get(top, {})
        if not isinstance(section, Mapping):
            raise PlanningError(top, "must be a table", section, source=source)
        if allowed is not None:
            extra = sorted(set(section) - set(allowed))
            if extra:
                raise PlanningError(
                    top, "unknown key(s)", extra, f"allowed keys are {', '.join(allowed)}", source
                )
    for name, raw in doc.get("limit", {}).items():
        if not isinstance(raw, Mapping):
            raise PlanningError(f"limit.{name}", "must be a table", raw, source=source)
        extra = sorted(set(raw) - set(_LIMIT_KEYS))
        if extra:
            raise PlanningError(
                f"limit.{name}",
                "unknown key(s)",
                extra,
                f"allowed keys are {', '.join(_LIMIT_KEYS)}",
                source,
            )
    return doc


def _parse_param(raw: Any, kind: str, where: str, source: str) -> Sourced:
    internal, factors = _UNITS[kind]
    return _checks.sourced_value(
        PlanningError, raw, where, source, factors=factors, internal_unit=internal,
        integer=kind == "standard_cycles",
    )  # fmt: skip


def _build(doc: Mapping[str, Any], version: str, paths: tuple[str, ...]) -> LimitTable:
    source = " + ".join(paths)
    entries: dict[str, dict[str, Sourced]] = {}
    for name, raw in doc.get("limit", {}).items():
        tissue_name = _canonical(name)
        if tissue_name in entries:
            raise PlanningError(
                f"limit.{name}", "tissue given twice (name and alias)", tissue_name, source=source
            )
        entries[tissue_name] = {
            k: _parse_param(v, "limit", f"limit.{name}.{k}", source) for k, v in raw.items()
        }
    if not entries:
        raise PlanningError("limit", "no limits in the table", source=source)
    regimen = doc.get("regimen", {})
    params = {}
    for k in _REGIMEN_KEYS:
        if k not in regimen:
            raise PlanningError(
                f"regimen.{k}", "missing", fix="give the standard regimen", source=source
            )
        params[k] = _parse_param(regimen[k], k, f"regimen.{k}", source)
    frozen = {t: MappingProxyType(kinds) for t, kinds in entries.items()}
    return LimitTable(
        MappingProxyType(frozen),
        params["standard_activity"],
        params["standard_cycles"],
        version,
        paths,
    )


def _merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(dict(base))
    tissues: dict[str, Any] = merged.setdefault("limit", {})
    keys = {_canonical(name): name for name in tissues}
    for name, raw in override.get("limit", {}).items():
        target = keys.get(_canonical(name))
        if target is None:
            tissues[name] = copy.deepcopy(dict(raw))
            keys[_canonical(name)] = name
        else:
            tissues[target].update(copy.deepcopy(dict(raw)))
    merged.setdefault("regimen", {}).update(copy.deepcopy(dict(override.get("regimen", {}))))
    return merged


@lru_cache(maxsize=1)
def _shipped_doc() -> tuple[dict[str, Any], str]:
    return read_shipped(_DATA_FILE, _read_toml)


@lru_cache(maxsize=1)
def _shipped() -> LimitTable:
    doc, source = _shipped_doc()
    return _build(doc, str(doc.get("version", "")), (source,))


def load_limits(path: str | PathLike[str] | None = None, *, merge: bool = True) -> LimitTable:
    """Read and validate the table of organ-at-risk limits and the standard regimen.

    Parameters
    ----------
    path : str or path-like, optional
        A user TOML with the layout of the shipped ``planning_limits.toml``
        (``[limit.<tissue>]`` with ``bed``, ``bed_risk_factors``, ``dose``;
        ``[regimen]`` with ``standard_activity``, ``standard_cycles``; each value
        ``{value, unit, source, section, status}``). ``None`` reads the shipped table.
    merge : bool, default True
        If true, the user table overrides the shipped one value by value (a tissue
        matching a shipped name or alias has the values it gives replaced; other
        tissues are added). If false it replaces the shipped table and must be
        complete.

    Returns
    -------
    LimitTable

    Raises
    ------
    PlanningError
        Unreadable file, unknown keys, missing value/unit/source/section/status,
        non-positive values, disallowed units or statuses.

    Examples
    --------
    A site table with a lower marrow limit::

        [limit.red_marrow]
        dose = { value = 1.0, unit = "Gy", source = "Reidy-Lagunes-2019",
                 section = "clinical.md §5.5", status = "verified" }
    """
    if path is None:
        return _shipped()
    return load_user_table(
        PlanningError,
        path,
        merge=merge,
        shipped=_shipped_doc(),
        read_toml=_read_toml,
        merge_docs=_merge,
        build=_build,
    )


def limits(
    risk_factors: bool,
    *,
    limit_kidney_bed_gy: float | None = None,
    limit_red_marrow_dose_gy: float | None = None,
    table: LimitTable | None = None,
) -> Limits:
    """The limits that apply to a patient, from the sourced table.

    Parameters
    ----------
    risk_factors : bool
        Renal risk factors (mainly hypertension and diabetes): kidney BED limit
        28 Gy instead of 40 Gy (Bodei 2008, clinical.md §5.5). Required: there is no
        safe default.
    limit_kidney_bed_gy : float, optional
        Replaces the kidney BED limit, Gy.
    limit_red_marrow_dose_gy : float, optional
        Replaces the red-marrow absorbed-dose limit, Gy.
    table : LimitTable, optional
        From :func:`load_limits`; default the shipped table.

    Returns
    -------
    Limits

    Examples
    --------
    >>> limits(risk_factors=True).kidney_bed_gy
    28.0
    >>> limits(risk_factors=False).source("kidney", "bed").source
    'Bodei-2008'
    """
    return (table if table is not None else _shipped()).select(
        risk_factors,
        limit_kidney_bed_gy=limit_kidney_bed_gy,
        limit_red_marrow_dose_gy=limit_red_marrow_dose_gy,
    )


# ----------------------------------------------------------------------------------------
# kinetics


@dataclass(frozen=True)
class OrganKinetics:
    """Predicted dose-rate curve of an organ at risk per administered GBq.

    Parameters
    ----------
    tissue : str or Tissue
        Tissue name or alias known to :func:`theranet.radiobiology.tissue`
        (``"kidney"``, ``"red_marrow"`` …), or a Tissue with site parameters;
        stored as the resolved :class:`~theranet.radiobiology.Tissue`.
    dose_rate_per_gbq : DoseRate
        The cycle's absorbed-dose rate per administered GBq (amplitudes in
        Gy/h/GBq); its absorbed dose ``d1`` (Gy/GBq) must be > 0. The dose scales
        linearly with the activity and the shape (hence ``G``) is kept.
    dose_per_gbq_sd_gy : float, optional
        Standard uncertainty (SD) of ``d1``, Gy/GBq, ``>= 0`` (default 0: unknown).
    constraint : {"bed", "dose"}, optional
        Limit to apply: cumulative BED or cumulative absorbed dose. Default
        ``"bed"`` for the kidney and ``"dose"`` for red marrow (clinical.md §5.5);
        required for other tissues.

    Raises
    ------
    PlanningError
        Unknown tissue, not a DoseRate, ``d1 <= 0``, negative or non-finite SD,
        unknown constraint.
    """

    tissue: Tissue | str
    dose_rate_per_gbq: DoseRate
    dose_per_gbq_sd_gy: float = 0.0
    constraint: str | None = None

    def __post_init__(self) -> None:
        resolved = _resolve_tissue(self.tissue, "tissue")
        object.__setattr__(self, "tissue", resolved)
        if not isinstance(self.dose_rate_per_gbq, DoseRate):
            raise PlanningError(
                "dose_rate_per_gbq",
                "must be a theranet.radiobiology.DoseRate",
                type(self.dose_rate_per_gbq).__name__,
                "use OrganKinetics.mono(...) or OrganKinetics.from_cycle(...)",
            )
        d1 = self.dose_rate_per_gbq.dose_gy
        if not d1 > 0.0:
            raise PlanningError(
                "dose_rate_per_gbq",
                f"dose per GBq of {resolved.name} must be > 0 Gy/GBq",
                d1,
                "give the predicted absorbed dose per administered GBq",
            )
        object.__setattr__(
            self,
            "dose_per_gbq_sd_gy",
            _non_negative("dose_per_gbq_sd_gy", self.dose_per_gbq_sd_gy, "Gy/GBq"),
        )
        constraint = self.constraint
        if constraint is None:
            constraint = _DEFAULT_CONSTRAINT.get(resolved.name)
            if constraint is None:
                raise PlanningError(
                    "constraint",
                    f"no default constraint for tissue {resolved.name!r}",
                    None,
                    "give constraint='bed' or 'dose' (and its limit in the limits table)",
                )
        if constraint not in CONSTRAINTS:
            raise PlanningError(
                "constraint", "unknown constraint", constraint, f"use one of {CONSTRAINTS}"
            )
        object.__setattr__(self, "constraint", constraint)

    @classmethod
    def mono(
        cls,
        tissue: Tissue | str,
        dose_per_gbq_gy: float,
        effective_half_life_h: float,
        *,
        dose_per_gbq_sd_gy: float = 0.0,
        constraint: str | None = None,
    ) -> OrganKinetics:
        """Instant uptake and mono-exponential clearance (:meth:`DoseRate.mono`).

        Parameters
        ----------
        tissue : str or Tissue
        dose_per_gbq_gy : float
            Absorbed dose per administered GBq ``d1``, Gy/GBq (> 0).
        effective_half_life_h : float
            Effective half-life, h (> 0).
        dose_per_gbq_sd_gy : float, optional
            SD of ``d1``, Gy/GBq.
        constraint : {"bed", "dose"}, optional

        Returns
        -------
        OrganKinetics
        """
        d1 = _positive("dose_per_gbq_gy", dose_per_gbq_gy, "Gy/GBq")
        try:
            rate = DoseRate.mono(d1, effective_half_life_h)
        except RadiobiologyError as exc:
            raise _from_radiobiology(exc) from None
        return cls(tissue, rate, dose_per_gbq_sd_gy, constraint)

    @classmethod
    def from_cycle(
        cls,
        tissue: Tissue | str,
        dose_rate: DoseRate,
        activity_gbq: float,
        *,
        dose_sd_gy: float = 0.0,
        constraint: str | None = None,
    ) -> OrganKinetics:
        """Kinetics per GBq from a measured cycle: its dose rate divided by its activity.

        Parameters
        ----------
        tissue : str or Tissue
        dose_rate : DoseRate
            Dose rate measured in the cycle (e.g. :meth:`DoseRate.from_fit`), Gy/h.
        activity_gbq : float
            Activity administered in that cycle, GBq (> 0).
        dose_sd_gy : float, optional
            SD of the cycle's absorbed dose, Gy (divided by the activity too).
        constraint : {"bed", "dose"}, optional

        Returns
        -------
        OrganKinetics
        """
        a = _positive("activity_gbq", activity_gbq, "GBq")
        if not isinstance(dose_rate, DoseRate):
            raise PlanningError("dose_rate", "must be a DoseRate", type(dose_rate).__name__)
        sd = _non_negative("dose_sd_gy", dose_sd_gy, "Gy")
        return cls(tissue, dose_rate.scaled(1.0 / a), sd / a, constraint)

    @property
    def name(self) -> str:
        """Canonical tissue name."""
        return self.tissue.name  # type: ignore[union-attr]

    @property
    def dose_per_gbq_gy(self) -> float:
        """Absorbed dose per administered GBq ``d1``, Gy/GBq."""
        return self.dose_rate_per_gbq.dose_gy

    @property
    def g_factor(self) -> float:
        """Lea–Catcheside factor ``G`` of the curve (independent of the activity)."""
        return rb.g_factor(self.dose_rate_per_gbq, self.tissue.repair_half_time_h)  # type: ignore[union-attr]


# ----------------------------------------------------------------------------------------
# plan


@dataclass(frozen=True)
class OrganPlan:
    """One organ's row of a :class:`Plan`.

    Values are BED for a ``"bed"`` constraint and absorbed dose for a ``"dose"``
    constraint; both in Gy.

    Attributes
    ----------
    organ : str
        Canonical tissue name.
    constraint : {"bed", "dose"}
    limit_gy : float
        Cumulative limit, Gy.
    limit_source : str
        Source and section of the limit.
    cumulative_gy : float
        Cumulative value over the cycles given, Gy.
    dose_per_gbq_gy, dose_per_gbq_sd_gy : float
        Predicted absorbed dose per GBq and its SD, Gy/GBq.
    g_factor : float
        Lea–Catcheside factor of the dose-rate curve.
    alpha_beta_gy, repair_half_time_h : float
        LQ parameters used (Gy, h).
    activity_to_limit_gbq : float
        Activity that brings the cumulative value exactly to the limit, GBq (0 when
        the limit is already reached).
    activity_to_limit_sd_gbq : float
        Its first-order SD from ``dose_per_gbq_sd_gy``, GBq.
    activity_to_limit_95_gbq : float
        Activity that reaches the limit if the dose per GBq is
        :data:`Z_ONE_SIDED_95` SD higher, GBq.
    projected_gy : float
        Cumulative value after the planned activity, Gy.
    per_standard_cycle_gy : float
        Value added by one standard cycle, Gy.
    n_standard_cycles_allowed : int
        Further standard cycles this organ's limit allows.
    after_standard_regimen_gy : float
        Cumulative value after completing the standard regimen, Gy.
    """

    organ: str
    constraint: str
    limit_gy: float
    limit_source: str
    cumulative_gy: float
    dose_per_gbq_gy: float
    dose_per_gbq_sd_gy: float
    g_factor: float
    alpha_beta_gy: float
    repair_half_time_h: float
    activity_to_limit_gbq: float
    activity_to_limit_sd_gbq: float
    activity_to_limit_95_gbq: float
    projected_gy: float
    per_standard_cycle_gy: float
    n_standard_cycles_allowed: int
    after_standard_regimen_gy: float

    @property
    def remaining_gy(self) -> float:
        """Margin to the limit before the next cycle, Gy (0 when reached or exceeded)."""
        return max(self.limit_gy - self.cumulative_gy, 0.0)

    @property
    def within_limit_after_standard_regimen(self) -> bool:
        """Whether completing the standard regimen keeps this organ within its limit."""
        return self.after_standard_regimen_gy <= self.limit_gy * (1.0 + _SLACK)


@dataclass(frozen=True)
class Plan:
    """Activity plan for the next cycle.

    Attributes
    ----------
    activity_gbq : float
        Planned activity, GBq (>= 0): the smallest activity that brings an organ to
        its limit, capped by ``max_activity_gbq``.
    activity_sd_gbq : float
        First-order SD of the planned activity from the SD of the limiting organ's
        dose per GBq, GBq (0 when the cap or an exceeded limit sets the activity).
    activity_95_gbq : float
        Activity at which no organ exceeds its limit even if its dose per GBq is
        :data:`Z_ONE_SIDED_95` SD above the prediction (one-sided 95 % per organ),
        GBq, capped like ``activity_gbq``.
    limiting_organ : str
        Organ whose limit is reached at the smallest activity.
    capped_by_max_activity : bool
        Whether ``max_activity_gbq`` set the activity.
    reason : str
        What set the activity, in words.
    organs : tuple of OrganPlan
        Per-organ table, in the order of the kinetics.
    n_standard_cycles_allowed : int
        Further cycles of ``standard_activity_gbq`` that keep every organ within
        its limit.
    standard_activity_gbq : float
        Activity per standard cycle, GBq.
    standard_cycles : int
        Cycles of the standard regimen.
    cycles_given : int
        Cycles given so far (included in the cumulative values).
    standard_regimen_within_limits : bool
        Whether completing the standard regimen keeps every organ within its limit.
    limits : Limits
        The limits used.
    notes : tuple of str
        Warnings and assumptions.
    below_minimum : bool
        The planned activity is below the minimum worth giving that was asked for
        (``minimum_activity_gbq``): stop and report.
    """

    activity_gbq: float
    activity_sd_gbq: float
    activity_95_gbq: float
    limiting_organ: str
    capped_by_max_activity: bool
    reason: str
    organs: tuple[OrganPlan, ...]
    n_standard_cycles_allowed: int
    standard_activity_gbq: float
    standard_cycles: int
    cycles_given: int
    standard_regimen_within_limits: bool
    limits: Limits = field(repr=False)
    notes: tuple[str, ...] = ()
    below_minimum: bool = False

    @property
    def standard_cycles_remaining(self) -> int:
        """Cycles of the standard regimen not yet given."""
        return max(self.standard_cycles - self.cycles_given, 0)

    def organ(self, name: str) -> OrganPlan:
        """The row of an organ, by tissue name or alias.

        Raises
        ------
        PlanningError
            The organ is not in the plan.
        """
        key = _canonical(name)
        for row in self.organs:
            if row.organ == key:
                return row
        raise PlanningError(
            "name", "organ not in the plan", name, f"use one of {[r.organ for r in self.organs]}"
        )


def _dose_to_limit_gy(
    remaining_gy: float, g: float, alpha_beta_gy: float, constraint: str
) -> float:
    """Absorbed dose ``x`` of the next cycle that uses up ``remaining_gy`` exactly.

    ``x + G x^2 / (alpha/beta) = R`` for BED (stable root form), ``x = R`` for dose.
    """
    if remaining_gy <= 0.0:
        return 0.0
    if constraint == "dose":
        return remaining_gy
    return 2.0 * remaining_gy / (1.0 + math.sqrt(1.0 + 4.0 * g * remaining_gy / alpha_beta_gy))


def _value_of_cycle_gy(kin: OrganKinetics, activity_gbq: float) -> float:
    """BED (bed constraint) or absorbed dose (dose constraint) of one cycle, Gy."""
    rate = kin.dose_rate_per_gbq.scaled(activity_gbq)
    if kin.constraint == "dose":
        return rate.dose_gy
    return rb.bed_gy(rate, kin.tissue)


def _label(constraint: str) -> str:
    return "BED" if constraint == "bed" else "absorbed dose"


def _previous_by_organ(
    previous: Mapping[str, float], organs: Sequence[OrganKinetics], notes: list[str]
) -> dict[str, float]:
    if not isinstance(previous, Mapping):
        raise PlanningError(
            "previous",
            "must be a mapping tissue -> cumulative value (Gy)",
            type(previous).__name__,
            "give e.g. {'kidney': 11.9, 'red_marrow': 0.6}",
        )
    lookup: dict[str, str] = {}
    for kin in organs:
        for alias in (kin.name, *kin.tissue.aliases):  # type: ignore[union-attr]
            lookup[_key(alias)] = kin.name
    values: dict[str, float] = {}
    for raw_key, raw_value in previous.items():
        where = f"previous[{raw_key!r}]"
        if not isinstance(raw_key, str):
            raise PlanningError(where, "keys must be tissue names", raw_key)
        organ = lookup.get(_key(raw_key))
        if organ is None:
            known = _resolve_tissue(raw_key, where)  # raises for an unknown tissue
            organ = lookup.get(_key(known.name))
        value = _non_negative(where, raw_value, "Gy")
        if organ is None:
            notes.append(f"previous[{raw_key!r}] ignored: no kinetics given for that tissue")
            continue
        if organ in values:
            raise PlanningError(where, f"{organ} given twice (name and alias)", raw_key)
        values[organ] = value
    for kin in organs:
        if kin.name not in values:
            raise PlanningError(
                "previous",
                f"no cumulative {_label(kin.constraint or 'bed')} for {kin.name}",
                sorted(previous),
                f"give previous[{kin.name!r}] in Gy (0.0 before the first cycle)",
            )
    return values


def plan_next_cycle(
    previous: Mapping[str, float],
    kinetics: Sequence[OrganKinetics],
    *,
    limits: Limits,
    cycles_given: int,
    standard_activity_gbq: float | None = None,
    max_activity_gbq: float | None = None,
    activity_step_gbq: float | None = None,
    minimum_activity_gbq: float | None = None,
) -> Plan:
    """Activity for the next cycle that keeps every organ at risk within its limit.

    Parameters
    ----------
    previous : mapping of str to float
        Cumulative value over the cycles given so far, including the cycle whose
        dosimetry predicts the next one, per tissue (name or alias): cumulative BED
        (Gy, sum of the cycles' BEDs) for a ``"bed"`` constraint, cumulative absorbed
        dose (Gy) for a ``"dose"`` constraint. ``0.0`` before the first cycle.
    kinetics : sequence of OrganKinetics
        Predicted dose-rate curve per GBq of each organ at risk, one per tissue.
    limits : Limits
        From :func:`limits` (states whether the patient has renal risk factors).
    cycles_given : int
        Number of cycles already given (``>= 0``), for the comparison with the
        standard regimen.
    standard_activity_gbq : float, optional
        Activity per standard cycle, GBq; default ``limits.standard_activity_gbq``
        (7.4 GBq, clinical.md §5.2).
    max_activity_gbq : float, optional
        Upper bound of the planned activity, GBq (> 0), e.g. the standard activity
        to plan ``min(A_standard, A_limits)`` as in clinical.md §5.7.
    activity_step_gbq : float, optional
        The site's dispensable activity step, GBq (> 0): the planned activity is
        rounded down to a multiple of it (clinical.md §5.7 rule 2).
    minimum_activity_gbq : float, optional
        The smallest activity worth giving, GBq (> 0; e.g. the label's reduced
        activity of 3.7 GBq for 177Lu-DOTATATE): below it the plan says to stop and
        report, and :attr:`Plan.below_minimum` is set (clinical.md §5.7 rule 3).

    Returns
    -------
    Plan

    Raises
    ------
    PlanningError
        No kinetics, a tissue given twice, an unknown tissue, a tissue without a
        limit of its constraint kind, a missing / negative / non-finite cumulative
        value, ``cycles_given`` not an integer ``>= 0``, a non-positive activity.

    Notes
    -----
    **Activity to the limit, BED.** With ``d1`` the absorbed dose per GBq (Gy/GBq)
    and ``G`` the Lea–Catcheside factor of the curve per GBq, a cycle of activity
    ``A`` (GBq) has dose rate ``A Ddot_1(t)``, absorbed dose ``d1 A`` and
    protraction integral ``Q(A) = A^2 Q_1 = G (d1 A)^2``, so (Dale 1985)::

        BED(A) = d1 A + G (d1 A)^2 / (alpha/beta)

    ``G`` does not depend on ``A`` because the shape of the curve is fixed. The
    cumulative BED reaches the limit when ``BED(A) = R = BED_lim - BED_prev``::

        (G d1^2 / (alpha/beta)) A^2 + d1 A - R = 0

    a quadratic ``a A^2 + b A + c = 0`` with ``a >= 0``, ``b > 0``, ``c < 0`` for
    ``R > 0``: one positive root::

        A = (-d1 + sqrt(d1^2 + 4 G d1^2 R / (alpha/beta))) / (2 G d1^2 / (alpha/beta))

    (clinical.md §5.7). Multiplying numerator and denominator by
    ``d1 + sqrt(...)`` gives the form used here, free of cancellation and valid at
    ``G = 0`` (where it is ``A = R / d1``, the limit of the quadratic root as
    ``G -> 0``)::

        A = x / d1,    x = 2 R / (1 + sqrt(1 + 4 G R / (alpha/beta)))

    ``x`` is the absorbed dose of the next cycle; it depends on ``R``, ``G`` and
    ``alpha/beta`` but not on ``d1``.

    **Activity to the limit, absorbed dose** (red marrow): ``d1 A = R``, ``A = R / d1``
    (``x = R``).

    **Plan.** The planned activity is the smallest over the organs (the limiting
    organ), capped by ``max_activity_gbq``. When a limit is already reached
    (``R <= 0``) the activity is 0 and the reason says so; no error is raised.

    **Uncertainty.** Because ``x`` does not depend on ``d1``,
    ``dA/dd1 = -x / d1^2 = -A / d1``, and first-order propagation (GUM; EANM
    framework, clinical.md §6.5) gives for every ``G``::

        u(A) = A u(d1) / d1

    i.e. the relative SD of the activity equals that of the dose per GBq
    (uncertainty of ``G``, ``alpha/beta`` and the previous cumulative value not
    included). The one-sided 95 % activity assumes ``d1`` normal with SD ``u(d1)``:
    the limit is reached at ``A_95 = x / (d1 + 1.645 u(d1))``, so the probability that
    the true dose per GBq makes ``A_95`` exceed the limit is 5 % (clinical.md §5.7
    rule 1 uses ``d + k u(d)`` as safety margin). With several organs, the plan's
    ``activity_95_gbq`` is the smallest per-organ value; the 95 % holds per organ.

    **Standard cycles.** BED (and absorbed dose) adds over cycles, so after ``n``
    further standard cycles the cumulative value is ``prev + n v``, ``v`` the value
    of one standard cycle; the number allowed is
    ``floor((limit - prev) / v)`` per organ, the smallest over the organs. The
    standard regimen comparison adds ``max(standard_cycles - cycles_given, 0)``
    standard cycles with the same kinetics.
    """
    if not isinstance(limits, Limits):
        raise PlanningError(
            "limits", "must be a Limits", type(limits).__name__, "use limits(risk_factors=...)"
        )
    if isinstance(kinetics, OrganKinetics):
        kinetics = [kinetics]
    if not isinstance(kinetics, Sequence) or len(kinetics) == 0:
        raise PlanningError(
            "kinetics",
            "no organ kinetics given",
            None if isinstance(kinetics, Sequence) else type(kinetics).__name__,
            "give one OrganKinetics per organ at risk (kidney, red_marrow)",
        )
    seen: set[str] = set()
    for i, kin in enumerate(kinetics):
        if not isinstance(kin, OrganKinetics):
            raise PlanningError(f"kinetics[{i}]", "must be an OrganKinetics", type(kin).__name__)
        if kin.name in seen:
            raise PlanningError(
                f"kinetics[{i}]",
                f"tissue {kin.name} given twice",
                kin.name,
                "give one OrganKinetics per tissue (one constraint each)",
            )
        seen.add(kin.name)
    if isinstance(cycles_given, bool) or not isinstance(cycles_given, int) or cycles_given < 0:
        raise PlanningError("cycles_given", "must be an integer >= 0", cycles_given)
    a_std = (
        limits.standard_activity_gbq
        if standard_activity_gbq is None
        else _positive("standard_activity_gbq", standard_activity_gbq, "GBq")
    )
    a_cap = (
        None if max_activity_gbq is None else _positive("max_activity_gbq", max_activity_gbq, "GBq")
    )

    notes: list[str] = []
    prev = _previous_by_organ(previous, kinetics, notes)
    cycles_left = max(limits.standard_cycles - cycles_given, 0)

    rows: list[OrganPlan] = []
    for kin in kinetics:
        constraint = str(kin.constraint)
        entry = limits.source(kin.tissue, constraint)
        limit = float(entry.value)
        cumulative = prev[kin.name]
        t: Tissue = kin.tissue  # type: ignore[assignment]
        d1 = kin.dose_per_gbq_gy
        sd = kin.dose_per_gbq_sd_gy
        g = kin.g_factor
        remaining = limit - cumulative
        x = _dose_to_limit_gy(remaining, g, t.alpha_beta_gy, constraint)
        a_lim = x / d1
        per_cycle = _value_of_cycle_gy(kin, a_std)
        n_allowed = math.floor(remaining / per_cycle + _SLACK) if remaining > 0.0 else 0
        rows.append(
            OrganPlan(
                organ=kin.name,
                constraint=constraint,
                limit_gy=limit,
                limit_source=f"{entry.source}, {entry.section}, {entry.status}",
                cumulative_gy=cumulative,
                dose_per_gbq_gy=d1,
                dose_per_gbq_sd_gy=sd,
                g_factor=g,
                alpha_beta_gy=t.alpha_beta_gy,
                repair_half_time_h=t.repair_half_time_h,
                activity_to_limit_gbq=a_lim,
                activity_to_limit_sd_gbq=a_lim * sd / d1,
                activity_to_limit_95_gbq=x / (d1 + Z_ONE_SIDED_95 * sd),
                projected_gy=math.nan,  # filled in below
                per_standard_cycle_gy=per_cycle,
                n_standard_cycles_allowed=max(n_allowed, 0),
                after_standard_regimen_gy=cumulative + cycles_left * per_cycle,
            )
        )
        if remaining <= 0.0:
            notes.append(
                f"{kin.name}: cumulative {_label(constraint)} {cumulative:.4g} Gy has reached "
                f"the limit {limit:.4g} Gy ({entry.source}); no further activity "
                "(clinical.md §5.7)"
            )
        if sd == 0.0:
            notes.append(
                f"{kin.name}: dose_per_gbq_sd_gy not given; its activity SD is 0 and its 95 % "
                "activity equals the activity to the limit"
            )

    order = sorted(range(len(rows)), key=lambda i: rows[i].activity_to_limit_gbq)
    lim_row = rows[order[0]]
    activity = lim_row.activity_to_limit_gbq
    activity_sd = lim_row.activity_to_limit_sd_gbq
    activity_95 = min(r.activity_to_limit_95_gbq for r in rows)
    exceeded = [r for r in rows if r.cumulative_gy >= r.limit_gy]
    capped = False
    if exceeded:
        activity, activity_sd, activity_95 = 0.0, 0.0, 0.0
        reason = (
            "limit already reached: "
            + "; ".join(
                f"{r.organ} cumulative {_label(r.constraint)} {r.cumulative_gy:.4g} Gy >= "
                f"{r.limit_gy:.4g} Gy"
                for r in exceeded
            )
            + "; no further cycle"
        )
    else:
        reason = (
            f"{lim_row.organ} {_label(lim_row.constraint)} reaches its limit "
            f"{lim_row.limit_gy:.4g} Gy ({lim_row.limit_source})"
        )
        if a_cap is not None and a_cap < activity:
            capped = True
            reason = (
                f"max_activity_gbq {a_cap:.4g} GBq (below the {lim_row.organ} limit activity "
                f"{activity:.4g} GBq)"
            )
            activity, activity_sd = a_cap, 0.0
        if a_cap is not None:
            activity_95 = min(activity_95, a_cap)
        if len(order) > 1:
            second = rows[order[1]]
            gap = second.activity_to_limit_gbq - lim_row.activity_to_limit_gbq
            if gap < max(lim_row.activity_to_limit_sd_gbq, second.activity_to_limit_sd_gbq):
                notes.append(
                    f"{lim_row.organ} and {second.organ} reach their limits within one SD "
                    f"of each other; activity_sd_gbq (from {lim_row.organ} alone) "
                    "understates the spread"
                )
        if activity > a_std * (1.0 + _SLACK):
            notes.append(
                f"planned activity {activity:.4g} GBq exceeds the standard activity "
                f"{a_std:.4g} GBq: non-standard treatment, flag it (clinical.md §5.7 rule 5, "
                "EANM-Art56-2020); pass max_activity_gbq to cap it"
            )

    if activity_step_gbq is not None and activity > 0.0:
        step = _positive("activity_step_gbq", activity_step_gbq, "GBq")
        rounded = math.floor(activity / step * (1.0 + _SLACK)) * step
        notes.append(
            f"rounded down from {activity:.4g} GBq to the dispensable step of {step:g} GBq: "
            f"{rounded:.4g} GBq (clinical.md §5.7 rule 2)"
        )
        activity_sd = activity_sd * rounded / activity
        activity, activity_95 = rounded, min(activity_95, rounded)
    below = False
    if minimum_activity_gbq is not None:
        minimum = _positive("minimum_activity_gbq", minimum_activity_gbq, "GBq")
        if activity < minimum * (1.0 - _SLACK):
            below = True
            notes.append(
                f"planned activity {activity:.4g} GBq is below the minimum worth giving "
                f"({minimum:g} GBq): stop and report (clinical.md §5.7 rule 3)"
            )

    final: list[OrganPlan] = []
    for kin, row in zip(kinetics, rows, strict=True):
        projected = row.cumulative_gy + (_value_of_cycle_gy(kin, activity) if activity > 0 else 0.0)
        final.append(replace(row, projected_gy=projected))
    n_allowed = min(r.n_standard_cycles_allowed for r in final)
    within = all(r.within_limit_after_standard_regimen for r in final)
    logger.debug("plan_next_cycle: %.4g GBq (%s)", activity, reason)
    return Plan(
        activity_gbq=activity,
        activity_sd_gbq=activity_sd,
        activity_95_gbq=activity_95,
        limiting_organ=lim_row.organ,
        capped_by_max_activity=capped,
        reason=reason,
        organs=tuple(final),
        n_standard_cycles_allowed=n_allowed,
        standard_activity_gbq=a_std,
        standard_cycles=limits.standard_cycles,
        cycles_given=cycles_given,
        standard_regimen_within_limits=within,
        limits=limits,
        notes=tuple(notes),
        below_minimum=below,
    )
