"""What the ``theranet registry`` commands show: rich renderables built from a registry.

Each function returns something to hand to ``console.print`` and prints
nothing itself; the command-line wiring lives in :mod:`theranet.cli`.

Activities are shown in GBq, as they are prescribed; doses in Gy. The
cumulative dose of a region is the sum of its mean absorbed doses over every
recorded cycle of the patient; its cumulative BED is the sum of the cycles'
BEDs (BED adds over cycles given complete repair between them) and is shown
only when every cycle has one.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Literal

from rich.console import Group
from rich.table import Table
from rich.text import Text

from theranet.registry.records import CycleRecord
from theranet.registry.store import Registry

__all__ = ["cumulative_doses", "export", "list_patients", "show_patient"]

DASH = "\u2014"


def _num(x: float | None, sig: int = 3) -> str:
    """``x`` with ``sig`` significant figures, integer digits kept; dash for None/NaN."""
    if x is None or not math.isfinite(x):
        return DASH
    if x == 0:
        return "0"
    decimals = sig - 1 - math.floor(math.log10(abs(x)))
    return f"{x:.{max(0, decimals)}f}"


def _when(rec: CycleRecord) -> str:
    text = rec.administration.strftime("%Y-%m-%d %H:%M")
    return text + rec.administration.strftime(" %z") if rec.administration.tzinfo else text


def list_patients(registry: Registry) -> Table:
    """One row per patient: treatments, cycles, last administration, total activity.

    Parameters
    ----------
    registry : Registry

    Returns
    -------
    rich.table.Table
    """
    table = Table(title=f"Patients in {registry.url}")
    table.add_column("Patient")
    for name in ("Treatments", "Cycles"):
        table.add_column(name, justify="right")
    table.add_column("Last administration")
    table.add_column("Tracer")
    table.add_column("Total activity (GBq)", justify="right")
    for pid in registry.patients():
        cycles = registry.cycles(pid)
        last = cycles[-1] if cycles else None
        table.add_row(
            pid,
            str(len({c.treatment for c in cycles})),
            str(len(cycles)),
            _when(last) if last else DASH,
            last.tracer if last else DASH,
            _num(sum(c.administered_activity_mbq for c in cycles) / 1000.0),
        )
    return table


def cumulative_doses(cycles: list[CycleRecord]) -> dict[str, dict[str, object]]:
    """Per region: kind, number of cycles, summed dose (Gy) and BED (Gy, None if incomplete).

    Parameters
    ----------
    cycles : list of CycleRecord

    Returns
    -------
    dict of str to dict
        ``{"kind", "cycles", "dose_gy", "bed_gy"}`` per region, in order of
        first appearance.
    """
    out: dict[str, dict[str, object]] = {}
    for rec in cycles:
        for name, row in rec.regions.items():
            acc = out.setdefault(name, {"kind": row.kind, "cycles": 0, "dose_gy": 0.0, "bed": []})
            acc["cycles"] += 1
            acc["dose_gy"] += row.mean_dose_gy
            acc["bed"].append(row.bed_gy)
    for acc in out.values():
        beds = acc.pop("bed")
        acc["bed_gy"] = None if any(b is None for b in beds) else math.fsum(beds)
    return out


def _cycles_table(patient_id: str, cycles: list[CycleRecord]) -> Table:
    table = Table(title=f"Cycles of {patient_id}")
    for name, right in (
        ("Treatment", True),
        ("Cycle", True),
        ("Administration", False),
        ("Tracer", False),
        ("Activity (GBq)", True),
        ("Time points (h)", False),
        ("Regions", True),
        ("Software", False),
    ):
        table.add_column(name, justify="right" if right else "left")
    for c in cycles:
        table.add_row(
            str(c.treatment),
            str(c.number),
            _when(c),
            c.tracer,
            _num(c.administered_activity_mbq / 1000.0),
            ", ".join(f"{t:g}" for t in c.times_h) or DASH,
            str(len(c.regions)),
            c.software_version,
        )
    return table


def _dose_table(rec: CycleRecord) -> Table:
    title = f"Treatment {rec.treatment}, cycle {rec.number}: absorbed doses"
    table = Table(title=title)
    table.add_column("Region")
    table.add_column("Kind")
    for name in ("Mass (g)", "TIA (MBq h)", "Dose (Gy)", "SD (Gy)", "BED (Gy)", "EQD2 (Gy)"):
        table.add_column(name, justify="right")
    table.add_column("Model")
    for r in rec.regions.values():
        table.add_row(
            r.region,
            r.kind,
            _num(r.mass_g),
            _num(r.tia_mbq_h),
            _num(r.mean_dose_gy),
            _num(r.dose_sd_gy, 2),
            _num(r.bed_gy),
            _num(r.eqd2_gy),
            r.model,
        )
    return table


def _cumulative_table(cycles: list[CycleRecord], title: str) -> Table:
    table = Table(title=title, caption=f"{DASH}: a cycle has no BED yet")
    table.add_column("Region")
    table.add_column("Kind")
    for name in ("Cycles", "Dose (Gy)", "BED (Gy)"):
        table.add_column(name, justify="right")
    for name, acc in cumulative_doses(cycles).items():
        table.add_row(
            name, str(acc["kind"]), str(acc["cycles"]), _num(acc["dose_gy"]), _num(acc["bed_gy"])
        )
    return table


def show_patient(registry: Registry, patient_id: str) -> Group:
    """A patient's cycles, the doses of each cycle and the cumulative dose per region.

    With several treatments, the cumulative table is given per treatment and then
    over all of them.

    Parameters
    ----------
    registry : Registry
    patient_id : str

    Returns
    -------
    rich.console.Group
        Print it with ``console.print``.

    Raises
    ------
    RegistryError
        For a patient not in the registry.
    """
    cycles = registry.cycles(patient_id)
    parts: list[object] = [_cycles_table(patient_id, cycles)]
    parts += [_dose_table(c) for c in cycles if c.regions]
    treatments = sorted({c.treatment for c in cycles})
    if len(treatments) == 1:
        parts.append(_cumulative_table(cycles, "Cumulative over all cycles"))
        return Group(*parts)
    # each treatment course on its own (its limits and plan), then all courses
    for t in treatments:
        own = [c for c in cycles if c.treatment == t]
        parts.append(_cumulative_table(own, f"Cumulative over the cycles of treatment {t}"))
    parts.append(
        _cumulative_table(cycles, f"Cumulative over all cycles of treatments {treatments}")
    )
    return Group(*parts)


def export(
    registry: Registry,
    path: Path | str,
    *,
    patient_id: str | None = None,
    format: Literal["csv", "json"] | None = None,
) -> Text:
    """Export one patient (or all) and say what was written.

    Parameters
    ----------
    registry : Registry
    path : path-like
        ``.csv`` or ``.json`` unless ``format`` is given; written atomically.
    patient_id : str, optional
        All patients by default.
    format : {"csv", "json"}, optional

    Returns
    -------
    rich.text.Text
    """
    written = registry.export(patient_id, path, format)
    who = f"patient {patient_id}" if patient_id is not None else "all patients"
    return Text(f"Exported {who} to {written}")
