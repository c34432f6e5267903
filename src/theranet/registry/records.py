"""What the registry returns (:class:`CycleRecord`, :class:`RegionRecord`) and how it
checks what it is given.

The checks run before anything is written, so a refused cycle leaves the
registry untouched; each :class:`RegistryError` names the argument (with the
row index for regions: ``regions[2].mass_g``), the value and the fix.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from theranet.errors import TheranetError
from theranet.registry.models import REGION_KINDS

__all__ = ["CycleRecord", "RegionRecord", "RegistryError"]

_PSEUDONYM = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")
_MAX_NAME = 128


class RegistryError(TheranetError, ValueError):
    """The registry refuses an input, or cannot find what was asked for."""


@dataclass(frozen=True)
class RegionRecord:
    """The dosimetry of one region in one cycle, as recorded.

    Attributes mirror :class:`theranet.pipeline.RegionDose` (units in the names);
    ``tia_sd_mbq_h`` and ``dose_sd_gy`` are ``None`` where unknown, ``bed_gy``
    and ``eqd2_gy`` until radiobiology sets them.
    """

    region: str
    kind: str
    volume_ml: float
    mass_g: float
    tia_mbq_h: float
    tia_sd_mbq_h: float | None
    mean_dose_gy: float
    dose_sd_gy: float | None
    model: str
    method: str = ""
    bed_gy: float | None = None
    eqd2_gy: float | None = None


@dataclass(frozen=True)
class CycleRecord:
    """One recorded cycle of a patient's treatment.

    Attributes
    ----------
    patient_id : str
        The pseudonymous identifier.
    treatment : int
        Number of the treatment (course) of this patient, from 1.
    number : int
        Cycle number within the treatment, from 1.
    tracer, nuclide : str
        The radiopharmaceutical and its nuclide.
    administered_activity_mbq : float
    administration : datetime
        As given: naive (local time) or timezone-aware.
    times_h : tuple of float
        Imaging time points, hours after the administration, in the order given.
    regions : dict of str to RegionRecord
        In the order given.
    methods : tuple of (str, str)
        Each step of the dosimetry and the choice made.
    software_version : str
        The theranet version that computed the cycle.
    created_at : datetime
        When it was recorded, timezone-aware UTC.
    """

    patient_id: str
    treatment: int
    number: int
    tracer: str
    nuclide: str
    administered_activity_mbq: float
    administration: dt.datetime
    times_h: tuple[float, ...]
    regions: dict[str, RegionRecord] = field(default_factory=dict)
    methods: tuple[tuple[str, str], ...] = ()
    software_version: str = ""
    created_at: dt.datetime | None = None

    def as_dict(self) -> dict[str, Any]:
        """The record as JSON-compatible types (datetimes in ISO 8601)."""
        out = asdict(self)
        out["administration"] = self.administration.isoformat()
        out["created_at"] = None if self.created_at is None else self.created_at.isoformat()
        out["times_h"] = list(self.times_h)
        out["methods"] = [list(m) for m in self.methods]
        out["regions"] = [asdict(r) for r in self.regions.values()]
        return out


def check_patient_id(patient_id: object) -> str:
    """Return ``patient_id`` if it looks pseudonymous, else raise."""
    if not isinstance(patient_id, str) or not _PSEUDONYM.fullmatch(patient_id):
        raise RegistryError(
            "patient_id",
            "is not a pseudonymous identifier (1-64 letters, digits and . _ : -, "
            "starting with a letter or digit)",
            patient_id,
            "use the study's pseudonym such as 'NET-0042'; never a name or a hospital number",
        )
    return patient_id


def check_text(name: str, value: object, *, max_len: int = _MAX_NAME) -> str:
    """A non-empty string without surrounding whitespace."""
    if not isinstance(value, str) or not value or value != value.strip() or len(value) > max_len:
        raise RegistryError(
            name,
            f"must be a non-empty string of at most {max_len} characters without "
            "surrounding whitespace",
            value,
            f"pass {name} as a plain string",
        )
    return value


def check_number(
    name: str, value: object, *, positive: bool = False, optional: bool = False
) -> float | None:
    """A finite float, non-negative (or positive); ``None``/NaN allowed when optional."""
    if value is None and optional:
        return None
    try:
        x = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise RegistryError(name, "is not a number", value, f"pass {name} as a float") from None
    if math.isnan(x) and optional:
        return None
    if not math.isfinite(x) or x < 0 or (positive and x == 0):
        need = "positive" if positive else "zero or positive"
        raise RegistryError(name, f"must be finite and {need}", value, f"check {name}")
    return x


def check_activity(value: object) -> float:
    """The administered activity, MBq, finite and positive."""
    try:
        x = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        x = math.nan
    if not (math.isfinite(x) and x > 0):
        raise RegistryError(
            "administered_activity_mbq",
            "must be a finite, positive activity in MBq",
            value,
            "give the measured administered activity in MBq (7.4 GBq = 7400 MBq)",
        )
    return x


def check_times(times_h: Iterable[object]) -> tuple[float, ...]:
    """Imaging times, hours after the administration, each finite and >= 0."""
    if isinstance(times_h, str | bytes):
        raise RegistryError("times_h", "is a string", times_h, "pass a sequence of floats")
    return tuple(
        check_number(f"times_h[{i}]", t)  # type: ignore[misc]
        for i, t in enumerate(times_h)
    )


def check_methods(methods: Iterable[Any] | Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """``(step, choice)`` pairs of strings (a mapping is taken as its items)."""
    items = methods.items() if isinstance(methods, Mapping) else methods
    out = []
    for i, pair in enumerate(items):
        ok = isinstance(pair, tuple | list) and len(pair) == 2
        if not ok or not all(isinstance(p, str) for p in pair):
            raise RegistryError(
                f"methods[{i}]",
                "is not a (step, choice) pair of strings",
                pair,
                "pass DosimetryResult.methods or a sequence of (step, choice) tuples",
            )
        out.append((pair[0], pair[1]))
    return tuple(out)


def split_administration(when: object) -> tuple[dt.datetime, int | None]:
    """Wall-clock time without tzinfo and the UTC offset in minutes (None if naive)."""
    if not isinstance(when, dt.datetime):
        raise RegistryError(
            "administration",
            "is not a datetime",
            when,
            "pass a datetime.datetime (naive local time or timezone-aware)",
        )
    offset = when.utcoffset()
    if offset is None:
        return when, None
    minutes, rest = divmod(offset, dt.timedelta(minutes=1))
    if rest:
        raise RegistryError(
            "administration",
            "has a UTC offset that is not a whole number of minutes",
            when,
            "round the timezone offset to minutes",
        )
    return when.replace(tzinfo=None), int(minutes)


def join_administration(wall: dt.datetime, offset_min: int | None) -> dt.datetime:
    """Inverse of :func:`split_administration`."""
    if offset_min is None:
        return wall
    return wall.replace(tzinfo=dt.timezone(dt.timedelta(minutes=offset_min)))


_REQUIRED = ("kind", "volume_ml", "mass_g", "tia_mbq_h", "mean_dose_gy", "model")
_OPTIONAL = ("tia_sd_mbq_h", "dose_sd_gy", "bed_gy", "eqd2_gy", "method")
_MISSING = object()


def _get(row: object, key: str) -> object:
    if isinstance(row, Mapping):
        return row.get(key, _MISSING)
    return getattr(row, key, _MISSING)


def check_regions(regions: Iterable[Any] | Mapping[str, Any]) -> list[RegionRecord]:
    """Validate region rows: mappings or objects with the ``RegionDose`` attributes.

    A mapping of name to row (``DosimetryResult.regions``) is taken as its
    values, the key standing in for a missing ``region``.
    """
    if isinstance(regions, Mapping):
        rows = [(name, row) for name, row in regions.items()]
    else:
        rows = [(_MISSING, row) for row in regions]
    out: list[RegionRecord] = []
    seen: set[str] = set()
    for i, (key, row) in enumerate(rows):
        where = f"regions[{i}]"
        name = _get(row, "region")
        name = key if name is _MISSING else name
        missing = [k for k in _REQUIRED if _get(row, k) is _MISSING]
        if name is _MISSING or missing:
            raise RegistryError(
                where,
                f"lacks {', '.join((['region'] if name is _MISSING else []) + missing)}",
                None,
                "pass pipeline RegionDose objects or mappings with their fields",
            )
        name = check_text(f"{where}.region", name)
        if name in seen:
            raise RegistryError(
                f"{where}.region",
                "is a duplicate region name in this cycle",
                name,
                "give each region of a cycle once, under a unique name",
            )
        seen.add(name)
        kind = _get(row, "kind")
        if kind not in REGION_KINDS:
            raise RegistryError(
                f"{where}.kind", "is not a known region kind", kind, f"use one of {REGION_KINDS}"
            )
        opt = {k: _get(row, k) for k in _OPTIONAL}
        opt = {k: (None if v is _MISSING else v) for k, v in opt.items()}
        model = _get(row, "model")
        method = "" if opt["method"] is None else opt["method"]
        for label, text in (("model", model), ("method", method)):
            if not isinstance(text, str):
                raise RegistryError(f"{where}.{label}", "is not a string", text, "pass a string")
        out.append(
            RegionRecord(
                region=name,
                kind=kind,
                volume_ml=check_number(f"{where}.volume_ml", _get(row, "volume_ml"), positive=True),
                mass_g=check_number(f"{where}.mass_g", _get(row, "mass_g"), positive=True),
                tia_mbq_h=check_number(f"{where}.tia_mbq_h", _get(row, "tia_mbq_h")),
                tia_sd_mbq_h=check_number(
                    f"{where}.tia_sd_mbq_h", opt["tia_sd_mbq_h"], optional=True
                ),
                mean_dose_gy=check_number(f"{where}.mean_dose_gy", _get(row, "mean_dose_gy")),
                dose_sd_gy=check_number(f"{where}.dose_sd_gy", opt["dose_sd_gy"], optional=True),
                model=model,
                method=method,
                bed_gy=check_number(f"{where}.bed_gy", opt["bed_gy"], optional=True),
                eqd2_gy=check_number(f"{where}.eqd2_gy", opt["eqd2_gy"], optional=True),
            )
        )
    return out
