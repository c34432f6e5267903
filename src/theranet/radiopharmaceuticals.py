"""Catalogue of NET theranostic radiopharmaceuticals with sourced parameters.

The catalogue lists, for each radiopharmaceutical, its nuclide, molecular target,
role, imaging modalities, SNOMED CT / UMLS codes, photopeak energy windows,
collimator, imaging times after injection, typical administered activities and a
few protocol parameters. The values live in a versioned TOML table shipped with
the package (``theranet/data/radiopharmaceuticals.toml``); every value carries its
unit, source, section and verification status (:class:`Sourced`), because
clinical parameters must be citable and configurable, never hard-coded.

Internal units: activity MBq (per kg: MBq/kg; per body-surface area: MBq/m^2),
time h, photopeak energies keV (the unit is in every field name: ``centre_kev``,
``width_percent``, ``imaging_times_h``); :class:`EnergyWindow` also gives MeV.
Values given in the table in other units (GBq, min, d, week) are converted on load.

Statuses follow the reference legend: ``"verified"`` (marked ✔, checked against
source text), ``"unconfirmed"`` (untagged: from the named source, not re-read) and
``"uncertain"`` (marked [UNCERTAIN]). Anything not ``"verified"`` is a default to
check against the cited source before clinical use.

Examples
--------
>>> from theranet import radiopharmaceuticals as rp
>>> ga = rp.get("netspot")
>>> ga.name, ga.nuclide_name
('68Ga-DOTATATE', 'Ga-68')
>>> ga.activities["per_kg"].value, ga.activities["per_kg"].unit
(2.0, 'MBq/kg')
>>> w = rp.get("Lutathera").photopeaks[0]
>>> round(w.lower_kev, 6), round(w.upper_kev, 6)
(187.2, 228.8)

A site table overrides single values (each replaced parameter needs value, unit,
source, section and status)::

    site = rp.load_catalogue("site.toml")      # merged onto the shipped table
    site.get("68Ga-DOTATATE").activities["max"]
    rp.use_catalogue(site)                     # make it the default for get()
"""

from __future__ import annotations

import copy
import difflib
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from functools import lru_cache
from os import PathLike
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from theranet._tables import SourcedTable, parse_toml, read_shipped
from theranet.errors import MissingFieldError, TheranetError, UnitError

if TYPE_CHECKING:
    from theranet.nuclides import Nuclide

__all__ = [
    "MODALITIES",
    "ROLES",
    "STATUSES",
    "Catalogue",
    "CatalogueError",
    "Code",
    "EnergyWindow",
    "Radiopharmaceutical",
    "Sourced",
    "UnknownTracerError",
    "active_catalogue",
    "catalogue",
    "get",
    "load_catalogue",
    "normalise_name",
    "use_catalogue",
]

#: Allowed verification statuses of a sourced value.
STATUSES: tuple[str, ...] = ("verified", "unconfirmed", "uncertain")
#: Allowed roles of a radiopharmaceutical.
ROLES: tuple[str, ...] = ("diagnostic", "therapeutic", "both")
#: Allowed imaging modalities.
MODALITIES: tuple[str, ...] = ("PET", "SPECT", "planar")

_DATA_FILE = "data/radiopharmaceuticals.toml"
_TEXT_UNIT = "text"
_NUCLIDE_RE = re.compile(r"^[A-Z][a-z]?-\d{1,3}m?$")

# unit -> (internal unit, factor to internal unit)
_CONVERSIONS: dict[str, tuple[str, Fraction]] = {
    "s": ("h", Fraction(1, 3600)),
    "min": ("h", Fraction(1, 60)),
    "h": ("h", Fraction(1)),
    "d": ("h", Fraction(24)),
    "week": ("h", Fraction(168)),
    "kBq": ("MBq", Fraction(1, 1000)),
    "MBq": ("MBq", Fraction(1)),
    "GBq": ("MBq", Fraction(1000)),
    "MBq/kg": ("MBq/kg", Fraction(1)),
    "GBq/kg": ("MBq/kg", Fraction(1000)),
    "MBq/m^2": ("MBq/m^2", Fraction(1)),
    "GBq/m^2": ("MBq/m^2", Fraction(1000)),
    "eV": ("keV", Fraction(1, 1000)),
    "keV": ("keV", Fraction(1)),
    "MeV": ("keV", Fraction(1000)),
}
_ACTIVITY_UNITS = ("MBq", "MBq/kg", "MBq/m^2")

_ELEMENT_NAMES = {
    "C": "carbon",
    "Cu": "copper",
    "F": "fluorine",
    "Ga": "gallium",
    "I": "iodine",
    "In": "indium",
    "Lu": "lutetium",
    "Tc": "technetium",
    "Y": "yttrium",
}

_TOP_KEYS = frozenset({"version", "radiopharmaceutical"})
_ENTRY_KEYS = frozenset(
    {
        "name",
        "compound",
        "nuclide",
        "aliases",
        "target",
        "role",
        "modalities",
        "notes",
        "codes",
        "photopeaks",
        "collimator",
        "activities",
        "imaging_times_h",
        "parameters",
    }
)
_REQUIRED_ENTRY_KEYS = ("name", "compound", "nuclide", "target", "role", "modalities")
_PARAM_KEYS = frozenset({"value", "unit", "source", "section", "status", "note"})
_CODE_KEYS = frozenset({"scheme", "value", "meaning", "source", "section", "status", "note"})
_WINDOW_KEYS = frozenset({"label", "centre_kev", "width_percent"})
_RANGE_SUFFIXES = (("_min", "_max"), ("_earliest", "_latest"))


class UnknownTracerError(TheranetError, ValueError):
    """A radiopharmaceutical name or alias is not in the catalogue."""


class CatalogueError(TheranetError, ValueError):
    """A radiopharmaceutical table is malformed (syntax, type, status, duplicate name)."""


def normalise_name(name: str) -> str:
    """Return the lookup key of a name: lower case, letters and digits only.

    Parameters
    ----------
    name : str
        A radiopharmaceutical name or alias.

    Returns
    -------
    str
        ``name`` case-folded with spaces, hyphens, brackets and other
        punctuation removed, so that ``"Lu-177 DOTA-TATE"`` and
        ``"lu177dotatate"`` compare equal.
    """
    return re.sub(r"[^0-9a-z]", "", name.casefold())


# ----------------------------------------------------------------------------------------
# value types


@dataclass(frozen=True)
class Sourced:
    """A parameter value with its unit and provenance.

    Parameters
    ----------
    value : float, tuple of float, or str
        The value in ``unit`` (a tuple for a list such as an imaging schedule; text
        only with unit ``"text"``).
    unit : str
        Unit of ``value`` (internal units after loading: MBq, MBq/kg, MBq/m^2, h,
        keV, %; ``"1"`` for counts; ``"text"`` for text).
    source : str
        Source ID(s) as listed in the reference (``clinical.md`` §10), e.g.
        ``"NETSPOT-PI"``; several IDs are separated by ``"; "``.
    section : str
        Where the value is stated, e.g. ``"clinical.md §1.4"``.
    status : {"verified", "unconfirmed", "uncertain"}
        Verification status in the reference.
    note : str, optional
        Conditions of use or the wording of the source.
    """

    value: float | tuple[float, ...] | str
    unit: str
    source: str
    section: str
    status: str
    note: str = ""

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise CatalogueError(
                "status", "not an allowed status", self.status, fix=f"use one of {STATUSES}"
            )
        for name in ("unit", "source", "section"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name).strip():
                raise MissingFieldError(name, "empty", fix="give a non-empty string")

    @property
    def is_verified(self) -> bool:
        """Whether the value is marked verified (✔) in the reference."""
        return self.status == "verified"

    def overridden(self, value: float | int, source: str) -> Sourced:
        """This parameter with another value, recorded as unconfirmed and noting what
        it replaces (same unit and section)."""
        return Sourced(
            value,
            self.unit,
            source,
            self.section,
            "unconfirmed",
            f"replaces {self.value} {self.unit} from {self.source}",
        )


@dataclass(frozen=True)
class Code:
    """A coded concept (SNOMED CT ``SCT``, ``UMLS``...) with its provenance.

    Parameters
    ----------
    scheme : str
        Coding scheme designator, e.g. ``"SCT"``.
    value : str
        Code value, e.g. ``"447553000"``.
    meaning : str
        Code meaning, e.g. ``"^177^Lutetium"``.
    source, section, status, note : str
        Provenance as in :class:`Sourced`.
    """

    scheme: str
    value: str
    meaning: str
    source: str
    section: str
    status: str
    note: str = ""

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise CatalogueError(
                "status", "not an allowed status", self.status, fix=f"use one of {STATUSES}"
            )


@dataclass(frozen=True)
class EnergyWindow:
    """A symmetric acquisition energy window around a photopeak.

    Parameters
    ----------
    centre_kev : float
        Window centre in keV.
    width_percent : float
        Full window width as a percentage of the centre (20 means ±10 %).
    label : str, optional
        Free-text label, e.g. ``"208 keV photopeak"``.
    centre, width : Sourced, optional
        Provenance of the centre and width (set when read from the catalogue).

    Examples
    --------
    >>> w = EnergyWindow(208.0, 20.0)
    >>> round(w.lower_kev, 6), round(w.upper_kev, 6)
    (187.2, 228.8)
    """

    centre_kev: float
    width_percent: float
    label: str = ""
    centre: Sourced | None = field(default=None, compare=False, repr=False)
    width: Sourced | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not (math.isfinite(self.centre_kev) and self.centre_kev > 0):
            raise CatalogueError("centre_kev", "must be finite and > 0", self.centre_kev)
        if not (math.isfinite(self.width_percent) and 0 < self.width_percent < 100):
            raise CatalogueError(
                "width_percent", "must be > 0 and < 100 (full width in %)", self.width_percent
            )
        if self.centre is not None and self.centre.value != self.centre_kev:
            raise CatalogueError("centre_kev", "differs from its sourced value", self.centre_kev)
        if self.width is not None and self.width.value != self.width_percent:
            raise CatalogueError(
                "width_percent", "differs from its sourced value", self.width_percent
            )

    @property
    def lower_kev(self) -> float:
        """Lower window bound in keV: ``centre·(1 − width/200)``."""
        return self.centre_kev * (1.0 - self.width_percent / 200.0)

    @property
    def upper_kev(self) -> float:
        """Upper window bound in keV: ``centre·(1 + width/200)``."""
        return self.centre_kev * (1.0 + self.width_percent / 200.0)

    @property
    def centre_mev(self) -> float:
        """Window centre in MeV."""
        return self.centre_kev * 1e-3

    @property
    def lower_mev(self) -> float:
        """Lower window bound in MeV."""
        return self.lower_kev * 1e-3

    @property
    def upper_mev(self) -> float:
        """Upper window bound in MeV."""
        return self.upper_kev * 1e-3

    def contains_kev(self, energy_kev: float) -> bool:
        """Whether ``energy_kev`` lies inside the window (bounds included)."""
        return self.lower_kev <= energy_kev <= self.upper_kev


def _frozen_map(value: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return MappingProxyType(dict(value or {}))


@dataclass(frozen=True)
class Radiopharmaceutical:
    """One catalogue entry.

    Parameters
    ----------
    name : str
        Canonical name, e.g. ``"177Lu-DOTATATE"``.
    nuclide_name : str
        Canonical nuclide, e.g. ``"Lu-177"``.
    compound : str
        The labelled compound, e.g. ``"DOTATATE"``; with the nuclide it generates
        lookup keys such as ``"Lu-177 DOTATATE"`` and ``"DOTATATE lutetium-177"``.
    aliases : tuple of str
        Further accepted names (brand names, INN forms).
    target : str
        Molecular target, e.g. ``"SSTR2"``.
    role : {"diagnostic", "therapeutic", "both"}
        Clinical role.
    modalities : tuple of {"PET", "SPECT", "planar"}
        Imaging modalities.
    codes : mapping of str to Code
        ``"radionuclide"`` and, where the reference gives one,
        ``"radiopharmaceutical"`` codes. Absent where no code is cited.
    photopeaks : tuple of EnergyWindow
        Photopeak acquisition windows (empty for PET tracers and 90Y).
    collimator : Sourced or None
        Recommended collimator (text value).
    activities : mapping of str to Sourced
        Typical administered activities (MBq, MBq/kg or MBq/m^2); keys ending in
        ``_min``/``_max`` give ranges, ``per_kg`` keys weight-based rules.
    imaging_times_h : mapping of str to Sourced
        Imaging times after injection in h (scalars, schedules as tuples, or
        ``_earliest``/``_latest`` windows).
    parameters : mapping of str to Sourced
        Other protocol parameters (cycles, intervals in h, effective dose...).
    notes : str
        Free-text remarks.
    """

    name: str
    nuclide_name: str
    compound: str
    aliases: tuple[str, ...] = ()
    target: str = ""
    role: str = "diagnostic"
    modalities: tuple[str, ...] = ()
    codes: Mapping[str, Code] = field(default_factory=dict, hash=False)
    photopeaks: tuple[EnergyWindow, ...] = ()
    collimator: Sourced | None = None
    activities: Mapping[str, Sourced] = field(default_factory=dict, hash=False)
    imaging_times_h: Mapping[str, Sourced] = field(default_factory=dict, hash=False)
    parameters: Mapping[str, Sourced] = field(default_factory=dict, hash=False)
    notes: str = ""

    def __post_init__(self) -> None:
        if not _NUCLIDE_RE.match(self.nuclide_name):
            raise CatalogueError(
                "nuclide",
                "not a canonical nuclide name",
                self.nuclide_name,
                fix="write it as Symbol-Mass, e.g. 'Lu-177'",
            )
        if self.role not in ROLES:
            raise CatalogueError(
                "role", "not an allowed role", self.role, fix=f"use one of {ROLES}"
            )
        bad = [m for m in self.modalities if m not in MODALITIES]
        if bad:
            raise CatalogueError(
                "modalities", "unknown modality", bad, fix=f"use some of {MODALITIES}"
            )
        object.__setattr__(self, "aliases", tuple(self.aliases))
        object.__setattr__(self, "modalities", tuple(self.modalities))
        object.__setattr__(self, "photopeaks", tuple(self.photopeaks))
        for name in ("codes", "activities", "imaging_times_h", "parameters"):
            object.__setattr__(self, name, _frozen_map(getattr(self, name)))

    @property
    def nuclide(self) -> Nuclide:
        """The :class:`theranet.nuclides.Nuclide` of this radiopharmaceutical (imported lazily)."""
        from theranet.nuclides import Nuclide

        return Nuclide(self.nuclide_name)

    @property
    def is_diagnostic(self) -> bool:
        """Whether the role includes diagnosis."""
        return self.role in ("diagnostic", "both")

    @property
    def is_therapeutic(self) -> bool:
        """Whether the role includes therapy."""
        return self.role in ("therapeutic", "both")

    @property
    def photopeaks_kev(self) -> tuple[float, ...]:
        """Centres of the photopeak windows in keV."""
        return tuple(w.centre_kev for w in self.photopeaks)

    def lookup_keys(self) -> frozenset[str]:
        """Normalised keys under which :func:`get` finds this entry.

        The name, the aliases, and nuclide/compound combinations in either order
        (``177Lu``, ``Lu177``, ``Lu-177``, ``lutetium-177`` with the compound).
        """
        keys = {normalise_name(self.name), *(normalise_name(a) for a in self.aliases)}
        symbol, mass = self.nuclide_name.split("-")
        nuclide_forms = [f"{mass}{symbol}", f"{symbol}{mass}"]
        if symbol in _ELEMENT_NAMES:
            nuclide_forms.append(f"{_ELEMENT_NAMES[symbol]}{mass}")
        for form in nuclide_forms:
            keys.add(normalise_name(form + self.compound))
            keys.add(normalise_name(self.compound + form))
        keys.discard("")
        return frozenset(keys)

    def iter_sourced(self) -> Iterator[tuple[str, Sourced]]:
        """Yield ``(path, Sourced)`` for every sourced value of the entry.

        Paths look like ``"activities.per_kg"`` or ``"photopeaks[0].width_percent"``.
        Codes are not included (see :attr:`codes`).
        """
        for i, window in enumerate(self.photopeaks):
            if window.centre is not None:
                yield f"photopeaks[{i}].centre_kev", window.centre
            if window.width is not None:
                yield f"photopeaks[{i}].width_percent", window.width
        if self.collimator is not None:
            yield "collimator", self.collimator
        for group in ("activities", "imaging_times_h", "parameters"):
            for key, value in getattr(self, group).items():
                yield f"{group}.{key}", value


# ----------------------------------------------------------------------------------------
# catalogue


class Catalogue(SourcedTable[Radiopharmaceutical]):
    """An immutable, validated set of radiopharmaceuticals with name lookup.

    Parameters
    ----------
    entries : iterable of Radiopharmaceutical
        The entries; their lookup keys must be unique across the catalogue.
    version : str
        Version of the table(s) the entries come from.
    paths : tuple of str, optional
        Files the catalogue was read from (shipped table first).

    Raises
    ------
    CatalogueError
        Two entries share a lookup key.
    """

    _entry_type = Radiopharmaceutical
    _normalise = staticmethod(normalise_name)

    def __init__(
        self,
        entries: tuple[Radiopharmaceutical, ...] | list[Radiopharmaceutical],
        version: str,
        paths: tuple[str, ...] = (),
    ) -> None:
        super().__init__(entries, version, paths)

    def _keys(self, entry: Radiopharmaceutical) -> frozenset[str]:
        return entry.lookup_keys()

    def _clash_error(
        self, entry: Radiopharmaceutical, other: Radiopharmaceutical, key: str
    ) -> CatalogueError:
        return CatalogueError(
            f"radiopharmaceutical '{entry.name}'",
            f"name or alias also used by '{other.name}'",
            key,
            fix="make names and aliases unique",
            source=", ".join(self._paths) or None,
        )

    @property
    def entries(self) -> tuple[Radiopharmaceutical, ...]:
        """All entries in table order."""
        return self._entries

    def get(self, name: str | Radiopharmaceutical) -> Radiopharmaceutical:
        """Look up an entry by name or alias (case, spacing and hyphens ignored).

        Parameters
        ----------
        name : str or Radiopharmaceutical
            Name or alias, e.g. ``"Lutathera"``, ``"lu-177-dotatate"``,
            ``"DOTATATE Lu-177"``; an entry is returned as is.

        Returns
        -------
        Radiopharmaceutical

        Raises
        ------
        UnknownTracerError
            No entry has this name or alias; the message lists the accepted names.
        """
        if isinstance(name, Radiopharmaceutical):
            return name
        if not isinstance(name, str):
            raise TypeError(f"name: expected str, got {type(name).__name__}")
        entry = self._lookup(name)
        if entry is None:
            close = difflib.get_close_matches(normalise_name(name), list(self._index), n=1)
            hint = f"did you mean '{self._index[close[0]].name}'? " if close else ""
            raise UnknownTracerError(
                "name",
                "unknown radiopharmaceutical",
                name,
                fix=f"{hint}use one of {', '.join(self.names())} or an alias of them, "
                "or add an entry with load_catalogue()",
            )
        return entry

    def __repr__(self) -> str:
        return f"Catalogue(version={self._version!r}, entries={len(self._entries)})"


# ----------------------------------------------------------------------------------------
# reading and validating tables


def _fail_missing(where: str, key: str, source: str) -> MissingFieldError:
    return MissingFieldError(
        f"{where}.{key}",
        "missing",
        fix=f"add '{key}' (every value needs value, unit, source, section and status)",
        source=source,
    )


def _check_keys(raw: Mapping[str, Any], allowed: frozenset[str], where: str, source: str) -> None:
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise CatalogueError(
            where,
            "unknown key(s)",
            unknown,
            fix=f"allowed keys are {', '.join(sorted(allowed))}",
            source=source,
        )


def _require_str(raw: Mapping[str, Any], key: str, where: str, source: str) -> str:
    if key not in raw:
        raise _fail_missing(where, key, source)
    value = raw[key]
    if not isinstance(value, str) or not value.strip():
        raise CatalogueError(f"{where}.{key}", "must be a non-empty string", value, source=source)
    return value


def _number(value: Any, where: str, source: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise CatalogueError(where, "must be a number", value, source=source)
    number = float(value)
    if not math.isfinite(number):
        raise CatalogueError(where, "must be finite", value, source=source)
    return number


def _convert(number: float, factor: Fraction) -> float:
    # exact decimal arithmetic: 4.4 GBq reads 4400 MBq (not 4400.000000000001), 40 min 2/3 h
    return float(Fraction(repr(number)) * factor)


def _parse_sourced(
    raw: Any,
    where: str,
    source: str,
    units: tuple[str, ...] | None = None,
) -> Sourced:
    """Validate a parameter table and convert its value to internal units."""
    if not isinstance(raw, Mapping):
        raise CatalogueError(
            where,
            "must be a table with value, unit, source, section and status",
            raw,
            source=source,
        )
    _check_keys(raw, _PARAM_KEYS, where, source)
    for key in ("value", "unit", "source", "section", "status"):
        if key not in raw:
            raise _fail_missing(where, key, source)
    unit = _require_str(raw, "unit", where, source)
    src = _require_str(raw, "source", where, source)
    section = _require_str(raw, "section", where, source)
    status = raw["status"]
    if status not in STATUSES:
        raise CatalogueError(
            f"{where}.status",
            "not an allowed status",
            status,
            fix=f"use one of {', '.join(STATUSES)}",
            source=source,
        )
    note = raw.get("note", "")
    if not isinstance(note, str):
        raise CatalogueError(f"{where}.note", "must be a string", note, source=source)

    value = raw["value"]
    converted: float | tuple[float, ...] | str
    if unit == _TEXT_UNIT:
        if not isinstance(value, str) or not value.strip():
            raise CatalogueError(
                f"{where}.value", "a 'text' value must be a non-empty string", value, source=source
            )
        converted = value
    else:
        target_unit, factor = _CONVERSIONS.get(unit, (unit, Fraction(1)))
        if isinstance(value, list):
            if not value:
                raise CatalogueError(f"{where}.value", "empty list", value, source=source)
            converted = tuple(
                _convert(_number(v, f"{where}.value[{i}]", source), factor)
                for i, v in enumerate(value)
            )
        else:
            converted = _convert(_number(value, f"{where}.value", source), factor)
        unit = target_unit
    if units is not None and unit not in units:
        raise UnitError(
            f"{where}.unit",
            "not allowed here",
            raw["unit"],
            fix=f"use one of {', '.join(units)} (or a convertible unit)",
            source=source,
        )
    return Sourced(converted, unit, src, section, status, note)


def _parse_group(
    raw: Any, where: str, source: str, units: tuple[str, ...] | None, positive: bool
) -> dict[str, Sourced]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise CatalogueError(where, "must be a table of parameters", raw, source=source)
    group = {}
    for key, value in raw.items():
        item = _parse_sourced(value, f"{where}.{key}", source, units)
        if positive and not isinstance(item.value, str):
            values = item.value if isinstance(item.value, tuple) else (item.value,)
            if any(v <= 0 for v in values):
                raise CatalogueError(
                    f"{where}.{key}.value", "must be > 0", raw[key]["value"], source=source
                )
        group[key] = item
    for low_suffix, high_suffix in _RANGE_SUFFIXES:
        for key, low in group.items():
            if not key.endswith(low_suffix):
                continue
            high = group.get(key[: -len(low_suffix)] + high_suffix)
            if (
                high is not None
                and isinstance(low.value, float)
                and isinstance(high.value, float)
                and low.value > high.value
            ):
                raise CatalogueError(
                    f"{where}.{key}",
                    f"greater than its '{high_suffix}' counterpart",
                    (low.value, high.value),
                    source=source,
                )
    return group


def _parse_code(raw: Any, where: str, source: str) -> Code:
    if not isinstance(raw, Mapping):
        raise CatalogueError(where, "must be a table", raw, source=source)
    _check_keys(raw, _CODE_KEYS, where, source)
    fields = {
        k: _require_str(raw, k, where, source)
        for k in ("scheme", "value", "meaning", "source", "section", "status")
    }
    if fields["status"] not in STATUSES:
        raise CatalogueError(
            f"{where}.status",
            "not an allowed status",
            fields["status"],
            fix=f"use one of {', '.join(STATUSES)}",
            source=source,
        )
    return Code(**fields, note=str(raw.get("note", "")))


def _parse_window(raw: Any, where: str, source: str) -> EnergyWindow:
    if not isinstance(raw, Mapping):
        raise CatalogueError(where, "must be a table", raw, source=source)
    _check_keys(raw, _WINDOW_KEYS, where, source)
    for key in ("centre_kev", "width_percent"):
        if key not in raw:
            raise _fail_missing(where, key, source)
    centre = _parse_sourced(raw["centre_kev"], f"{where}.centre_kev", source, ("keV",))
    width = _parse_sourced(raw["width_percent"], f"{where}.width_percent", source, ("%",))
    for item, key in ((centre, "centre_kev"), (width, "width_percent")):
        if not isinstance(item.value, float):
            raise CatalogueError(f"{where}.{key}.value", "must be one number", item.value)
    label = raw.get("label", "")
    try:
        return EnergyWindow(centre.value, width.value, str(label), centre, width)
    except CatalogueError as exc:
        raise CatalogueError(
            f"{where}.{exc.field}", exc.problem, exc.value, source=source
        ) from None


def _str_list(raw: Any, where: str, source: str) -> tuple[str, ...]:
    if not isinstance(raw, list) or not all(isinstance(x, str) and x.strip() for x in raw):
        raise CatalogueError(where, "must be a list of non-empty strings", raw, source=source)
    return tuple(raw)


def _parse_entry(raw: Any, index: int, source: str) -> Radiopharmaceutical:
    if not isinstance(raw, Mapping):
        raise CatalogueError(f"radiopharmaceutical[{index}]", "must be a table", raw, source=source)
    label = raw.get("name") if isinstance(raw.get("name"), str) else f"#{index}"
    where = f"radiopharmaceutical '{label}'"
    _check_keys(raw, _ENTRY_KEYS, where, source)
    for key in _REQUIRED_ENTRY_KEYS:
        if key not in raw:
            raise _fail_missing(where, key, source)
    name = _require_str(raw, "name", where, source)
    compound = _require_str(raw, "compound", where, source)
    nuclide = _require_str(raw, "nuclide", where, source)
    target = _require_str(raw, "target", where, source)
    role = _require_str(raw, "role", where, source)
    modalities = _str_list(raw["modalities"], f"{where}.modalities", source)
    aliases = _str_list(raw.get("aliases", []), f"{where}.aliases", source)
    notes = raw.get("notes", "")
    if not isinstance(notes, str):
        raise CatalogueError(f"{where}.notes", "must be a string", notes, source=source)

    codes_raw = raw.get("codes", {})
    if not isinstance(codes_raw, Mapping):
        raise CatalogueError(f"{where}.codes", "must be a table", codes_raw, source=source)
    codes = {k: _parse_code(v, f"{where}.codes.{k}", source) for k, v in codes_raw.items()}

    windows_raw = raw.get("photopeaks", [])
    if not isinstance(windows_raw, list):
        raise CatalogueError(
            f"{where}.photopeaks", "must be an array of tables", windows_raw, source=source
        )
    photopeaks = tuple(
        _parse_window(w, f"{where}.photopeaks[{i}]", source) for i, w in enumerate(windows_raw)
    )
    collimator = None
    if "collimator" in raw:
        collimator = _parse_sourced(raw["collimator"], f"{where}.collimator", source, (_TEXT_UNIT,))

    activities = _parse_group(
        raw.get("activities"), f"{where}.activities", source, _ACTIVITY_UNITS, positive=True
    )
    times = _parse_group(
        raw.get("imaging_times_h"), f"{where}.imaging_times_h", source, ("h",), positive=False
    )
    parameters = _parse_group(
        raw.get("parameters"), f"{where}.parameters", source, None, positive=False
    )
    try:
        return Radiopharmaceutical(
            name=name,
            nuclide_name=nuclide,
            compound=compound,
            aliases=aliases,
            target=target,
            role=role,
            modalities=modalities,
            codes=codes,
            photopeaks=photopeaks,
            collimator=collimator,
            activities=activities,
            imaging_times_h=times,
            parameters=parameters,
            notes=notes,
        )
    except CatalogueError as exc:
        raise CatalogueError(
            f"{where}.{exc.field}", exc.problem, exc.value, fix=exc.fix, source=source
        ) from None


def _read_toml(text: str, source: str) -> dict[str, Any]:
    doc = parse_toml(CatalogueError, text, source)
    _check_keys(doc, _TOP_KEYS, "table", source)
    if "version" not in doc:
        raise _fail_missing("table", "version", source)
    if not isinstance(doc["version"], str | int | float) or isinstance(doc["version"], bool):
        raise CatalogueError("table.version", "must be a string", doc["version"], source=source)
    entries = doc.get("radiopharmaceutical", [])
    if not isinstance(entries, list):
        raise CatalogueError(
            "radiopharmaceutical",
            "must be an array of tables ([[radiopharmaceutical]])",
            entries,
            source=source,
        )
    return doc


def _build(doc: Mapping[str, Any], version: str, paths: tuple[str, ...]) -> Catalogue:
    source = " + ".join(paths)
    entries = [_parse_entry(e, i, source) for i, e in enumerate(doc["radiopharmaceutical"])]
    if not entries:
        raise CatalogueError("radiopharmaceutical", "no entries", source=source)
    return Catalogue(entries, version, paths)


def _raw_keys(entry: Mapping[str, Any]) -> set[str]:
    names = [entry.get("name", ""), *entry.get("aliases", [])]
    return {normalise_name(n) for n in names if isinstance(n, str)}


def _is_parameter(value: Any) -> bool:
    return isinstance(value, Mapping) and "value" in value


def _merge_entry(base: dict[str, Any], override: Mapping[str, Any]) -> None:
    for key, value in override.items():
        if key == "name":
            continue  # matched by name or alias: keep the canonical name
        current = base.get(key)
        if (
            isinstance(current, dict)
            and isinstance(value, Mapping)
            and not _is_parameter(current)
            and not _is_parameter(value)
        ):
            _merge_entry(current, value)
        else:
            base[key] = copy.deepcopy(value)


def _merge(base: dict[str, Any], override: Mapping[str, Any], source: str) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    entries: list[dict[str, Any]] = merged["radiopharmaceutical"]
    for i, user_entry in enumerate(override.get("radiopharmaceutical", [])):
        if not isinstance(user_entry, Mapping):
            raise CatalogueError(
                f"radiopharmaceutical[{i}]", "must be a table", user_entry, source=source
            )
        if "name" not in user_entry:
            raise _fail_missing(f"radiopharmaceutical[{i}]", "name", source)
        name = user_entry["name"]
        if not isinstance(name, str):
            raise CatalogueError(
                f"radiopharmaceutical[{i}].name", "must be a string", name, source=source
            )
        # match on the user's name only, against the shipped names and aliases
        matches = [e for e in entries if normalise_name(name) in _raw_keys(e)]
        if matches:
            _merge_entry(matches[0], user_entry)
        else:
            entries.append(copy.deepcopy(dict(user_entry)))
    return merged


@lru_cache(maxsize=1)
def _shipped_doc() -> tuple[dict[str, Any], str]:
    return read_shipped(_DATA_FILE, _read_toml)


@lru_cache(maxsize=1)
def _shipped() -> Catalogue:
    doc, source = _shipped_doc()
    return _build(doc, str(doc["version"]), (source,))


def load_catalogue(path: str | PathLike[str] | None = None, *, merge: bool = True) -> Catalogue:
    """Read and validate a radiopharmaceutical table.

    Parameters
    ----------
    path : str or path-like, optional
        A user TOML with the layout of the shipped table (a ``version`` key and
        ``[[radiopharmaceutical]]`` entries). ``None`` reads the shipped table.
    merge : bool, default True
        If true, the user table overrides the shipped one: an entry whose
        ``name`` equals a shipped name or alias overrides that entry (the
        canonical name is kept); its scalar keys, lists (aliases, photopeaks) and
        whole parameters (``{value, unit, source, section, status}``) replace the
        shipped ones; unmatched entries are added. If false the user table
        replaces the shipped one and must be complete.

    Returns
    -------
    Catalogue
        The validated catalogue; ``version`` is ``"<shipped>+<user>"`` when merged.
        The module default used by :func:`get` is unchanged (see
        :func:`use_catalogue`).

    Raises
    ------
    MissingFieldError
        A value lacks its unit, source, section or status (or an entry a required
        key); the message names the entry and the field.
    UnitError
        A unit does not fit the field (e.g. an activity in h).
    CatalogueError
        Any other problem: TOML syntax, unknown key, bad status, duplicate alias.
    """
    if path is None:
        return _shipped()
    path = Path(path)
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CatalogueError(
            "path", f"cannot be read: {exc.strerror}", source, fix="give an existing TOML file"
        ) from None
    user = _read_toml(text, source)
    if not merge:
        return _build(user, str(user["version"]), (source,))
    base, base_source = _shipped_doc()
    merged = _merge(base, user, source)
    return _build(merged, f"{base['version']}+{user['version']}", (base_source, source))


_active: Catalogue | None = None


def use_catalogue(
    table: Catalogue | str | PathLike[str] | None = None, *, merge: bool = True
) -> Catalogue:
    """Set the catalogue used by :func:`get` and :func:`catalogue`.

    Parameters
    ----------
    table : Catalogue, str, path-like or None
        A catalogue, or a TOML path passed to :func:`load_catalogue` with
        ``merge``; ``None`` restores the shipped table.
    merge : bool, default True
        See :func:`load_catalogue`.

    Returns
    -------
    Catalogue
        The catalogue now in use.
    """
    global _active
    if table is None or isinstance(table, Catalogue):
        _active = table
    else:
        _active = load_catalogue(table, merge=merge)
    return active_catalogue()


def active_catalogue() -> Catalogue:
    """The catalogue used by :func:`get` (the shipped one unless :func:`use_catalogue` set one)."""
    return _active if _active is not None else _shipped()


def catalogue() -> tuple[Radiopharmaceutical, ...]:
    """All entries of the active catalogue, in table order."""
    return active_catalogue().entries


def get(
    name: str | Radiopharmaceutical, *, catalogue: Catalogue | None = None
) -> Radiopharmaceutical:
    """Look up a radiopharmaceutical by name or alias.

    Parameters
    ----------
    name : str or Radiopharmaceutical
        Name or alias; case, spaces, hyphens and brackets are ignored, and the
        nuclide may be written either way round (``"Lu-177 DOTATATE"``,
        ``"DOTATATE 177Lu"``, ``"lutetium-177 dotatate"``). Brand names such as
        ``"Lutathera"``, ``"NETSPOT"``, ``"Octreoscan"``, ``"Detectnet"``,
        ``"AdreView"`` and ``"FDG"`` are aliases.
    catalogue : Catalogue, optional
        Where to look; defaults to :func:`active_catalogue`.

    Returns
    -------
    Radiopharmaceutical

    Raises
    ------
    UnknownTracerError
        The name is not in the catalogue; the message gives the name and the
        accepted names.
    """
    return (catalogue if catalogue is not None else active_catalogue()).get(name)
