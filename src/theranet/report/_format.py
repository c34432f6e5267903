"""Numbers and tables as the report shows them, shared by the HTML and PDF writers.

Every number goes through :func:`fmt_num` or :func:`fmt_pm`, so both documents
show the same strings; NaN, infinity and None are shown as an em dash.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime

from theranet.report.model import CycleReport

__all__ = [
    "DASH",
    "Table",
    "dose_table",
    "fmt_activity",
    "fmt_datetime",
    "fmt_hours",
    "fmt_num",
    "fmt_pm",
    "fmt_rel_sd_percent",
    "generated_text",
    "header_items",
    "methods_table",
    "registration_table",
    "versions_table",
]

#: What a missing or non-finite number is shown as.
DASH = "\u2014"


def _finite(x: object) -> float | None:
    try:
        v = float(x)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _decimals(x: float, sig: int) -> int:
    """Decimals that show ``x`` with ``sig`` significant figures (may be negative)."""
    rounded = float(f"{x:.{sig - 1}e}")
    return sig - 1 - math.floor(math.log10(abs(rounded)))


def fmt_num(x: object, sig: int = 3) -> str:
    """``x`` with ``sig`` significant figures, without exponent for 1e-3 <= |x| < 1e6.

    Integer digits are never dropped (1234.6 with 3 figures -> ``"1235"``).

    >>> fmt_num(0.012345), fmt_num(12.345), fmt_num(1234.6), fmt_num(float("nan"))
    ('0.0123', '12.3', '1235', '—')
    """
    v = _finite(x)
    if v is None:
        return DASH
    if v == 0:
        return "0"
    mag = math.floor(math.log10(abs(float(f"{v:.{sig - 1}e}"))))
    if mag >= 6 or mag < -3:
        return f"{v:.{sig - 1}e}"
    return f"{v:.{max(0, _decimals(v, sig))}f}"


def fmt_pm(value: object, sd: object) -> str:
    """``"value ± sd"``: SD with 2 significant figures, the value to the same decimal
    place, but with at least 2 and at most 4 significant figures.

    >>> fmt_pm(12.345, 1.234), fmt_pm(0.5, 120.0), fmt_pm(3.0, float("nan"))
    ('12.3 ± 1.2', '0.50 ± 120', '3.00 ± —')
    """
    v, s = _finite(value), _finite(sd)
    if v is None:
        return f"{DASH} ± {fmt_num(s, 2)}" if s is not None else DASH
    if s is None or s <= 0:
        return f"{fmt_num(v, 3)} ± {DASH if s is None else fmt_num(s, 2)}"
    if v == 0:
        dec = max(0, _decimals(s, 2))
    else:
        dec = min(max(_decimals(s, 2), _decimals(v, 2)), _decimals(v, 4))
    if abs(v) >= 1e6 or (abs(v) < 1e-3 and v != 0):
        return f"{fmt_num(v, 3)} ± {fmt_num(s, 2)}"
    return f"{v:.{max(0, dec)}f} ± {fmt_num(s, 2)}"


def fmt_rel_sd_percent(value: object, sd: object) -> str:
    """Relative SD ``100 sd / value`` with 2 significant figures (dash if value <= 0)."""
    v, s = _finite(value), _finite(sd)
    if v is None or s is None or v <= 0:
        return DASH
    return fmt_num(100.0 * s / v, 2)


def fmt_hours(hours: object) -> str:
    """Hours to 0.1 h without trailing zeros: ``4``, ``24``, ``4.5``."""
    v = _finite(hours)
    if v is None:
        return DASH
    text = f"{v:.1f}"
    return text[:-2] if text.endswith(".0") else text


def fmt_datetime(iso: str) -> str:
    """An ISO 8601 date-time as ``YYYY-MM-DD HH:MM`` (with its UTC offset, if any);
    text that is not ISO 8601 is returned unchanged."""
    try:
        when = datetime.fromisoformat(str(iso))
    except ValueError:
        return str(iso)
    text = when.strftime("%Y-%m-%d %H:%M")
    if when.second:
        text = when.strftime("%Y-%m-%d %H:%M:%S")
    if when.utcoffset() is not None:
        text += " " + when.strftime("%z")
    return text


def generated_text(generated: datetime | None = None) -> str:
    """The generation time as shown in the reports (default: now, in UTC)."""
    when = generated if generated is not None else datetime.now(UTC)
    if when.tzinfo is None:
        return when.strftime("%Y-%m-%d %H:%M")
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def fmt_activity(activity_mbq: object) -> str:
    """``"7400 MBq (7.40 GBq)"``."""
    v = _finite(activity_mbq)
    if v is None:
        return DASH
    return f"{fmt_num(v, 4)} MBq ({fmt_num(v / 1000.0, 3)} GBq)"


@dataclass(frozen=True)
class Table:
    """A table of formatted strings.

    Attributes
    ----------
    headers : tuple of str
    numeric : tuple of bool
        Right-align the column (numbers).
    rows : tuple of tuple of str
    """

    headers: tuple[str, ...]
    numeric: tuple[bool, ...]
    rows: tuple[tuple[str, ...], ...]


def header_items(report: CycleReport) -> list[tuple[str, str]]:
    """(label, value) pairs of the report header."""
    times = ", ".join(fmt_hours(t) for t in report.times_h)
    return [
        ("Patient (pseudonym)", str(report.patient)),
        ("Radiopharmaceutical", str(report.tracer)),
        ("Nuclide", str(report.nuclide)),
        ("Administered activity", fmt_activity(report.administered_activity_mbq)),
        ("Injection", fmt_datetime(report.injection)),
        ("Time points (h after injection)", times if times else DASH),
    ]


def dose_table(report: CycleReport) -> Table:
    """The dose table, one row per :class:`~theranet.report.model.DoseRow`."""
    headers = (
        "region",
        "kind",
        "volume (mL)",
        "mass (g)",
        "TIA ± SD (MBq\u00a0h)",
        "mean dose ± SD (Gy)",
        "rel. SD (%)",
        "dose per activity (Gy/GBq)",
        "BED (Gy)",
        "EQD2 (Gy)",
        "model",
        "method",
    )
    numeric = (False, False, True, True, True, True, True, True, True, True, False, False)
    rows = tuple(
        (
            str(r.region),
            str(r.kind),
            fmt_num(r.volume_ml, 3),
            fmt_num(r.mass_g, 3),
            fmt_pm(r.tia_mbq_h, r.tia_sd_mbq_h),
            fmt_pm(r.mean_dose_gy, r.dose_sd_gy),
            fmt_rel_sd_percent(r.mean_dose_gy, r.dose_sd_gy),
            fmt_num(r.dose_per_gbq_gy, 3),
            fmt_num(r.bed_gy, 3),
            fmt_num(r.eqd2_gy, 3),
            str(r.model) or DASH,
            str(r.method) or DASH,
        )
        for r in report.doses
    )
    return Table(headers, numeric, rows)


def extra_tables(report: CycleReport) -> list[tuple[str, Table]]:
    """The report's further tables (already formatted by the caller)."""
    out = []
    for title, headers, rows in report.tables:
        heads = tuple(str(h) for h in headers)
        body = tuple(tuple(str(c) for c in row) for row in rows)
        numeric = tuple(
            bool(body) and all(_looks_numeric(r[i]) for r in body) for i in range(len(heads))
        )
        out.append((str(title), Table(heads, numeric, body)))
    return out


def _looks_numeric(text: str) -> bool:
    try:
        float(text.split()[0].replace(DASH, "nan"))
    except (ValueError, IndexError):
        return False
    return True


def _fixed(values: tuple[float, ...], decimals: int) -> str:
    out = []
    for x in values:
        v = _finite(x)
        out.append(DASH if v is None else f"{v:.{decimals}f}")
    return ", ".join(out)


def registration_table(report: CycleReport) -> Table:
    """Registration quality, one row per time point."""
    headers = (
        "time point",
        "time (h)",
        "method",
        "translation x, y, z (mm)",
        "rotation (deg)",
        "metric before",
        "metric after",
    )
    numeric = (False, True, False, True, True, True, True)
    rows = tuple(
        (
            str(r.time_point),
            fmt_hours(r.hours_after_injection),
            str(r.method) or DASH,
            _fixed(tuple(r.translation_mm), 1),
            _fixed(tuple(r.rotation_deg), 2),
            _fixed((r.metric_before,), 3),
            _fixed((r.metric_after,), 3),
        )
        for r in report.registration
    )
    return Table(headers, numeric, rows)


def methods_table(report: CycleReport) -> Table:
    """The processing steps and the choice made at each."""
    rows = tuple((str(step), str(choice)) for step, choice in report.methods)
    return Table(("step", "choice"), (False, False), rows)


def versions_table(report: CycleReport) -> Table:
    """Software and data versions."""
    rows = tuple((str(k), str(v)) for k, v in report.versions.items())
    return Table(("software / data", "version"), (False, False), rows)
