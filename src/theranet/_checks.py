"""Argument checks shared by modules that raise their own typed error.

Each check takes the error class to raise (a :class:`~theranet.errors.TheranetError`
subclass), so the message names the module's field and fix in the project's
usual form.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from os import PathLike
from pathlib import Path
from typing import Any

__all__ = [
    "SOURCED_KEYS",
    "finite_number",
    "lookup_key",
    "non_negative",
    "positive",
    "read_table_text",
    "sourced_value",
]


def finite_number(error: type, name: str, value: Any) -> float:
    """``value`` as a finite float (booleans refused), else ``error``."""
    if isinstance(value, bool):
        raise error(name, "must be a number", value)
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise error(name, "must be a number", value) from None
    if not math.isfinite(number):
        raise error(name, "must be finite", value, "give a finite number")
    return number


def positive(error: type, name: str, value: Any, unit: str) -> float:
    """A finite number > 0 (``unit`` is named in the fix)."""
    number = finite_number(error, name, value)
    if number <= 0.0:
        raise error(name, "must be > 0", value, f"give a positive value in {unit}")
    return number


def non_negative(error: type, name: str, value: Any, unit: str) -> float:
    """A finite number >= 0 (``unit`` is named in the fix)."""
    number = finite_number(error, name, value)
    if number < 0.0:
        raise error(name, "must be >= 0", value, f"give a non-negative value in {unit}")
    return number


def lookup_key(name: str) -> str:
    """Lookup key of a name: lower case, spaces and hyphens as underscores."""
    return "_".join(str(name).strip().lower().replace("-", " ").replace("_", " ").split())


#: Keys of a sourced value in the project's TOML tables.
SOURCED_KEYS = frozenset({"value", "unit", "source", "section", "status", "note"})


def sourced_value(
    error: type,
    raw: Any,
    where: str,
    source: str,
    *,
    factors: Mapping[str, float],
    internal_unit: str,
    integer: bool = False,
):
    """A positive number with its provenance from a TOML table entry.

    ``raw`` is a table with ``value``, ``unit``, ``source``, ``section``,
    ``status`` (one of :data:`theranet.radiopharmaceuticals.STATUSES`) and an
    optional ``note``. ``factors`` maps each allowed unit to the factor into
    ``internal_unit``; ``integer`` asks for a whole number >= 1 (no unit
    conversion). Returns a :class:`~theranet.radiopharmaceuticals.Sourced`;
    anything else raises ``error`` naming ``where`` and the key.
    """
    from theranet.radiopharmaceuticals import STATUSES, Sourced

    if not isinstance(raw, Mapping):
        raise error(
            where, "must be a table with value, unit, source, section and status", raw, None, source
        )
    unknown = sorted(set(raw) - SOURCED_KEYS)
    if unknown:
        raise error(where, "unknown key(s)", unknown, f"allowed keys are {sorted(SOURCED_KEYS)}",
                    source)  # fmt: skip
    for k in ("value", "unit", "source", "section", "status"):
        if k not in raw:
            raise error(
                f"{where}.{k}",
                "missing",
                fix=f"add '{k}' (every value needs value, unit, source, section and status)",
                source=source,
            )
        if k != "value" and (not isinstance(raw[k], str) or not raw[k].strip()):
            raise error(f"{where}.{k}", "must be a non-empty string", raw[k], source=source)
    if raw["status"] not in STATUSES:
        raise error(f"{where}.status", "not an allowed status", raw["status"],
                    f"use one of {', '.join(STATUSES)}", source)  # fmt: skip
    note = raw.get("note", "")
    if not isinstance(note, str):
        raise error(f"{where}.note", "must be a string", note, source=source)
    unit = raw["unit"]
    if unit not in factors:
        raise error(f"{where}.unit", "not allowed here", unit,
                    f"use one of {', '.join(factors)}", source)  # fmt: skip
    value = raw["value"]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise error(f"{where}.value", "must be a number", value, source=source)
    if integer:
        if not isinstance(value, int) or value < 1:
            raise error(f"{where}.value", "must be an integer >= 1", value, source=source)
        number: float | int = int(value)
    else:
        number = float(value) * factors[unit]
        if not (math.isfinite(number) and number > 0.0):
            raise error(f"{where}.value", "must be finite and > 0", value, source=source)
    return Sourced(number, internal_unit, raw["source"], raw["section"], raw["status"], note)


def read_table_text(error: type, path: str | PathLike[str]) -> tuple[str, str]:
    """Text of a user's TOML table and its name for messages, else ``error``."""
    p = Path(path)
    try:
        return p.read_text(encoding="utf-8"), str(p)
    except OSError as exc:
        raise error(
            "path", f"cannot be read: {exc.strerror or exc}", str(p), "give an existing TOML file"
        ) from None
