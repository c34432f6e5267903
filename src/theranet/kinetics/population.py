"""Population effective half-lives for single-time-point dosimetry.

The values live in ``theranet/data/population_kinetics.toml``; each carries its
unit, source, section and verification status (``"verified"``,
``"unconfirmed"``, ``"uncertain"``, as in :mod:`theranet.radiopharmaceuticals`).
Effective half-lives include physical decay (for activities that are not
decay-corrected).

Across patients effective half-lives are log-normally distributed (Hou et al.,
J Nucl Med, PMC8882881). An entry gives either the arithmetic mean and SD
(``"mean_sd"``; converted by moment matching: ``s^2 = ln(1 + (SD/mean)^2)``,
``median = mean / sqrt(1 + (SD/mean)^2)``) or the 5th and 95th percentiles of
the log-normal (``"p5_p95"``: ``median = sqrt(p5 p95)``,
``s = ln(p95/p5) / (2 z_0.95)``, ``z_0.95 = 1.6448536``).

Examples
--------
>>> from theranet.kinetics.population import population_half_life
>>> k = population_half_life("Lutathera", "kidney")
>>> k.mean_h, k.sd_h, k.status
(56.0, 13.0, 'verified')
"""

from __future__ import annotations

import logging
import math
import tomllib
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from os import PathLike
from pathlib import Path
from typing import Any

from theranet.kinetics.models import KineticsError
from theranet.radiopharmaceuticals import STATUSES, normalise_name

__all__ = [
    "PopulationHalfLife",
    "load_population_table",
    "population_half_life",
]

logger = logging.getLogger(__name__)

_DATA_FILE = "data/population_kinetics.toml"
_Z95 = 1.6448536269514722  # standard normal 95th percentile
_UNITS_TO_H = {"h": 1.0, "d": 24.0}
_STATISTICS = ("mean_sd", "p5_p95")


@dataclass(frozen=True)
class PopulationHalfLife:
    """A population effective half-life distribution (log-normal).

    Attributes
    ----------
    tracer : str
        Radiopharmaceutical name (``"177Lu-DOTATATE"``).
    nuclide : str
        Canonical nuclide name of the tracer.
    organ : str
        Region name; ``aliases`` are other accepted spellings.
    statistic : {"mean_sd", "p5_p95"}
        What ``values_h`` holds.
    values_h : tuple of float
        ``(mean, SD)`` or ``(p5, p95)``, h.
    source, section, status, note : str
        Provenance; ``status`` in ``("verified", "unconfirmed", "uncertain")``.
    aliases : tuple of str
    """

    tracer: str
    nuclide: str
    organ: str
    statistic: str
    values_h: tuple[float, float]
    source: str
    section: str
    status: str
    note: str = ""
    aliases: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise KineticsError(
                "status", "not an allowed status", self.status, f"use one of {STATUSES}"
            )
        if self.statistic not in _STATISTICS:
            raise KineticsError(
                "statistic", "unknown statistic", self.statistic, f"use one of {_STATISTICS}"
            )
        a, b = self.values_h
        if not (math.isfinite(a) and math.isfinite(b) and a > 0 and b > 0):
            raise KineticsError(
                "t_eff", "values must be finite and > 0", self.values_h, "fix the table entry"
            )
        if self.statistic == "p5_p95" and not a < b:
            raise KineticsError("t_eff", "p5 must be below p95", self.values_h, "swap them")

    @property
    def log_sigma(self) -> float:
        """SD ``s`` of ``ln T_eff`` (and of ``ln lambda_eff``)."""
        a, b = self.values_h
        if self.statistic == "mean_sd":
            return math.sqrt(math.log1p((b / a) ** 2))
        return math.log(b / a) / (2.0 * _Z95)

    @property
    def median_h(self) -> float:
        """Median effective half-life, h."""
        a, b = self.values_h
        if self.statistic == "mean_sd":
            return a / math.sqrt(1.0 + (b / a) ** 2)
        return math.sqrt(a * b)

    @property
    def mean_h(self) -> float:
        """Arithmetic mean effective half-life, h."""
        if self.statistic == "mean_sd":
            return self.values_h[0]
        return self.median_h * math.exp(self.log_sigma**2 / 2.0)

    @property
    def sd_h(self) -> float:
        """Standard deviation of the effective half-life, h."""
        if self.statistic == "mean_sd":
            return self.values_h[1]
        return self.mean_h * math.sqrt(math.expm1(self.log_sigma**2))

    @property
    def is_verified(self) -> bool:
        """True when the value was checked against its source text."""
        return self.status == "verified"

    def matches(self, tracer: str, organ: str) -> bool:
        """Whether this entry is for ``tracer`` and ``organ`` (case, punctuation ignored)."""
        organs = {normalise_name(x) for x in (self.organ, *self.aliases)}
        return normalise_name(tracer) == normalise_name(self.tracer) and (
            normalise_name(organ) in organs
        )


def _entry(raw: dict[str, Any], where: str) -> PopulationHalfLife:
    try:
        t_eff = raw["t_eff"]
        unit = t_eff["unit"]
        if unit not in _UNITS_TO_H:
            raise KineticsError(
                "t_eff.unit", "unknown unit", unit, f"use one of {tuple(_UNITS_TO_H)}", where
            )
        f = _UNITS_TO_H[unit]
        v = t_eff["value"]
        if not isinstance(v, list) or len(v) != 2:
            raise KineticsError(
                "t_eff.value", "must be a list of two numbers", v, "[mean, sd] or [p5, p95]", where
            )
        return PopulationHalfLife(
            tracer=str(raw["tracer"]),
            nuclide=str(raw["nuclide"]),
            organ=str(raw["organ"]),
            statistic=str(raw["statistic"]),
            values_h=(float(v[0]) * f, float(v[1]) * f),
            source=str(t_eff["source"]),
            section=str(t_eff["section"]),
            status=str(t_eff["status"]),
            note=str(t_eff.get("note", "")),
            aliases=tuple(str(x) for x in raw.get("aliases", ())),
        )
    except KeyError as exc:
        raise KineticsError(
            str(exc.args[0]),
            "missing key in a population half-life entry",
            None,
            "give tracer, nuclide, organ, statistic and t_eff {value, unit, source, section, "
            "status}",
            where,
        ) from None


def load_population_table(
    path: str | PathLike[str] | None = None,
) -> tuple[PopulationHalfLife, ...]:
    """Read a population half-life table.

    Parameters
    ----------
    path : str or path-like, optional
        A TOML file in the layout of the shipped table; default the shipped
        ``theranet/data/population_kinetics.toml``.

    Returns
    -------
    tuple of PopulationHalfLife

    Raises
    ------
    KineticsError
        A malformed entry (missing key, bad unit, status or values).
    """
    if path is None:
        return _shipped()
    p = Path(path)
    with p.open("rb") as fh:
        data = tomllib.load(fh)
    return tuple(_entry(e, p.name) for e in data.get("half_life", []))


@lru_cache(maxsize=1)
def _shipped() -> tuple[PopulationHalfLife, ...]:
    text = resources.files("theranet").joinpath(_DATA_FILE).read_text(encoding="utf-8")
    data = tomllib.loads(text)
    entries = tuple(_entry(e, _DATA_FILE) for e in data.get("half_life", []))
    logger.debug("loaded %d population half-lives (table %s)", len(entries), data.get("version"))
    return entries


def _canonical_tracer(tracer: str) -> str:
    from theranet import radiopharmaceuticals as rp

    try:
        return rp.get(tracer).name
    except (rp.UnknownTracerError, TypeError):
        return tracer


def population_half_life(
    tracer: str,
    organ: str,
    *,
    table: tuple[PopulationHalfLife, ...] | None = None,
) -> PopulationHalfLife:
    """Look up the population effective half-life of a tracer in an organ.

    Parameters
    ----------
    tracer : str
        Radiopharmaceutical name or alias (``"177Lu-DOTATATE"``, ``"Lutathera"``).
    organ : str
        Region (``"kidneys"``, ``"kidney"``, ``"tumour"``, ``"spleen"``...).
    table : tuple of PopulationHalfLife, optional
        Default: the shipped table.

    Returns
    -------
    PopulationHalfLife

    Raises
    ------
    KineticsError
        No entry for this tracer and organ (the message lists those available).
    """
    entries = _shipped() if table is None else table
    name = _canonical_tracer(tracer)
    for e in entries:
        if e.matches(name, organ):
            if not e.is_verified:
                logger.warning(
                    "population half-life %s/%s is %s (%s): verify before clinical use",
                    e.tracer,
                    e.organ,
                    e.status,
                    e.source,
                )
            return e
    known = ", ".join(f"{e.tracer}/{e.organ}" for e in entries)
    raise KineticsError(
        "tracer/organ",
        "no population effective half-life",
        f"{tracer}/{organ}",
        f"use one of {known}, or give the half-life explicitly (t_pop_h)",
    )
