"""Which scan and which therapy for which neuroendocrine tumour: a sourced rule table.

:func:`recommend` looks a patient category up in a versioned rule table
(``theranet/data/pathway.toml``) that encodes the decision table of clinical.md §2
(imaging per tumour type), the per-tracer protocols of §1 and the therapy options of
§5.1-5.4a. Every row, modality and therapy option carries its source ID (clinical.md
§10), the clinical.md section and a verification status; rows marked [UNCERTAIN] in
clinical.md have ``status = "uncertain"`` and every answer built on one says so.

Selection
---------
A tumour type has *base* rows, tried in table order (the first whose ``when`` clause
matches the inputs wins), and may have *modifier* rows that are added in front of the
base row when they match (the dual-tracer row for a small-bowel NET with Ki-67
>= 10 %, the therapy-selection row of PPGL). Numeric inputs become bands at sourced
thresholds: Ki-67 10 % and 55 % (clinical.md §2, §1.7), calcitonin 150 pg/mL and
1000 pg/mL (§2, ATA). An input that was not given and would change the answer is
reported as a warning; where no row matches without it, the tumour type's documented
assumption is used (e.g. Ki-67 < 10 % for GEP-NET, sporadic genotype for PPGL) and
reported too.

Availability
------------
``unavailable`` names tracers, tracer classes or modalities that a site cannot offer.
An option (a single study, or a combined one such as SSTR + FDG PET) needs all its
modalities; a modality is unavailable when all its techniques are. A line whose options
are all unavailable is dropped and the next line promoted (clinical.md §2,
"Implementation"); fallback options (111In-pentetreotide "only if PET unavailable")
appear only when what they stand in for is unavailable.

Therapy options are listed in the order of clinical.md §5.4a/§5.1-5.4 (curative
surgery first when feasible, historic options last), each with its conditions; the
order is a reading aid, not a treatment algorithm. Eligibility thresholds (labs,
uptake, organ limits) live in :mod:`theranet.therapy`.

Examples
--------
>>> from theranet import pathway
>>> p = pathway.recommend("gep_net", ki67_percent=15.0)
>>> [item.label for item in p.imaging if item.line == 1]
['SSTR PET/CT (68Ga-DOTATATE/-TOC/-NOC or 64Cu-DOTATATE) + 18F-FDG PET/CT']
>>> p = pathway.recommend("mtc", calcitonin_pg_ml=420.0)
>>> p.first_line[0].label, p.rows[0].id
('18F-DOPA PET/CT', 'mtc_ct_150_to_1000')
"""

from __future__ import annotations

import copy
import logging
import textwrap
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from os import PathLike
from types import MappingProxyType
from typing import Any

from theranet import _checks
from theranet._tables import load_user_table, parse_toml, read_shipped
from theranet.errors import TheranetError
from theranet.radiopharmaceuticals import STATUSES, Sourced, normalise_name

__all__ = [
    "CATEGORICAL_INPUTS",
    "TUMOUR_TYPES",
    "ImagingItem",
    "Pathway",
    "PathwayError",
    "PathwayTable",
    "RowMatch",
    "TherapyOption",
    "TumourType",
    "format_text",
    "load_table",
    "recommend",
    "table_version",
    "tumour_types",
]

logger = logging.getLogger(__name__)

_DATA_FILE = "data/pathway.toml"

#: Categorical inputs of :func:`recommend`, each with its vocabulary table in the TOML.
CATEGORICAL_INPUTS: tuple[str, ...] = ("genotype", "site", "grade", "question")
#: Numeric inputs, their band table and the band key used in ``when`` clauses.
_NUMERIC_INPUTS: dict[str, str] = {
    "ki67_percent": "ki67_band",
    "calcitonin_pg_ml": "calcitonin_band",
}
_BAND_TO_INPUT = {band: name for name, band in _NUMERIC_INPUTS.items()}
_CLAUSE_KEYS = frozenset((*CATEGORICAL_INPUTS, *_NUMERIC_INPUTS.values()))
_INPUTS = frozenset((*CATEGORICAL_INPUTS, *_NUMERIC_INPUTS))
_UNKNOWN = "unknown"
_LINE_KEYS = ("first_line", "second_line", "third_line")
_MODALITY_KINDS = ("functional", "anatomical", "endoscopic", "invasive")
_THERAPY_KINDS = ("surgery", "medical", "targeted", "chemotherapy", "radionuclide")

_TOP_KEYS = frozenset(
    {
        "version",
        "date",
        "source",
        "bands",
        "genotype",
        "site",
        "grade",
        "question",
        "modality",
        "therapy",
        "tumour",
        "row",
    }
)
_BAND_KEYS = frozenset({"unit", "equal_goes", "bands", "edges"})
_VOCAB_KEYS = frozenset({"label", "aliases"})
_MODALITY_KEYS = frozenset(
    {"label", "kind", "techniques", "aliases", "protocol", "preparation", "sources"}
)
_THERAPY_KEYS = frozenset({"label", "kind", "historic", "section", "sources", "status", "note"})
_TUMOUR_KEYS = frozenset(
    {
        "label",
        "aliases",
        "presets",
        "inputs",
        "genotypes",
        "sites",
        "grades",
        "questions",
        "assume",
        "assume_note",
        "therapy",
    }
)
_TUMOUR_THERAPY_KEYS = frozenset({"option", "note", "sources", "when"})
_ROW_KEYS = frozenset(
    {
        "id",
        "tumour",
        "modifier_for",
        "label",
        "section",
        "status",
        "status_note",
        "sources",
        "when",
        *_LINE_KEYS,
        "anatomical",
        "notes",
        "caveats",
    }
)
_OPTION_KEYS = frozenset({"modalities", "note", "status", "sources", "fallback_for"})
_CAVEAT_KEYS = frozenset({"when", "text", "sources", "status"})
# plural key of the tumour table that lists the accepted values of each categorical input
_ACCEPTED_KEY = {
    "genotype": "genotypes",
    "site": "sites",
    "grade": "grades",
    "question": "questions",
}


class PathwayError(TheranetError, ValueError):
    """An input of the pathway lookup, or the pathway table itself, is unusable."""


def _key(name: str) -> str:
    """Lower case, letters and digits only (``"Head-and-neck"`` -> ``"headandneck"``)."""
    return normalise_name(str(name))


# ----------------------------------------------------------------------------------------
# table types


@dataclass(frozen=True)
class _Band:
    """Sourced thresholds that turn a number into a named band."""

    input: str
    unit: str
    edges: tuple[Sourced, ...]
    names: tuple[str, ...]
    equal_goes: str

    def of(self, value: float) -> str:
        index = 0
        for edge in self.edges:
            above = value >= edge.value if self.equal_goes == "upper" else value > edge.value
            if above:
                index += 1
        return self.names[index]

    def describe(self, name: str) -> str:
        """Range of a band in words (``"10 % <= ki67_percent < 55 %"``)."""
        i = self.names.index(name)
        lo = self.edges[i - 1].value if i > 0 else None
        hi = self.edges[i].value if i < len(self.edges) else None
        lo_op, hi_op = ("<=", "<") if self.equal_goes == "upper" else ("<", "<=")
        if lo is None:
            return f"{self.input} {hi_op} {hi:g} {self.unit}"
        if hi is None:
            return f"{self.input} {'>=' if lo_op == '<=' else '>'} {lo:g} {self.unit}"
        return f"{lo:g} {self.unit} {lo_op} {self.input} {hi_op} {hi:g} {self.unit}"


@dataclass(frozen=True)
class _Modality:
    key: str
    label: str
    kind: str
    techniques: tuple[str, ...]
    aliases: tuple[str, ...]
    protocol: str
    preparation: str
    sources: tuple[str, ...]


@dataclass(frozen=True)
class _Therapy:
    key: str
    label: str
    kind: str
    historic: bool
    section: str
    sources: tuple[str, ...]
    status: str
    note: str


@dataclass(frozen=True)
class _Option:
    modalities: tuple[str, ...]
    note: str
    status: str | None
    sources: tuple[str, ...]
    fallback_for: tuple[str, ...]


@dataclass(frozen=True)
class _Caveat:
    when: tuple[Mapping[str, frozenset[str]], ...]
    text: str
    sources: tuple[str, ...]
    status: str


@dataclass(frozen=True)
class _TherapyEntry:
    option: str
    note: str
    sources: tuple[str, ...]
    when: tuple[Mapping[str, frozenset[str]], ...]


@dataclass(frozen=True)
class _Row:
    id: str
    tumours: tuple[str, ...]
    modifier_for: tuple[str, ...]
    label: str
    section: str
    status: str
    status_note: str
    sources: tuple[str, ...]
    when: tuple[Mapping[str, frozenset[str]], ...]
    lines: tuple[tuple[_Option, ...], ...]
    anatomical: tuple[_Option, ...]
    notes: tuple[str, ...]
    caveats: tuple[_Caveat, ...]

    def matches(self, inputs: Mapping[str, str | None]) -> bool:
        return _clauses_match(self.when, inputs)

    def fields(self) -> set[str]:
        """Inputs that this row's ``when`` clauses test."""
        return {k for clause in self.when for k in clause}


@dataclass(frozen=True)
class TumourType:
    """A tumour type of the pathway table and the inputs it accepts.

    Attributes
    ----------
    name : str
        Canonical name (``"gep_net"``, ``"ppgl"``, ``"mtc"`` ...).
    label : str
        Human-readable name.
    aliases : tuple of str
        Other accepted names (case, spaces and punctuation are ignored).
    presets : mapping of str to mapping
        Inputs an alias implies (``"phaeochromocytoma"`` -> ``site = "adrenal"``).
    inputs : tuple of str
        Inputs of :func:`recommend` that apply (``"ki67_percent"``, ``"genotype"`` ...).
    genotypes, sites, grades, questions : tuple of str
        Accepted values of the categorical inputs (empty: the input does not apply).
    assume : mapping of str to str
        Inputs assumed when no row matches without them (reported as warnings).
    assume_note : str
        Why the assumption is the documented default.
    """

    name: str
    label: str
    aliases: tuple[str, ...]
    presets: Mapping[str, Mapping[str, str]]
    inputs: tuple[str, ...]
    genotypes: tuple[str, ...]
    sites: tuple[str, ...]
    grades: tuple[str, ...]
    questions: tuple[str, ...]
    assume: Mapping[str, str]
    assume_note: str
    therapy: tuple[_TherapyEntry, ...] = field(repr=False, compare=False, default=())

    def accepted(self, name: str) -> tuple[str, ...]:
        """Accepted values of a categorical input (``"genotype"``, ``"site"``, ...)."""
        return getattr(self, _ACCEPTED_KEY[name])


class PathwayTable:
    """A validated pathway rule table (see ``theranet/data/pathway.toml`` for the layout).

    Use :func:`load_table` to read one; :func:`recommend` queries it.

    Attributes
    ----------
    version, date : str
        Version and date of the table (``"<shipped>+<user>"`` for a merged table).
    paths : tuple of str
        Files the table was read from.
    sources : mapping of str to str
        Known source IDs (clinical.md §10) and their citations.
    tumour_types : mapping of str to TumourType
        Tumour types by canonical name, in table order.
    """

    def __init__(
        self,
        *,
        version: str,
        date: str,
        paths: tuple[str, ...],
        sources: Mapping[str, str],
        bands: Mapping[str, _Band],
        vocab: Mapping[str, Mapping[str, tuple[str, ...]]],
        modalities: Mapping[str, _Modality],
        therapies: Mapping[str, _Therapy],
        tumours: Mapping[str, TumourType],
        rows: Sequence[_Row],
    ) -> None:
        self.version = version
        self.date = date
        self.paths = paths
        self.sources = MappingProxyType(dict(sources))
        self._bands = MappingProxyType(dict(bands))
        self._vocab = MappingProxyType({k: MappingProxyType(dict(v)) for k, v in vocab.items()})
        self._modalities = MappingProxyType(dict(modalities))
        self._therapies = MappingProxyType(dict(therapies))
        self.tumour_types = MappingProxyType(dict(tumours))
        self._rows = tuple(rows)
        self._tumour_index = self._index_tumours()
        self._vocab_index = {
            name: {_key(a): k for k, aliases in table.items() for a in (k, *aliases)}
            for name, table in self._vocab.items()
        }
        self._unavailable_index = self._index_availability()

    # ---- indexes ------------------------------------------------------------------------

    def _index_tumours(self) -> dict[str, tuple[TumourType, Mapping[str, str]]]:
        index: dict[str, tuple[TumourType, Mapping[str, str]]] = {}
        for t in self.tumour_types.values():
            for alias in (t.name, *t.aliases):
                k = _key(alias)
                if k in index and index[k][0] is not t:
                    raise PathwayError(
                        f"tumour.{t.name}.aliases",
                        f"name or alias also used by '{index[k][0].name}'",
                        alias,
                        "make tumour names and aliases unique",
                        " + ".join(self.paths) or None,
                    )
                index[k] = (t, t.presets.get(alias, MappingProxyType({})))
        return index

    def _index_availability(self) -> dict[str, frozenset[str]]:
        """Lookup key -> set of techniques it makes unavailable."""
        index: dict[str, frozenset[str]] = {}
        for m in self._modalities.values():
            for technique in m.techniques:
                index.setdefault(_key(technique), frozenset({technique}))
        for m in self._modalities.values():
            for alias in (m.key, *m.aliases):
                index[_key(alias)] = frozenset(m.techniques)
        return index

    # ---- lookups ------------------------------------------------------------------------

    def tumour(self, name: str) -> tuple[TumourType, Mapping[str, str]]:
        """The tumour type of a name or alias, with the inputs the alias implies.

        Raises
        ------
        PathwayError
            Unknown tumour type; the message lists the accepted names.
        """
        if not isinstance(name, str) or not name.strip():
            raise PathwayError("tumour", "must be a non-empty string", name, self._tumour_fix())
        found = self._tumour_index.get(_key(name))
        if found is None:
            raise PathwayError("tumour", "unknown tumour type", name, self._tumour_fix())
        return found

    def _tumour_fix(self) -> str:
        names = ", ".join(
            f"{t.name} ({', '.join(t.aliases)})" if t.aliases else t.name
            for t in self.tumour_types.values()
        )
        return f"use one of: {names}"

    def vocabulary(self, name: str) -> Mapping[str, tuple[str, ...]]:
        """Accepted values of a categorical input (key -> aliases)."""
        return self._vocab[name]

    def band(self, input_name: str) -> _Band:
        return self._bands[input_name]

    def modality(self, key: str) -> _Modality:
        return self._modalities[key]

    def therapy(self, key: str) -> _Therapy:
        return self._therapies[key]

    @property
    def rows(self) -> tuple[_Row, ...]:
        return self._rows

    def rows_for(self, tumour: str) -> tuple[list[_Row], list[_Row]]:
        """Base rows and modifier rows of a tumour type, in table order."""
        base = [r for r in self._rows if tumour in r.tumours]
        modifiers = [r for r in self._rows if tumour in r.modifier_for]
        return base, modifiers

    def resolve_unavailable(self, names: Iterable[str]) -> frozenset[str]:
        """The tracers and techniques named unavailable (tracer, tracer class, modality or alias).

        Names not in the table are looked up in the radiopharmaceutical catalogue
        (``"Ga-68 DOTATATE"`` -> ``"68Ga-DOTATATE"``).

        Raises
        ------
        PathwayError
            A name that is neither in the table nor in the catalogue.
        """
        if isinstance(names, str):
            names = [names]
        techniques: set[str] = set()
        for name in names:
            if not isinstance(name, str) or not name.strip():
                raise PathwayError("unavailable", "each entry must be a non-empty string", name)
            found = self._unavailable_index.get(_key(name))
            if found is None:
                found = self._from_catalogue(name)
            techniques |= found
        return frozenset(techniques)

    def _from_catalogue(self, name: str) -> frozenset[str]:
        from theranet import radiopharmaceuticals as rp

        try:
            entry = rp.get(name)
        except rp.UnknownTracerError:
            entry = None
        found = self._unavailable_index.get(_key(entry.name)) if entry is not None else None
        if found is None:
            keys = ", ".join(self._modalities)
            raise PathwayError(
                "unavailable",
                "unknown tracer or modality",
                name,
                f"use a modality ({keys}) or a tracer or technique such as 68Ga-DOTATATE, "
                "18F-DOPA, 123I-MIBG, 18F-FDG, 111In-pentetreotide, CT, MRI, EUS",
            )
        return found

    def __repr__(self) -> str:
        return (
            f"PathwayTable(version={self.version!r}, date={self.date!r}, "
            f"tumours={list(self.tumour_types)}, rows={len(self._rows)})"
        )


def _clauses_match(
    clauses: Sequence[Mapping[str, frozenset[str]]], inputs: Mapping[str, str | None]
) -> bool:
    """Any clause matches; a clause matches when every key matches (``unknown`` = not given)."""
    if not clauses:
        return True
    for clause in clauses:
        if all((inputs.get(k) or _UNKNOWN) in allowed for k, allowed in clause.items()):
            return True
    return False


# ----------------------------------------------------------------------------------------
# output types


@dataclass(frozen=True)
class RowMatch:
    """A row of the rule table that applies to the query.

    Attributes
    ----------
    id : str
        Row ID in the table.
    label : str
        The row as named in clinical.md §2.
    role : {"base", "modifier"}
        The base row of the tumour type, or a row added in front of it.
    status : {"verified", "unconfirmed", "uncertain"}
        Verification status in clinical.md (``uncertain`` = marked [UNCERTAIN]).
    status_note : str
        Why the row has that status (empty for verified rows).
    section : str
        Where the row is stated (``"clinical.md §2"``).
    sources : tuple of str
        Source IDs (clinical.md §10).
    notes : tuple of str
        Rules and notes of the row.
    """

    id: str
    label: str
    role: str
    status: str
    status_note: str
    section: str
    sources: tuple[str, ...]
    notes: tuple[str, ...]


@dataclass(frozen=True)
class ImagingItem:
    """One imaging study (a single modality or a combined one) of a pathway.

    Attributes
    ----------
    row : str
        ID of the row it comes from.
    role : {"functional", "anatomical"}
        A line of functional imaging (which may include EUS or ASVS where
        clinical.md §2 lists them there) or the anatomical imaging of the row.
    line : int or None
        Line after unavailable studies were dropped (1 = first line); ``None`` for
        anatomical imaging.
    listed_line : int or None
        Line as listed in the table (differs from ``line`` after a promotion).
    modalities : tuple of str
        Modality keys; more than one means a combined study (all of them).
    label : str
        Human-readable study (``"SSTR PET/CT ... + 18F-FDG PET/CT"``).
    note : str
        Rationale or condition from the table (``"only if SSTR PET is unavailable"``).
    protocol : str
        clinical.md section(s) with the acquisition protocol.
    preparation : str
        Preparation and protocol rules in short (withdrawal, blockade, timing).
    status : {"verified", "unconfirmed", "uncertain"}
    sources : tuple of str
        Source IDs of the row entry and of the modality protocol.
    """

    row: str
    role: str
    line: int | None
    listed_line: int | None
    modalities: tuple[str, ...]
    label: str
    note: str
    protocol: str
    preparation: str
    status: str
    sources: tuple[str, ...]


@dataclass(frozen=True)
class TherapyOption:
    """A therapy option with its conditions for this tumour type.

    Attributes
    ----------
    rank : int
        Position in the listing (1 first); clinical.md §5.4a order, not an algorithm.
    key : str
        Therapy key in the table (``"prrt_lu177_dotatate"``).
    label : str
    kind : {"surgery", "medical", "targeted", "chemotherapy", "radionuclide"}
    historic : bool
        Superseded option kept for completeness (Kaltsas 2004).
    conditions : str
        Conditions and notes for this tumour type.
    note : str
        General note of the option (regimen, requirements).
    status : {"verified", "unconfirmed", "uncertain"}
    section : str
    sources : tuple of str
    """

    rank: int
    key: str
    label: str
    kind: str
    historic: bool
    conditions: str
    note: str
    status: str
    section: str
    sources: tuple[str, ...]


@dataclass(frozen=True)
class Pathway:
    """The imaging and therapy pathway for one patient category.

    Attributes
    ----------
    tumour : str
        Canonical tumour type.
    tumour_label : str
    inputs : mapping of str to object
        The inputs used: ``genotype``, ``site``, ``grade``, ``question`` (canonical
        keys or None), ``ki67_percent`` (%), ``ki67_band``, ``calcitonin_pg_ml``
        (pg/mL), ``calcitonin_band``.
    assumed : tuple of str
        Inputs that were not given and were assumed (see ``warnings``).
    rows : tuple of RowMatch
        Matched rows: modifier rows first, then the base row.
    imaging : tuple of ImagingItem
        Functional imaging, row by row, ordered by line.
    anatomical : tuple of ImagingItem
        Anatomical imaging of the matched rows.
    therapy : tuple of TherapyOption
        Therapy options, ordered.
    warnings : tuple of str
        Uncertain rows, missing inputs that would refine the answer, assumptions,
        unavailable studies and promoted lines, ignored inputs.
    notes : tuple of str
        Row notes and caveats that apply.
    unavailable : tuple of str
        Tracers and techniques treated as unavailable (sorted).
    table_version, table_date : str
        Version and date of the rule table.
    """

    tumour: str
    tumour_label: str
    inputs: Mapping[str, Any]
    assumed: tuple[str, ...]
    rows: tuple[RowMatch, ...]
    imaging: tuple[ImagingItem, ...]
    anatomical: tuple[ImagingItem, ...]
    therapy: tuple[TherapyOption, ...]
    warnings: tuple[str, ...]
    notes: tuple[str, ...]
    unavailable: tuple[str, ...]
    table_version: str
    table_date: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "inputs", MappingProxyType(dict(self.inputs)))

    @property
    def status(self) -> str:
        """Weakest status of the matched rows (``uncertain`` < ``unconfirmed`` < ``verified``)."""
        return min((r.status for r in self.rows), key=_STATUS_RANK.__getitem__)

    @property
    def first_line(self) -> tuple[ImagingItem, ...]:
        """First-line functional imaging of the primary row (the first matched row)."""
        primary = self.rows[0].id
        return tuple(i for i in self.imaging if i.row == primary and i.line == 1)

    def line(self, number: int, row: str | None = None) -> tuple[ImagingItem, ...]:
        """Functional imaging of one line (after promotion) of a row (default the primary)."""
        row_id = self.rows[0].id if row is None else row
        return tuple(i for i in self.imaging if i.row == row_id and i.line == number)

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible dictionary (round trip with :meth:`from_dict`)."""
        return {
            "tumour": self.tumour,
            "tumour_label": self.tumour_label,
            "inputs": dict(self.inputs),
            "assumed": list(self.assumed),
            "rows": [_as_dict(r) for r in self.rows],
            "imaging": [_as_dict(i) for i in self.imaging],
            "anatomical": [_as_dict(i) for i in self.anatomical],
            "therapy": [_as_dict(t) for t in self.therapy],
            "warnings": list(self.warnings),
            "notes": list(self.notes),
            "unavailable": list(self.unavailable),
            "table": {"version": self.table_version, "date": self.table_date},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Pathway:
        """Rebuild a pathway from :meth:`to_dict` output (e.g. after JSON).

        Raises
        ------
        PathwayError
            Missing or malformed keys.
        """
        try:
            return cls(
                tumour=data["tumour"],
                tumour_label=data["tumour_label"],
                inputs=dict(data["inputs"]),
                assumed=tuple(data["assumed"]),
                rows=tuple(_from_dict(RowMatch, r) for r in data["rows"]),
                imaging=tuple(_from_dict(ImagingItem, i) for i in data["imaging"]),
                anatomical=tuple(_from_dict(ImagingItem, i) for i in data["anatomical"]),
                therapy=tuple(_from_dict(TherapyOption, t) for t in data["therapy"]),
                warnings=tuple(data["warnings"]),
                notes=tuple(data["notes"]),
                unavailable=tuple(data["unavailable"]),
                table_version=data["table"]["version"],
                table_date=data["table"]["date"],
            )
        except (KeyError, TypeError) as exc:
            raise PathwayError(
                "data", f"not a pathway dictionary ({exc!r})", None, "pass Pathway.to_dict() output"
            ) from None

    def format_text(self, *, width: int = 100) -> str:
        """Plain-text rendering for a terminal (see :func:`format_text`)."""
        return format_text(self, width=width)


_STATUS_RANK = {"uncertain": 0, "unconfirmed": 1, "verified": 2}


def _as_dict(obj: Any) -> dict[str, Any]:
    return {
        name: list(value) if isinstance(value, tuple) else value
        for name, value in obj.__dict__.items()
    }


def _from_dict(cls: type, data: Mapping[str, Any]) -> Any:
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


# ----------------------------------------------------------------------------------------
# loading


def _fail(where: str, problem: str, value: Any = None, fix: str | None = None, source: str = ""):
    return PathwayError(where, problem, value, fix, source or None)


def _check_keys(raw: Any, allowed: frozenset[str], where: str, source: str) -> Mapping[str, Any]:
    if not isinstance(raw, Mapping):
        raise _fail(where, "must be a table", raw, source=source)
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise _fail(where, "unknown key(s)", unknown, f"allowed keys are {sorted(allowed)}", source)
    return raw


def _str(raw: Mapping[str, Any], key: str, where: str, source: str, *, empty: bool = False) -> str:
    if key not in raw:
        if empty:
            return ""
        raise _fail(f"{where}.{key}", "missing", fix=f"add '{key}'", source=source)
    value = raw[key]
    if not isinstance(value, str) or (not empty and not value.strip()):
        raise _fail(f"{where}.{key}", "must be a non-empty string", value, source=source)
    return value


def _str_list(raw: Mapping[str, Any], key: str, where: str, source: str) -> tuple[str, ...]:
    value = raw.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise _fail(f"{where}.{key}", "must be a list of non-empty strings", value, source=source)
    return tuple(value)


def _status(raw: Mapping[str, Any], where: str, source: str) -> str:
    value = _str(raw, "status", where, source)
    if value not in STATUSES:
        raise _fail(
            f"{where}.status",
            "not an allowed status",
            value,
            f"use one of {', '.join(STATUSES)}",
            source,
        )
    return value


class _Loader:
    """Parses and cross-checks one TOML document into a :class:`PathwayTable`."""

    def __init__(self, doc: Mapping[str, Any], version: str, paths: tuple[str, ...]) -> None:
        self.doc = doc
        self.version = version
        self.paths = paths
        self.src = " + ".join(paths)

    def _err(self, where: str, problem: str, value: Any = None, fix: str | None = None):
        return PathwayError(where, problem, value, fix, self.src or None)

    def build(self) -> PathwayTable:
        for key in ("version", "date"):
            value = self.doc.get(key)
            if value is None or not str(value).strip():
                raise self._err(key, "missing", None, f"give the table's {key} at the top")
        self.sources = self._sources()
        self.bands = {name: self._band(name, raw) for name, raw in self._tables("bands").items()}
        missing = sorted(set(_NUMERIC_INPUTS) - set(self.bands))
        if missing:
            raise self._err("bands", "missing band table(s)", missing)
        self.vocab = {name: self._vocabulary(name) for name in CATEGORICAL_INPUTS}
        self.modalities = {k: self._modality(k, raw) for k, raw in self._tables("modality").items()}
        self.therapies = {k: self._therapy(k, raw) for k, raw in self._tables("therapy").items()}
        tumours = {k: self._tumour(k, raw) for k, raw in self._tables("tumour").items()}
        rows = self._rows(tumours)
        date = self.doc.get("date", "")
        return PathwayTable(
            version=self.version,
            date=date.isoformat() if hasattr(date, "isoformat") else str(date),
            paths=self.paths,
            sources=self.sources,
            bands=self.bands,
            vocab=self.vocab,
            modalities=self.modalities,
            therapies=self.therapies,
            tumours=tumours,
            rows=rows,
        )

    # ---- pieces -------------------------------------------------------------------------

    def _tables(self, name: str) -> Mapping[str, Any]:
        raw = self.doc.get(name, {})
        if not isinstance(raw, Mapping) or not raw:
            raise self._err(name, "must be a non-empty table of tables", raw)
        return raw

    def _sources(self) -> dict[str, str]:
        raw = self._tables("source")
        for k, v in raw.items():
            if not isinstance(v, str) or not v.strip():
                raise self._err(f"source.{k}", "must be a non-empty citation", v)
        return dict(raw)

    def _source_ids(self, raw: Mapping[str, Any], where: str, *, required: bool = True):
        ids = _str_list(raw, "sources", where, self.src)
        if required and not ids:
            raise self._err(
                f"{where}.sources",
                "must name at least one source ID",
                None,
                "cite a source ID of clinical.md §10 listed in [source]",
            )
        unknown = [s for s in ids if s not in self.sources]
        if unknown:
            raise self._err(
                f"{where}.sources",
                "unknown source ID(s)",
                unknown,
                "add the ID to [source] (clinical.md §10) or fix the spelling",
            )
        return ids

    def _band(self, name: str, raw: Any) -> _Band:
        where = f"bands.{name}"
        if name not in _NUMERIC_INPUTS:
            raise self._err(
                where, "not a numeric input", name, f"use one of {sorted(_NUMERIC_INPUTS)}"
            )
        raw = _check_keys(raw, _BAND_KEYS, where, self.src)
        unit = _str(raw, "unit", where, self.src)
        equal_goes = _str(raw, "equal_goes", where, self.src)
        if equal_goes not in ("upper", "lower"):
            raise self._err(f"{where}.equal_goes", "must be 'upper' or 'lower'", equal_goes)
        edges_raw = raw.get("edges", [])
        if not isinstance(edges_raw, list) or not edges_raw:
            raise self._err(f"{where}.edges", "must be a non-empty list", edges_raw)
        edges = tuple(
            _checks.sourced_value(
                PathwayError,
                e,
                f"{where}.edges[{i}]",
                self.src,
                factors={unit: 1.0},
                internal_unit=unit,
            )
            for i, e in enumerate(edges_raw)
        )
        for i, e in enumerate(edges):
            for sid in e.source.split("; "):
                if sid not in self.sources:
                    raise self._err(
                        f"{where}.edges[{i}].source", "unknown source ID", sid, "add it to [source]"
                    )
        values = [float(e.value) for e in edges]
        if values != sorted(set(values)):
            raise self._err(f"{where}.edges", "must be strictly ascending", values)
        names = _str_list(raw, "bands", where, self.src)
        if len(names) != len(edges) + 1 or len(set(names)) != len(names) or _UNKNOWN in names:
            raise self._err(
                f"{where}.bands",
                f"need {len(edges) + 1} distinct names (not 'unknown')",
                list(names),
            )
        return _Band(name, unit, edges, names, equal_goes)

    def _vocabulary(self, name: str) -> dict[str, tuple[str, ...]]:
        out: dict[str, tuple[str, ...]] = {}
        seen: dict[str, str] = {}
        for k, raw in self._tables(name).items():
            where = f"{name}.{k}"
            raw = _check_keys(raw, _VOCAB_KEYS, where, self.src)
            _str(raw, "label", where, self.src)
            aliases = _str_list(raw, "aliases", where, self.src)
            for a in (k, *aliases):
                if _key(a) in seen and seen[_key(a)] != k:
                    raise self._err(where, f"alias also used by '{seen[_key(a)]}'", a)
                seen[_key(a)] = k
            if _key(k) == _UNKNOWN:
                raise self._err(where, "'unknown' is reserved", k)
            out[k] = aliases
        return out

    def _modality(self, key: str, raw: Any) -> _Modality:
        where = f"modality.{key}"
        raw = _check_keys(raw, _MODALITY_KEYS, where, self.src)
        kind = _str(raw, "kind", where, self.src)
        if kind not in _MODALITY_KINDS:
            raise self._err(
                f"{where}.kind",
                "not an allowed kind",
                kind,
                f"use one of {', '.join(_MODALITY_KINDS)}",
            )
        techniques = _str_list(raw, "techniques", where, self.src)
        if not techniques:
            raise self._err(
                f"{where}.techniques", "must name at least one tracer or technique", None
            )
        return _Modality(
            key=key,
            label=_str(raw, "label", where, self.src),
            kind=kind,
            techniques=techniques,
            aliases=_str_list(raw, "aliases", where, self.src),
            protocol=_str(raw, "protocol", where, self.src),
            preparation=_str(raw, "preparation", where, self.src, empty=True),
            sources=self._source_ids(raw, where),
        )

    def _therapy(self, key: str, raw: Any) -> _Therapy:
        where = f"therapy.{key}"
        raw = _check_keys(raw, _THERAPY_KEYS, where, self.src)
        kind = _str(raw, "kind", where, self.src)
        if kind not in _THERAPY_KINDS:
            raise self._err(
                f"{where}.kind",
                "not an allowed kind",
                kind,
                f"use one of {', '.join(_THERAPY_KINDS)}",
            )
        historic = raw.get("historic", False)
        if not isinstance(historic, bool):
            raise self._err(f"{where}.historic", "must be true or false", historic)
        return _Therapy(
            key=key,
            label=_str(raw, "label", where, self.src),
            kind=kind,
            historic=historic,
            section=_str(raw, "section", where, self.src),
            sources=self._source_ids(raw, where),
            status=_status(raw, where, self.src),
            note=_str(raw, "note", where, self.src, empty=True),
        )

    def _when(self, raw: Any, where: str) -> tuple[Mapping[str, frozenset[str]], ...]:
        if raw is None:
            return ()
        if not isinstance(raw, list) or not raw:
            raise self._err(where, "must be a non-empty list of clauses", raw)
        clauses = []
        for i, clause in enumerate(raw):
            w = f"{where}[{i}]"
            clause = _check_keys(clause, _CLAUSE_KEYS, w, self.src)
            if not clause:
                raise self._err(w, "empty clause", None, "name at least one input")
            parsed: dict[str, frozenset[str]] = {}
            for k, values in clause.items():
                if not isinstance(values, list) or not values:
                    raise self._err(f"{w}.{k}", "must be a non-empty list", values)
                allowed = self._allowed_clause_values(k)
                bad = [v for v in values if v not in allowed and v != _UNKNOWN]
                if bad:
                    raise self._err(
                        f"{w}.{k}", "unknown value(s)", bad, f"use {sorted(allowed)} or 'unknown'"
                    )
                parsed[k] = frozenset(values)
            clauses.append(MappingProxyType(parsed))
        return tuple(clauses)

    def _allowed_clause_values(self, key: str) -> set[str]:
        if key in self.vocab:
            return set(self.vocab[key])
        return set(self.bands[_BAND_TO_INPUT[key]].names)

    def _tumour(self, key: str, raw: Any) -> TumourType:
        where = f"tumour.{key}"
        raw = _check_keys(raw, _TUMOUR_KEYS, where, self.src)
        inputs = _str_list(raw, "inputs", where, self.src)
        bad = sorted(set(inputs) - _INPUTS)
        if bad:
            raise self._err(f"{where}.inputs", "unknown input(s)", bad, f"use {sorted(_INPUTS)}")
        accepted = {}
        for name, plural in _ACCEPTED_KEY.items():
            values = _str_list(raw, plural, where, self.src)
            unknown = [v for v in values if v not in self.vocab[name]]
            if unknown:
                raise self._err(
                    f"{where}.{plural}",
                    "not in the vocabulary",
                    unknown,
                    f"add them to [{name}.<key>]",
                )
            if values and name not in inputs:
                raise self._err(f"{where}.{plural}", f"given but '{name}' is not in inputs", values)
            accepted[plural] = values
        aliases = _str_list(raw, "aliases", where, self.src)
        presets = self._presets(raw.get("presets", {}), aliases, accepted, f"{where}.presets")
        assume = raw.get("assume", {})
        if not isinstance(assume, Mapping):
            raise self._err(f"{where}.assume", "must be a table", assume)
        for k, v in assume.items():
            if k not in _CLAUSE_KEYS or v not in self._allowed_clause_values(k):
                raise self._err(f"{where}.assume.{k}", "not an input and one of its values", v)
        therapy_raw = raw.get("therapy", [])
        if not isinstance(therapy_raw, list) or not therapy_raw:
            raise self._err(f"{where}.therapy", "must list at least one option", therapy_raw)
        return TumourType(
            name=key,
            label=_str(raw, "label", where, self.src),
            aliases=aliases,
            presets=MappingProxyType(presets),
            inputs=inputs,
            assume=MappingProxyType(dict(assume)),
            assume_note=_str(raw, "assume_note", where, self.src, empty=True),
            therapy=tuple(
                self._therapy_entry(e, f"{where}.therapy[{i}]") for i, e in enumerate(therapy_raw)
            ),
            **accepted,
        )

    def _presets(self, raw: Any, aliases, accepted, where: str) -> dict[str, Mapping[str, str]]:
        if not isinstance(raw, Mapping):
            raise self._err(where, "must be a table", raw)
        out = {}
        for alias, values in raw.items():
            if alias not in aliases:
                raise self._err(f"{where}.{alias}", "not an alias of this tumour type", alias)
            values = _check_keys(
                values, frozenset(CATEGORICAL_INPUTS), f"{where}.{alias}", self.src
            )
            for k, v in values.items():
                if v not in accepted[_ACCEPTED_KEY[k]]:
                    raise self._err(f"{where}.{alias}.{k}", "not an accepted value", v)
            out[alias] = MappingProxyType(dict(values))
        return out

    def _therapy_entry(self, raw: Any, where: str) -> _TherapyEntry:
        raw = _check_keys(raw, _TUMOUR_THERAPY_KEYS, where, self.src)
        option = _str(raw, "option", where, self.src)
        if option not in self.therapies:
            raise self._err(
                f"{where}.option",
                "unknown therapy",
                option,
                f"use one of {', '.join(self.therapies)}",
            )
        return _TherapyEntry(
            option=option,
            note=_str(raw, "note", where, self.src, empty=True),
            sources=self._source_ids(raw, where, required=False),
            when=self._when(raw.get("when"), f"{where}.when"),
        )

    def _option(self, raw: Any, where: str, kind: str) -> _Option:
        if isinstance(raw, str):
            raw = {"modalities": [raw]}
        raw = _check_keys(raw, _OPTION_KEYS, where, self.src)
        modalities = _str_list(raw, "modalities", where, self.src)
        fallback_for = _str_list(raw, "fallback_for", where, self.src)
        if not modalities:
            raise self._err(f"{where}.modalities", "must name at least one modality", None)
        for m in (*modalities, *fallback_for):
            if m not in self.modalities:
                raise self._err(
                    where, "unknown modality", m, f"use one of {', '.join(self.modalities)}"
                )
        for m in modalities:
            anatomical = self.modalities[m].kind == "anatomical"
            if anatomical != (kind == "anatomical"):
                raise self._err(where, f"modality of kind {self.modalities[m].kind!r} in {kind}", m)
        return _Option(
            modalities=modalities,
            note=_str(raw, "note", where, self.src, empty=True),
            status=_status(raw, where, self.src) if "status" in raw else None,
            sources=self._source_ids(raw, where, required=False),
            fallback_for=fallback_for,
        )

    def _caveat(self, raw: Any, where: str) -> _Caveat:
        raw = _check_keys(raw, _CAVEAT_KEYS, where, self.src)
        return _Caveat(
            when=self._when(raw.get("when"), f"{where}.when"),
            text=_str(raw, "text", where, self.src),
            sources=self._source_ids(raw, where),
            status=_status(raw, where, self.src),
        )

    def _rows(self, tumours: Mapping[str, TumourType]) -> list[_Row]:
        raw_rows = self.doc.get("row", [])
        if not isinstance(raw_rows, list) or not raw_rows:
            raise self._err("row", "must be a non-empty array of tables ([[row]])", None)
        rows, ids = [], set()
        for i, raw in enumerate(raw_rows):
            row = self._row(raw, f"row[{i}]", tumours)
            if row.id in ids:
                raise self._err(f"row[{i}].id", "duplicate row id", row.id)
            ids.add(row.id)
            rows.append(row)
        for t in tumours.values():
            if not any(t.name in r.tumours for r in rows):
                raise self._err(
                    f"tumour.{t.name}",
                    "has no base row",
                    None,
                    "add a [[row]] with this tumour type",
                )
        return rows

    def _row(self, raw: Any, where: str, tumours: Mapping[str, TumourType]) -> _Row:
        raw = _check_keys(raw, _ROW_KEYS, where, self.src)
        row_id = _str(raw, "id", where, self.src)
        where = f"row.{row_id}"
        tumour_names = _str_list(raw, "tumour", where, self.src)
        modifier_for = _str_list(raw, "modifier_for", where, self.src)
        if not tumour_names and not modifier_for:
            raise self._err(f"{where}.tumour", "names no tumour type", None)
        for t in (*tumour_names, *modifier_for):
            if t not in tumours:
                raise self._err(
                    f"{where}.tumour", "unknown tumour type", t, f"use one of {', '.join(tumours)}"
                )
        when = self._when(raw.get("when"), f"{where}.when")
        for clause in when:
            for k, values in clause.items():
                self._check_clause_for_tumours(
                    k, values, (*tumour_names, *modifier_for), tumours, where
                )
        lines = tuple(
            tuple(
                self._option(o, f"{where}.{lk}[{j}]", "functional")
                for j, o in enumerate(self._list(raw, lk, where))
            )
            for lk in _LINE_KEYS
        )
        return _Row(
            id=row_id,
            tumours=tumour_names,
            modifier_for=modifier_for,
            label=_str(raw, "label", where, self.src),
            section=_str(raw, "section", where, self.src),
            status=_status(raw, where, self.src),
            status_note=_str(raw, "status_note", where, self.src, empty=True),
            sources=self._source_ids(raw, where),
            when=when,
            lines=lines,
            anatomical=tuple(
                self._option(o, f"{where}.anatomical[{j}]", "anatomical")
                for j, o in enumerate(self._list(raw, "anatomical", where))
            ),
            notes=_str_list(raw, "notes", where, self.src),
            caveats=tuple(
                self._caveat(c, f"{where}.caveats[{j}]")
                for j, c in enumerate(self._list(raw, "caveats", where))
            ),
        )

    def _list(self, raw: Mapping[str, Any], key: str, where: str) -> list[Any]:
        value = raw.get(key, [])
        if not isinstance(value, list):
            raise self._err(f"{where}.{key}", "must be a list", value)
        return value

    def _check_clause_for_tumours(self, key, values, names, tumours, where) -> None:
        """A row may only test inputs (and values) that its tumour types accept."""
        input_name = _BAND_TO_INPUT.get(key, key)
        for t in names:
            tumour = tumours[t]
            if input_name not in tumour.inputs:
                raise self._err(
                    f"{where}.when", f"tests '{key}', not an input of tumour '{t}'", sorted(values)
                )
            if key in _ACCEPTED_KEY:
                bad = sorted(set(values) - set(tumour.accepted(key)) - {_UNKNOWN})
                if bad:
                    raise self._err(f"{where}.when", f"{key} value(s) not accepted by '{t}'", bad)


def _read_toml(text: str, source: str) -> dict[str, Any]:
    doc = parse_toml(PathwayError, text, source)
    unknown = sorted(set(doc) - _TOP_KEYS)
    if unknown:
        raise PathwayError(
            "table",
            "unknown key(s)",
            unknown,
            f"allowed keys are {', '.join(sorted(_TOP_KEYS))}",
            source,
        )
    return doc


def _merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """User entries replace entries of the same key (rows: of the same id) as a whole.

    The user's ``date`` replaces the shipped one; the version is left to the caller.
    """
    merged = copy.deepcopy(dict(base))
    for key, value in override.items():
        if key == "version":
            continue
        if key == "date":
            merged[key] = value
        elif key == "row":
            rows = merged.setdefault("row", [])
            index = {r.get("id"): i for i, r in enumerate(rows)}
            for r in value if isinstance(value, list) else [value]:
                rid = r.get("id") if isinstance(r, Mapping) else None
                if rid in index:
                    rows[index[rid]] = copy.deepcopy(r)
                else:
                    rows.append(copy.deepcopy(r))
        elif isinstance(value, Mapping):
            merged.setdefault(key, {}).update(copy.deepcopy(dict(value)))
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _build(doc: Mapping[str, Any], version: str, paths: tuple[str, ...]) -> PathwayTable:
    return _Loader(doc, version, paths).build()


@lru_cache(maxsize=1)
def _shipped_doc() -> tuple[dict[str, Any], str]:
    return read_shipped(_DATA_FILE, _read_toml)


@lru_cache(maxsize=1)
def _shipped() -> PathwayTable:
    doc, source = _shipped_doc()
    return _build(doc, str(doc.get("version", "")), (source,))


def load_table(path: str | PathLike[str] | None = None, *, merge: bool = True) -> PathwayTable:
    """Read and validate a pathway rule table.

    Parameters
    ----------
    path : str or path-like, optional
        A user TOML with the layout of the shipped ``pathway.toml``; ``None`` reads
        the shipped table.
    merge : bool, default True
        If true, the user table is merged onto the shipped one: a ``[[row]]`` with an
        existing ``id`` replaces that row, new rows are appended; ``[source]``,
        ``[modality.<key>]``, ``[therapy.<key>]``, ``[tumour.<key>]`` ... entries
        replace the entry of the same key as a whole, new keys are added. If false
        the user table replaces the shipped one and must be complete.

    Returns
    -------
    PathwayTable

    Raises
    ------
    PathwayError
        Unreadable file, unknown keys, a row without sources or citing an unknown
        source ID, unknown modality/therapy/tumour/band names, bad statuses.

    Examples
    --------
    A site table that adds FDG PET as second line for typical lung carcinoid (a row
    with an existing id replaces the shipped row as a whole)::

        version = "site-1"

        [[row]]
        id = "lung_carcinoid_typical"
        tumour = ["lung_carcinoid"]
        label = "Lung carcinoid, typical (site protocol)"
        section = "clinical.md §2"
        status = "uncertain"
        sources = ["AUC-SSTR-2018"]
        when = [{ grade = ["typical"] }]
        first_line = ["sstr_pet"]
        second_line = ["fdg_pet"]
        anatomical = ["chest_ct"]
    """
    if path is None:
        return _shipped()
    return load_user_table(
        PathwayError,
        path,
        merge=merge,
        shipped=_shipped_doc(),
        read_toml=_read_toml,
        merge_docs=_merge,
        build=_build,
    )


def table_version(table: PathwayTable | None = None) -> str:
    """Version of the rule table (default the shipped one), e.g. ``"1.0.0"``."""
    return (table if table is not None else _shipped()).version


def tumour_types(table: PathwayTable | None = None) -> Mapping[str, TumourType]:
    """Tumour types of a table (default the shipped one) by canonical name."""
    return (table if table is not None else _shipped()).tumour_types


class _ShippedTumourTypes(Mapping):
    """Read-only view of the shipped table's tumour types, loaded on first use."""

    def __getitem__(self, name: str) -> TumourType:
        return tumour_types()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(tumour_types())

    def __len__(self) -> int:
        return len(tumour_types())

    def __repr__(self) -> str:
        return f"TUMOUR_TYPES({list(self)})"


#: Tumour types of the shipped table by canonical name (``TUMOUR_TYPES["ppgl"].aliases``).
TUMOUR_TYPES: Mapping[str, TumourType] = _ShippedTumourTypes()


# ----------------------------------------------------------------------------------------
# the query


@dataclass
class _Query:
    """Normalised inputs of one :func:`recommend` call."""

    tumour: TumourType
    values: dict[str, str | None]
    numbers: dict[str, float | None]
    warnings: list[str] = field(default_factory=list)


def _categorical(table: PathwayTable, t: TumourType, name: str, value: Any) -> str | None:
    if value is None:
        return None
    accepted = t.accepted(name)
    if name not in t.inputs or not accepted:
        raise PathwayError(
            name,
            f"does not apply to tumour type '{t.name}'",
            value,
            f"omit {name} (the rows of clinical.md §2 for {t.label} do not depend on it)",
        )
    if not isinstance(value, str):
        raise PathwayError(name, "must be a string", value, f"use one of {', '.join(accepted)}")
    key = table._vocab_index[name].get(_key(value))
    if key is None or key not in accepted:
        problem = f"not valid for tumour type '{t.name}'" if key else f"unknown {name}"
        raise PathwayError(name, problem, value, f"use one of {', '.join(accepted)}")
    return key


def _number(name: str, value: Any, unit: str, upper: float | None) -> float | None:
    if value is None:
        return None
    try:
        number = _checks.non_negative(PathwayError, name, value, unit)
    except PathwayError as exc:
        if exc.fix:
            raise
        raise PathwayError(name, exc.problem, value, f"give a number in {unit}") from None
    if upper is not None and number > upper:
        raise PathwayError(
            name,
            f"must be <= {upper:g} {unit}",
            value,
            f"give a value between 0 and {upper:g} {unit}",
        )
    return number


def _build_query(
    table: PathwayTable,
    tumour: str,
    categorical: Mapping[str, Any],
    ki67_percent: Any,
    calcitonin_pg_ml: Any,
) -> _Query:
    t, preset = table.tumour(tumour)
    values: dict[str, str | None] = {}
    for name in CATEGORICAL_INPUTS:
        values[name] = _categorical(table, t, name, categorical.get(name))
        implied = preset.get(name)
        if implied is not None:
            if values[name] is not None and values[name] != implied:
                raise PathwayError(
                    name,
                    f"conflicts with the tumour name {tumour!r}, which implies {name} {implied!r}",
                    categorical.get(name),
                    f"omit {name} or use the tumour type '{t.name}'",
                )
            values[name] = implied
    numbers = {
        "ki67_percent": _number("ki67_percent", ki67_percent, "%", 100.0),
        "calcitonin_pg_ml": _number("calcitonin_pg_ml", calcitonin_pg_ml, "pg/mL", None),
    }
    query = _Query(t, values, numbers)
    for name, band_key in _NUMERIC_INPUTS.items():
        number = numbers[name]
        if number is None:
            values[band_key] = None
        elif name not in t.inputs:
            values[band_key] = None
            query.warnings.append(
                f"{name} = {number:g} ignored: it does not select a row for {t.label} "
                "(clinical.md §2)"
            )
        else:
            values[band_key] = table.band(name).of(number)
    return query


def _select(
    table: PathwayTable, t: TumourType, values: Mapping[str, str | None], *, assume: bool = True
) -> tuple[_Row, list[_Row], dict[str, str]]:
    """Base row, modifier rows and the assumptions made, or PathwayError."""
    base_rows, modifier_rows = table.rows_for(t.name)
    assumed: dict[str, str] = {}
    base = next((r for r in base_rows if r.matches(values)), None)
    if base is None and assume:
        assumed = {k: v for k, v in t.assume.items() if values.get(k) is None}
        trial = {**values, **assumed}
        base = next((r for r in base_rows if r.matches(trial)), None)
        values = trial
    if base is None:
        fields = sorted({f for r in base_rows for f in r.fields()})
        missing = [f for f in fields if values.get(f) is None]
        if missing:
            name = _BAND_TO_INPUT.get(missing[0], missing[0])
            raise PathwayError(
                name,
                f"needed to choose the pathway for {t.label}",
                None,
                f"give {name}: {_accepted_text(table, t, missing[0])}",
            )
        given = {k: v for k, v in values.items() if v is not None}
        raise PathwayError(
            "inputs",
            f"no row of the pathway table (clinical.md §2) covers this combination for {t.label}",
            given,
            "the rows cover: " + "; ".join(r.label for r in base_rows),
        )
    modifiers = [r for r in modifier_rows if r.matches(values)]
    return base, modifiers, assumed


def _accepted_text(table: PathwayTable, t: TumourType, field_name: str) -> str:
    if field_name in _ACCEPTED_KEY:
        return "one of " + ", ".join(t.accepted(field_name))
    band = table.band(_BAND_TO_INPUT[field_name])
    return f"a value in {band.unit}"


def _missing_input_warnings(
    table: PathwayTable,
    query: _Query,
    chosen: tuple[str, ...],
    assumed: Mapping[str, str],
) -> list[str]:
    """Warn about inputs not given that would change the matched rows."""
    t = query.tumour
    base_rows, modifier_rows = table.rows_for(t.name)
    fields = sorted({f for r in (*base_rows, *modifier_rows) for f in r.fields()} - {"question"})
    out = []
    for f in fields:
        if query.values.get(f) is not None:
            continue
        name = _BAND_TO_INPUT.get(f, f)
        if f in assumed:
            label = _value_text(table, f, assumed[f])
            note = f" ({t.assume_note})" if t.assume_note else ""
            out.append(f"{name} not given: assumed {label}{note}; give {name} to refine")
            continue
        alternatives = _what_if(table, query, f, chosen)
        if alternatives:
            out.append(f"{name} not given; it would refine the answer: " + "; ".join(alternatives))
    return out


def _what_if(table: PathwayTable, query: _Query, f: str, chosen: tuple[str, ...]) -> list[str]:
    """For each other value of ``f``, the rows it would select (values grouped by result)."""
    t = query.tumour
    values = t.accepted(f) if f in _ACCEPTED_KEY else table.band(_BAND_TO_INPUT[f]).names
    outcomes: dict[tuple[str, ...], list[str]] = {}
    for v in values:
        try:
            base, mods, _ = _select(table, t, {**query.values, f: v})
        except PathwayError:
            continue
        ids = tuple(r.id for r in (*mods, base))
        if ids != chosen:
            outcomes.setdefault(ids, []).append(_value_text(table, f, v))
    return [f"{' or '.join(texts)} -> {', '.join(ids)}" for ids, texts in outcomes.items()]


def _value_text(table: PathwayTable, f: str, value: str) -> str:
    if f in _BAND_TO_INPUT:
        return table.band(_BAND_TO_INPUT[f]).describe(value)
    return f"{f} {value}"


def _is_available(table: PathwayTable, modality: str, unavailable: frozenset[str]) -> bool:
    return not set(table.modality(modality).techniques) <= unavailable


def _option_item(
    table: PathwayTable,
    row: _Row,
    option: _Option,
    role: str,
    line: int | None,
    listed: int | None,
) -> ImagingItem:
    mods = [table.modality(m) for m in option.modalities]
    sources = list(
        dict.fromkeys((*row.sources, *option.sources, *(s for m in mods for s in m.sources)))
    )
    return ImagingItem(
        row=row.id,
        role=role,
        line=line,
        listed_line=listed,
        modalities=option.modalities,
        label=" + ".join(m.label for m in mods),
        note=option.note,
        protocol=", ".join(dict.fromkeys(m.protocol for m in mods)),
        preparation=" | ".join(m.preparation for m in mods if m.preparation),
        status=option.status or row.status,
        sources=tuple(sources),
    )


def _imaging(
    table: PathwayTable, row: _Row, unavailable: frozenset[str], warnings: list[str]
) -> tuple[list[ImagingItem], list[ImagingItem]]:
    """Functional items (lines dropped and promoted as needed) and anatomical items of a row."""

    def available(option: _Option) -> bool:
        return all(_is_available(table, m, unavailable) for m in option.modalities)

    def shown(option: _Option) -> bool:
        return not option.fallback_for or not any(
            _is_available(table, m, unavailable) for m in option.fallback_for
        )

    functional: list[ImagingItem] = []
    line = 0
    for listed, options in enumerate(row.lines, start=1):
        if not options:
            continue
        keep = [o for o in options if shown(o) and available(o)]
        for o in options:
            if shown(o) and not available(o):
                label = " + ".join(table.modality(m).label for m in o.modalities)
                warnings.append(
                    f"{label} unavailable: dropped from line {listed} of row '{row.id}'"
                )
        if not keep:
            warnings.append(
                f"line {listed} of row '{row.id}' has nothing available: the next line is promoted"
            )
            continue
        line += 1
        functional.extend(_option_item(table, row, o, "functional", line, listed) for o in keep)
    if any(row.lines) and not functional:
        warnings.append(f"no functional imaging of row '{row.id}' is available")
    anatomical = []
    for o in row.anatomical:
        if available(o):
            anatomical.append(_option_item(table, row, o, "anatomical", None, None))
        else:
            label = " + ".join(table.modality(m).label for m in o.modalities)
            warnings.append(
                f"{label} unavailable: dropped from the anatomical imaging of '{row.id}'"
            )
    return functional, anatomical


def _therapy(table: PathwayTable, t: TumourType, values: Mapping[str, str | None]):
    options = []
    for entry in t.therapy:
        if not _clauses_match(entry.when, values):
            continue
        th = table.therapy(entry.option)
        options.append(
            TherapyOption(
                rank=len(options) + 1,
                key=th.key,
                label=th.label,
                kind=th.kind,
                historic=th.historic,
                conditions=entry.note,
                note=th.note,
                status=th.status,
                section=th.section,
                sources=tuple(dict.fromkeys((*th.sources, *entry.sources))),
            )
        )
    return tuple(options)


def _row_match(row: _Row, role: str) -> RowMatch:
    return RowMatch(
        id=row.id,
        label=row.label,
        role=role,
        status=row.status,
        status_note=row.status_note,
        section=row.section,
        sources=row.sources,
        notes=row.notes,
    )


def recommend(
    tumour: str,
    *,
    genotype: str | None = None,
    site: str | None = None,
    ki67_percent: float | None = None,
    calcitonin_pg_ml: float | None = None,
    grade: str | None = None,
    question: str | None = None,
    unavailable: Iterable[str] = (),
    table: PathwayTable | None = None,
) -> Pathway:
    """Imaging lines and therapy options for a tumour type, each with its source.

    Parameters
    ----------
    tumour : str
        Tumour type or alias (see :data:`TUMOUR_TYPES`): ``gep_net``, ``nec``,
        ``insulinoma``, ``gastrinoma``, ``small_bowel_net``, ``lung_carcinoid``,
        ``ppgl``, ``mtc``, ``neuroblastoma``; aliases such as
        ``"phaeochromocytoma"`` (site adrenal) or ``"atypical_carcinoid"`` imply inputs.
    genotype : str, optional
        Germline status where it selects a row: PPGL ``sporadic``, ``NF1``, ``RET``,
        ``VHL``, ``MAX``, ``SDHx`` (``SDHB`` ... accepted); gastrinoma ``sporadic``
        or ``MEN1``.
    site : str, optional
        PPGL site or extent: ``adrenal``, ``head_and_neck``,
        ``extra_adrenal_sympathetic``, ``multifocal``, ``metastatic``.
    ki67_percent : float, optional
        Ki-67 index, %, 0-100 (GEP-NET bands < 10 %, 10-55 %, >= 55 %).
    calcitonin_pg_ml : float, optional
        Basal serum calcitonin, pg/mL, >= 0 (MTC bands <= 150, > 150, > 1000 pg/mL).
    grade : str, optional
        WHO grade or histological class: GEP-NET ``G1``/``G2``/``G3``; lung carcinoid
        ``typical``/``atypical``; insulinoma ``benign``/``malignant``.
    question : str, optional
        Clinical question: ``staging``, ``unknown_primary``, ``pre_operative``,
        ``localisation``, ``restaging``, ``recurrence``, ``therapy_selection``,
        ``mibg_therapy_selection`` (accepted values depend on the tumour type).
    unavailable : iterable of str, optional
        Tracers (``"68Ga-DOTATATE"``, ``"18F-DOPA"``), tracer classes (``"sstr_pet"``)
        or modalities (``"MRI"``, ``"eus"``) the site cannot offer.
    table : PathwayTable, optional
        Rule table from :func:`load_table`; default the shipped one.

    Returns
    -------
    Pathway

    Raises
    ------
    PathwayError
        Unknown tumour type (the message lists the accepted names); a genotype,
        site, grade or question not valid for the tumour type; Ki-67 negative, above
        100 % or not finite; calcitonin negative or not finite; an unknown
        unavailable name; a missing input that no documented assumption covers
        (PPGL site); a combination no row covers.

    Examples
    --------
    >>> p = recommend("ppgl", genotype="SDHB", site="adrenal")
    >>> p.rows[0].id, [i.label for i in p.first_line]
    ('ppgl_sympathetic_multifocal_metastatic_sdhx', ['68Ga-SSA PET/CT (68Ga-DOTATATE/-TOC/-NOC)'])
    """
    tab = table if table is not None else _shipped()
    query = _build_query(
        tab,
        tumour,
        {"genotype": genotype, "site": site, "grade": grade, "question": question},
        ki67_percent,
        calcitonin_pg_ml,
    )
    t = query.tumour
    gone = tab.resolve_unavailable(unavailable)
    base, modifiers, assumed = _select(tab, t, query.values)
    final = {**query.values, **assumed}
    rows = [*modifiers, base]
    chosen = tuple(r.id for r in rows)

    warnings = list(query.warnings)
    for row in rows:
        if row.status == "uncertain":
            warnings.append(
                f"row '{row.id}' ({row.label}) is marked [UNCERTAIN] in {row.section}: "
                f"a configurable default, check before use"
                + (f" ({row.status_note})" if row.status_note else "")
            )
    warnings.extend(_missing_input_warnings(tab, query, chosen, assumed))

    imaging: list[ImagingItem] = []
    anatomical: list[ImagingItem] = []
    for row in rows:
        functional, anat = _imaging(tab, row, gone, warnings)
        imaging.extend(functional)
        anatomical.extend(anat)

    notes: list[str] = []
    for row in rows:
        notes.extend(row.notes)
        for caveat in row.caveats:
            if _clauses_match(caveat.when, final):
                warnings.append(f"{caveat.text} [{', '.join(caveat.sources)}]")

    inputs: dict[str, Any] = {k: final.get(k) for k in CATEGORICAL_INPUTS}
    for name, band_key in _NUMERIC_INPUTS.items():
        inputs[name] = query.numbers[name]
        inputs[band_key] = final.get(band_key)
    logger.debug("pathway %s: rows %s", t.name, chosen)
    return Pathway(
        tumour=t.name,
        tumour_label=t.label,
        inputs=inputs,
        assumed=tuple(sorted(_BAND_TO_INPUT.get(k, k) for k in assumed)),
        rows=tuple(_row_match(r, "base" if r is base else "modifier") for r in rows),
        imaging=tuple(imaging),
        anatomical=tuple(anatomical),
        therapy=_therapy(tab, t, final),
        warnings=tuple(dict.fromkeys(warnings)),
        notes=tuple(dict.fromkeys(notes)),
        unavailable=tuple(sorted(gone)),
        table_version=tab.version,
        table_date=tab.date,
    )


# ----------------------------------------------------------------------------------------
# text output


def _wrap(text: str, indent: str, width: int) -> list[str]:
    return textwrap.wrap(
        text, width=width, initial_indent=indent, subsequent_indent=indent + "  "
    ) or [indent]


def _input_text(p: Pathway) -> str:
    parts = []
    for name in CATEGORICAL_INPUTS:
        if p.inputs.get(name) is not None:
            parts.append(f"{name} {p.inputs[name]}")
    for name, band_key in _NUMERIC_INPUTS.items():
        if p.inputs.get(name) is not None:
            parts.append(f"{name} {p.inputs[name]:g} (band {p.inputs.get(band_key)})")
        elif p.inputs.get(band_key) is not None:
            parts.append(f"{band_key} {p.inputs[band_key]} (assumed)")
    return ", ".join(parts) or "none"


def _imaging_lines(p: Pathway, row: RowMatch, width: int) -> Iterator[str]:
    items = [i for i in p.imaging if i.row == row.id]
    if not items:
        yield "    (no functional imaging)"
    for item in items:
        head = f"{item.line}."
        promoted = f" (listed as line {item.listed_line})" if item.listed_line != item.line else ""
        note = f" — {item.note}" if item.note else ""
        yield from _wrap(f"{head} {item.label}{note}{promoted} [{item.status}]", "    ", width)
        if item.preparation:
            yield from _wrap(f"protocol {item.protocol}: {item.preparation}", "         ", width)
    anat = [i for i in p.anatomical if i.row == row.id]
    if anat:
        yield "    anatomical:"
        for item in anat:
            note = f" — {item.note}" if item.note else ""
            yield from _wrap(f"- {item.label}{note}", "      ", width)


def format_text(pathway: Pathway, *, width: int = 100) -> str:
    """Render a pathway as plain text for a terminal.

    Parameters
    ----------
    pathway : Pathway
    width : int, optional
        Line width, characters.

    Returns
    -------
    str
        Title, inputs, each matched row with its imaging lines, the therapy
        options, notes and warnings (uncertain rows are flagged).
    """
    p = pathway
    out = [
        f"{p.tumour_label} — imaging and therapy pathway "
        f"(rule table {p.table_version}, {p.table_date})",
        f"inputs: {_input_text(p)}",
    ]
    if p.unavailable:
        out.append(f"unavailable: {', '.join(p.unavailable)}")
    for row in p.rows:
        flag = "  ** UNCERTAIN **" if row.status == "uncertain" else ""
        out.append("")
        out.extend(
            _wrap(
                f"[{row.role}] {row.label} — {row.status}{flag}; {row.section}; "
                f"sources: {', '.join(row.sources)}",
                "",
                width,
            )
        )
        out.extend(_imaging_lines(p, row, width))
    out.append("")
    out.append("therapy options (listing order of clinical.md §5, not a treatment algorithm):")
    for th in p.therapy:
        extra = f" — {th.conditions}" if th.conditions else ""
        historic = " [historic]" if th.historic else ""
        out.extend(
            _wrap(
                f"{th.rank}. {th.label}{historic}{extra} [{th.status}; {th.section}; "
                f"{', '.join(th.sources)}]",
                "  ",
                width,
            )
        )
    if p.notes:
        out.append("")
        out.append("notes:")
        for n in p.notes:
            out.extend(_wrap(f"- {n}", "  ", width))
    if p.warnings:
        out.append("")
        out.append("warnings:")
        for w in p.warnings:
            out.extend(_wrap(f"! {w}", "  ", width))
    return "\n".join(out)
