"""Argument checks shared by modules that raise their own typed error.

Each check takes the error class to raise (a :class:`~theranet.errors.TheranetError`
subclass), so the message names the module's field and fix in the project's
usual form.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["finite_number", "lookup_key", "non_negative", "positive"]


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
