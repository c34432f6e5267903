"""Organ-level MIRD dosimetry with user-supplied S-value tables, and the sphere model.

MIRD schema (clinical.md §6.1)::

    D_T [Gy] = sum_S  TIA_S [MBq h] * S(T <- S) [mGy/(MBq s)] * 3600 [s/h] / 1000 [mGy/Gy]

ICRP/OLINDA/MIRDcalc S-value tables are not shipped (data-sources.md); users who
hold them load them from a CSV file in the layout below.

S-value table CSV layout
------------------------
UTF-8 text. Lines starting with ``#`` before the column header are header
comments; ``# key: value`` lines set metadata (keys case-insensitive). Blank
lines are ignored. Required keys: ``nuclide`` (any spelling accepted by
:func:`theranet.nuclides.parse_nuclide`) and ``phantom`` (free text, e.g.
``ICRP-89 adult male``). Other keys (``source``, ``licence``...) are kept in
:attr:`STable.metadata`.

Then one header row of comma-separated column names and one row per
(target, source) pair:

==========================  ========  ==============================================
column                      required  meaning
==========================  ========  ==============================================
``target``                  yes       target region name
``source``                  yes       source region name
``s_<unit>``                one of    total S(T <- S)
``s_np_<unit>``             (*)       non-penetrating (electron/beta) part
``s_p_<unit>``              (*)       penetrating (photon) part
``phantom_target_mass_g``   no        phantom mass of the target region, g
``phantom_source_mass_g``   no        phantom mass of the source region, g
==========================  ========  ==============================================

(*) each row needs the total, or both parts (the total is then their sum), or
all three (they must agree to 1e-6 relative). ``<unit>`` is the S-value unit,
written in the column name and the same for all S columns:

* ``mgy_per_mbq_s`` -- mGy/(MBq s) (theranet's internal unit),
* ``gy_per_mbq_s`` -- Gy/(MBq s),
* ``gy_per_bq_s`` -- Gy/(Bq s) (MIRD pamphlets),
* ``msv_per_mbq_s`` is refused (an equivalent dose, not an absorbed dose).

Values are converted to mGy/(MBq s) on reading. A cell may be empty only in the
optional columns. Example (values invented)::

    # nuclide: Lu-177
    # phantom: example phantom
    target,source,s_np_mgy_per_mbq_s,s_p_mgy_per_mbq_s,phantom_target_mass_g
    kidneys,kidneys,2.0e-4,1.0e-5,299
    liver,kidneys,,,1910

(the second row would be refused: a row needs S values.)

Mass scaling (OLINDA convention, clinical.md §6.7)
--------------------------------------------------
Only self-dose entries (``target == source``) are scaled to a patient mass
``m_pt``: ``S_np * (m_ph/m_pt) + S_p * (m_ph/m_pt)**e`` with ``e = 2/3`` by default
(``scaling_exponent_penetrating``; the exponent is [UNCERTAIN] in the
specification). Without the split the total is scaled as non-penetrating (exact
for pure beta emitters, an overestimate of the photon part's change) and a
warning is issued. Cross-dose entries are not scaled.
"""

from __future__ import annotations

import csv
import logging
import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from theranet.errors import TheranetError, UnitError
from theranet.nuclides import parse_nuclide
from theranet.physics.kernels import sphere_s_value

__all__ = [
    "SECONDS_PER_HOUR",
    "S_UNITS_TO_MGY_PER_MBQ_S",
    "DosimetryInputError",
    "OrganDose",
    "SEntry",
    "STable",
    "STableError",
    "load_s_table",
    "mird_dose",
    "sphere_dose",
    "tia_s_to_gy",
]

logger = logging.getLogger(__name__)

SECONDS_PER_HOUR = 3600.0

#: Factors converting an S-value unit (as written in a column name) to mGy/(MBq s).
S_UNITS_TO_MGY_PER_MBQ_S: dict[str, float] = {
    "mgy_per_mbq_s": 1.0,
    "gy_per_mbq_s": 1.0e3,
    "gy_per_bq_s": 1.0e9,
}

_MASS_COLUMNS = ("phantom_target_mass_g", "phantom_source_mass_g")


class DosimetryInputError(TheranetError, ValueError):
    """An argument of a dosimetry calculation is missing, out of range or inconsistent."""


class STableError(DosimetryInputError):
    """A row or cell of an S-value table file is unusable."""


def tia_s_to_gy(tia_mbq_h: float, s_mgy_per_mbq_s: float) -> float:
    """Absorbed dose in Gy from a TIA in MBq h and an S-value in mGy/(MBq s)."""
    return tia_mbq_h * SECONDS_PER_HOUR * s_mgy_per_mbq_s / 1000.0


@dataclass(frozen=True)
class SEntry:
    """One S(target <- source) entry, in mGy/(MBq s).

    Attributes
    ----------
    s_mgy_per_mbq_s : float
        Total S-value.
    s_np_mgy_per_mbq_s, s_p_mgy_per_mbq_s : float or None
        Non-penetrating and penetrating parts, when the table splits them.
    phantom_target_mass_g, phantom_source_mass_g : float or None
        Phantom region masses, g.
    """

    s_mgy_per_mbq_s: float
    s_np_mgy_per_mbq_s: float | None = None
    s_p_mgy_per_mbq_s: float | None = None
    phantom_target_mass_g: float | None = None
    phantom_source_mass_g: float | None = None

    @property
    def has_split(self) -> bool:
        return self.s_np_mgy_per_mbq_s is not None and self.s_p_mgy_per_mbq_s is not None


@dataclass(frozen=True)
class STable:
    """An S-value table: ``entries[(target, source)]`` in mGy/(MBq s).

    Attributes
    ----------
    nuclide : str
        Canonical nuclide name (``"Lu-177"``).
    phantom : str
        Phantom the S-values belong to.
    entries : dict
        ``{(target, source): SEntry}``.
    metadata : dict
        All ``# key: value`` header lines (lower-case keys).
    path : str or None
        File the table was read from.
    """

    nuclide: str
    phantom: str
    entries: dict[tuple[str, str], SEntry]
    metadata: dict[str, str] = field(default_factory=dict)
    path: str | None = None

    @property
    def targets(self) -> tuple[str, ...]:
        """Target names in file order."""
        return tuple(dict.fromkeys(t for t, _ in self.entries))

    @property
    def sources(self) -> tuple[str, ...]:
        """Source names in file order."""
        return tuple(dict.fromkeys(s for _, s in self.entries))

    def entry(self, target: str, source: str) -> SEntry:
        """The entry for (target, source); :class:`KeyError` if absent."""
        return self.entries[(target, source)]


def _parse_unit(column: str, prefix: str, line_no: int, src: str) -> str:
    unit = column[len(prefix) :]
    if unit not in S_UNITS_TO_MGY_PER_MBQ_S:
        raise UnitError(
            f"line {line_no}, column {column!r}",
            "S-value column without a known unit suffix",
            value=column,
            fix=f"name it {prefix}<unit> with <unit> one of {sorted(S_UNITS_TO_MGY_PER_MBQ_S)}",
            source=src,
        )
    return unit


def _cell_float(
    row: dict[str, str], column: str, line_no: int, src: str, *, positive: bool = False
) -> float | None:
    text = (row.get(column) or "").strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise STableError(
            f"line {line_no}, column {column!r}", "not a number", value=text, source=src
        ) from None
    if not math.isfinite(value) or value < 0 or (positive and value == 0):
        need = "a positive" if positive else "a non-negative"
        raise STableError(
            f"line {line_no}, column {column!r}",
            f"must be {need} finite number",
            value=text,
            source=src,
        )
    return value


def load_s_table(path: str | Path) -> STable:
    """Read an S-value table in the theranet CSV layout (see the module docstring).

    Parameters
    ----------
    path : str or Path
        The CSV file.

    Returns
    -------
    STable
        S-values converted to mGy/(MBq s).

    Raises
    ------
    STableError
        Missing header keys or columns, bad numbers, negative values, duplicate
        pairs, inconsistent total/split; the message names the line and column.
    UnitError
        An S column without a known unit suffix, or S columns in different units.
    """
    path = Path(path)
    src = path.name
    metadata: dict[str, str] = {}
    lines = path.read_text(encoding="utf-8-sig").splitlines()
    header_idx = None
    for i, line in enumerate(lines):
        stripped = line.strip()
        if not stripped:
            continue
        if stripped.startswith("#"):
            body = stripped.lstrip("#").strip()
            if ":" in body:
                key, _, value = body.partition(":")
                metadata[key.strip().lower()] = value.strip()
            continue
        header_idx = i
        break
    for key in ("nuclide", "phantom"):
        if not metadata.get(key):
            raise STableError(
                f"header key {key!r}",
                "missing",
                fix=f"add a line '# {key}: ...' before the column header",
                source=src,
            )
    nuclide = parse_nuclide(metadata["nuclide"], field="header key 'nuclide'")
    if header_idx is None:
        raise STableError("column header", "missing (no data rows)", source=src)

    header_line = header_idx + 1
    body_lines = [(n, line) for n, line in enumerate(lines[header_idx:], start=header_line)]
    body_lines = [(n, ln) for n, ln in body_lines if ln.strip() and not ln.lstrip().startswith("#")]
    reader = csv.reader([ln for _, ln in body_lines])
    rows = list(reader)
    columns = [c.strip().lower() for c in rows[0]]
    for req in ("target", "source"):
        if req not in columns:
            raise STableError(
                f"line {header_line}, column {req!r}", "required column missing", source=src
            )

    s_cols: dict[str, str] = {}  # kind -> column name
    units: set[str] = set()
    for col in columns:
        if col in ("target", "source", *_MASS_COLUMNS):
            continue
        for kind, prefix in (("np", "s_np_"), ("p", "s_p_"), ("total", "s_")):
            if col.startswith(prefix) or col == prefix.rstrip("_"):
                units.add(_parse_unit(col, prefix, header_line, src))
                s_cols[kind] = col
                break
        else:
            logger.info("%s: ignoring unknown column %r", src, col)
    if len(units) > 1:
        raise UnitError(
            f"line {header_line}, S columns",
            "S columns in different units",
            value=sorted(units),
            fix="use one unit for all S columns",
            source=src,
        )
    if not ("total" in s_cols or ("np" in s_cols and "p" in s_cols)):
        raise STableError(
            f"line {header_line}, S columns",
            "need s_<unit>, or both s_np_<unit> and s_p_<unit>",
            value=columns,
            source=src,
        )
    factor = S_UNITS_TO_MGY_PER_MBQ_S[units.pop()]

    entries: dict[tuple[str, str], SEntry] = {}
    for (line_no, _), cells in zip(body_lines[1:], rows[1:], strict=True):
        if len(cells) != len(columns):
            raise STableError(
                f"line {line_no}",
                f"expected {len(columns)} cells, found {len(cells)}",
                source=src,
            )
        row = dict(zip(columns, cells, strict=True))
        target, source = row["target"].strip(), row["source"].strip()
        for col, name in (("target", target), ("source", source)):
            if not name:
                raise STableError(f"line {line_no}, column {col!r}", "empty", source=src)
        vals = {k: _cell_float(row, c, line_no, src) for k, c in s_cols.items()}
        total, np_, p_ = vals.get("total"), vals.get("np"), vals.get("p")
        if (np_ is None) != (p_ is None):
            missing = s_cols.get("p" if p_ is None else "np", "s_np/s_p")
            raise STableError(
                f"line {line_no}, column {missing!r}",
                "split S given only in part; give both parts or neither",
                source=src,
            )
        if np_ is not None and p_ is not None:
            if total is not None and not math.isclose(total, np_ + p_, rel_tol=1e-6, abs_tol=0):
                raise STableError(
                    f"line {line_no}, column {s_cols['total']!r}",
                    "total differs from s_np + s_p",
                    value=(total, np_ + p_),
                    source=src,
                )
            total = np_ + p_
        if total is None:
            col = s_cols.get("total", s_cols.get("np"))
            raise STableError(f"line {line_no}, column {col!r}", "no S value", source=src)
        m_t = _cell_float(row, "phantom_target_mass_g", line_no, src, positive=True)
        m_s = _cell_float(row, "phantom_source_mass_g", line_no, src, positive=True)
        if target == source and m_t is not None and m_s is not None and m_t != m_s:
            raise STableError(
                f"line {line_no}, column 'phantom_source_mass_g'",
                "self-dose row with different target and source masses",
                value=(m_t, m_s),
                source=src,
            )
        key = (target, source)
        if key in entries:
            raise STableError(
                f"line {line_no}", "duplicate (target, source) pair", value=key, source=src
            )
        entries[key] = SEntry(
            s_mgy_per_mbq_s=total * factor,
            s_np_mgy_per_mbq_s=None if np_ is None else np_ * factor,
            s_p_mgy_per_mbq_s=None if p_ is None else p_ * factor,
            phantom_target_mass_g=m_t,
            phantom_source_mass_g=m_s,
        )
    if not entries:
        raise STableError("rows", "table has no data rows", source=src)
    return STable(
        nuclide=nuclide,
        phantom=metadata["phantom"],
        entries=entries,
        metadata=metadata,
        path=str(path),
    )


@dataclass(frozen=True)
class OrganDose:
    """Mean absorbed dose to one target region.

    Attributes
    ----------
    target : str
        Target region.
    dose_gy : float
        Total mean absorbed dose, Gy.
    contributions_gy : dict
        ``{source: dose_gy}`` per source region.
    s_self_mgy_per_mbq_s : float or None
        Self S-value used (after mass scaling), mGy/(MBq s); ``None`` if the target
        is not a source.
    mass_g : float or None
        Patient mass the self S-value was scaled to; ``None`` if not scaled.
    notes : tuple of str
        Choices and assumptions made (mass scaling, warnings).
    """

    target: str
    dose_gy: float
    contributions_gy: dict[str, float]
    s_self_mgy_per_mbq_s: float | None = None
    mass_g: float | None = None
    notes: tuple[str, ...] = ()


def _scaled_self_s(
    entry: SEntry, target: str, mass_g: float, exponent: float, notes: list[str]
) -> float:
    m_ph = entry.phantom_target_mass_g or entry.phantom_source_mass_g
    if m_ph is None:
        raise DosimetryInputError(
            f"masses_g[{target!r}]",
            "patient mass given but the table has no phantom mass for this self-dose row",
            fix="add phantom_target_mass_g to the table, or omit the mass",
        )
    ratio = m_ph / mass_g
    if entry.has_split:
        assert entry.s_np_mgy_per_mbq_s is not None and entry.s_p_mgy_per_mbq_s is not None
        notes.append(
            f"self S scaled from {m_ph:g} g to {mass_g:g} g: non-penetrating x (m_ph/m_pt), "
            f"penetrating x (m_ph/m_pt)^{exponent:g}"
        )
        return entry.s_np_mgy_per_mbq_s * ratio + entry.s_p_mgy_per_mbq_s * ratio**exponent
    msg = (
        f"S({target} <- {target}): table has no s_np/s_p split; total scaled as "
        f"non-penetrating x (m_ph/m_pt) from {m_ph:g} g to {mass_g:g} g"
    )
    warnings.warn(msg, UserWarning, stacklevel=3)
    notes.append(msg)
    return entry.s_mgy_per_mbq_s * ratio


def mird_dose(
    tia_mbq_h: Mapping[str, float],
    s_table: STable,
    *,
    masses_g: Mapping[str, float] | None = None,
    scaling_exponent_penetrating: float = 2.0 / 3.0,
    targets: list[str] | tuple[str, ...] | None = None,
    missing_pairs: str = "error",
) -> dict[str, OrganDose]:
    """Mean organ doses by the MIRD schema, ``D_T = sum_S TIA_S S(T <- S)``.

    Parameters
    ----------
    tia_mbq_h : Mapping[str, float]
        Time-integrated activity per source region, MBq h (non-negative).
    s_table : STable
        S-values (see :func:`load_s_table`).
    masses_g : Mapping[str, float], optional
        Patient target masses, g. Self-dose S-values of these targets are scaled
        from the phantom mass (see the module docstring); cross-dose is not.
    scaling_exponent_penetrating : float, default 2/3
        Exponent ``e`` of ``(m_ph/m_pt)**e`` for the penetrating part [UNCERTAIN].
    targets : sequence of str, optional
        Targets to compute; default all targets in the table.
    missing_pairs : {"error", "zero"}
        What a (target, source) pair absent from the table means: an error
        (default), or no contribution (for sparse tables, recorded in ``notes``).

    Returns
    -------
    dict[str, OrganDose]
        Keyed by target.

    Raises
    ------
    DosimetryInputError
        Negative/non-finite TIA or mass, a source absent from the table, a mass
        of a target absent from the table, a missing pair (``missing_pairs="error"``),
        or a mass without a phantom mass.
    """
    if missing_pairs not in ("error", "zero"):
        raise DosimetryInputError("missing_pairs", "must be 'error' or 'zero'", missing_pairs)
    for name, value in tia_mbq_h.items():
        if not (math.isfinite(value) and value >= 0):
            raise DosimetryInputError(f"tia_mbq_h[{name!r}]", "must be finite and >= 0", value)
        if name not in s_table.sources:
            raise DosimetryInputError(
                f"tia_mbq_h[{name!r}]",
                "source not in the S table",
                fix=f"use one of {list(s_table.sources)}",
                source=s_table.path,
            )
    masses_g = dict(masses_g or {})
    for name, value in masses_g.items():
        if not (math.isfinite(value) and value > 0):
            raise DosimetryInputError(f"masses_g[{name!r}]", "must be a positive mass in g", value)
        if name not in s_table.targets:
            raise DosimetryInputError(
                f"masses_g[{name!r}]",
                "target not in the S table",
                fix=f"use one of {list(s_table.targets)}",
                source=s_table.path,
            )
    if not (math.isfinite(scaling_exponent_penetrating) and scaling_exponent_penetrating > 0):
        raise DosimetryInputError(
            "scaling_exponent_penetrating", "must be positive", scaling_exponent_penetrating
        )
    wanted = tuple(targets) if targets is not None else s_table.targets
    out: dict[str, OrganDose] = {}
    for target in wanted:
        notes: list[str] = []
        contributions: dict[str, float] = {}
        s_self = None
        for source, tia in tia_mbq_h.items():
            key = (target, source)
            if key not in s_table.entries:
                if missing_pairs == "error":
                    raise DosimetryInputError(
                        f"S({target} <- {source})",
                        "pair not in the S table",
                        fix="add the row, or pass missing_pairs='zero'",
                        source=s_table.path,
                    )
                notes.append(f"S({target} <- {source}) absent: no contribution")
                continue
            entry = s_table.entries[key]
            s = entry.s_mgy_per_mbq_s
            if source == target:
                if target in masses_g:
                    s = _scaled_self_s(
                        entry, target, masses_g[target], scaling_exponent_penetrating, notes
                    )
                s_self = s
            contributions[source] = tia_s_to_gy(tia, s)
        if target in masses_g and target not in tia_mbq_h:
            notes.append("patient mass given but target is not a source: nothing scaled")
        out[target] = OrganDose(
            target=target,
            dose_gy=math.fsum(contributions.values()),
            contributions_gy=contributions,
            s_self_mgy_per_mbq_s=s_self,
            mass_g=masses_g.get(target) if target in tia_mbq_h else None,
            notes=tuple(notes),
        )
    return out


def sphere_dose(
    tia_mbq_h: float,
    mass_g: float,
    nuclide: str,
    *,
    material: str = "soft_tissue",
    emissions: list[str] | tuple[str, ...] | str | None = None,
) -> OrganDose:
    """Self-dose of a uniformly active sphere (tumour sphere model, clinical.md §6.7).

    ``D = TIA * S_sphere(m)`` with ``S_sphere`` from
    :func:`theranet.physics.kernels.sphere_s_value` (kernel-based, mGy/(MBq s)).
    Cross-dose from nearby organs is not included.

    Parameters
    ----------
    tia_mbq_h : float
        TIA of the sphere, MBq h.
    mass_g : float
        Sphere mass, g.
    nuclide : str
        Radionuclide.
    material : str, default "soft_tissue"
        Material (sets the density, hence the radius).
    emissions : str or sequence of str, optional
        Emission classes to include (default all, see ``sphere_s_value``).

    Returns
    -------
    OrganDose
        With ``target="sphere"``.
    """
    if not (math.isfinite(tia_mbq_h) and tia_mbq_h >= 0):
        raise DosimetryInputError("tia_mbq_h", "must be finite and >= 0", tia_mbq_h)
    if not (math.isfinite(mass_g) and mass_g > 0):
        raise DosimetryInputError("mass_g", "must be a positive mass in g", mass_g)
    s = sphere_s_value(nuclide, mass_g, material=material, emissions=emissions)
    dose = tia_s_to_gy(tia_mbq_h, s)
    return OrganDose(
        target="sphere",
        dose_gy=dose,
        contributions_gy={"sphere": dose},
        s_self_mgy_per_mbq_s=s,
        mass_g=mass_g,
        notes=(f"sphere model, {material}, emissions={emissions or 'all'}; no cross-dose",),
    )
