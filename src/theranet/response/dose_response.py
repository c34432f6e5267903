"""Dose-response: each lesion's absorbed dose and BED joined with how it responded.

The doses come from the treatment registry (:mod:`theranet.registry`), one row per
region per recorded cycle; the response from a RECIST assessment
(:class:`~theranet.response.recist.PatientResponse`). A lesion is joined by its
name: the region name of the dosimetry (``lesion_liver_1``...) and the lesion id of
the response table must be the same.

Rules
-----
Cycles
    Only cycles administered on or before the last follow-up study count (a later
    cycle cannot explain the response measured before it).
Cumulative dose and BED
    Absorbed doses add over cycles; so do BEDs (Dale's formulation, clinical.md
    §5.6: cycles separated by weeks are independent fractions). The cumulative BED
    is left empty when any counted cycle lacks a BED for the lesion. The SD of the
    cumulative dose is the root sum of the cycles' SDs squared (independent cycles).
Response per lesion
    RECIST has no per-lesion category; each lesion is described by the percent
    change of its RECIST diameter (LD, short axis for nodes) from baseline, at the
    last follow-up and at its best (smallest). Only lesions with a measured
    baseline diameter (target lesions) have one; non-target lesions carry their
    last status.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from theranet.registry.records import CycleRecord
from theranet.response.recist import PatientResponse

__all__ = ["DOSE_RESPONSE_COLUMNS", "DoseResponse", "dose_response", "dose_response_figure"]

#: Columns of :meth:`DoseResponse.rows`.
DOSE_RESPONSE_COLUMNS: tuple[str, ...] = (
    "lesion_id",
    "organ",
    "role",
    "cycles",
    "dose_gy",
    "dose_sd_gy",
    "bed_gy",
    "baseline_diameter_mm",
    "last_diameter_mm",
    "last_change_pct",
    "best_change_pct",
    "last_status",
)


@dataclass(frozen=True)
class DoseResponse:
    """The joined table and what was left out.

    Attributes
    ----------
    rows : tuple of dict
        One per baseline lesion of the response, columns :data:`DOSE_RESPONSE_COLUMNS`.
    cycles : tuple of int
        Numbers of the cycles counted.
    notes : tuple of str
        Lesions without a dose, dosimetry lesions without a response, cycles left out.
    """

    rows: tuple[dict[str, Any], ...]
    cycles: tuple[int, ...]
    notes: tuple[str, ...]


def dose_response(response: PatientResponse, cycles: Iterable[CycleRecord]) -> DoseResponse:
    """Join a patient's lesion doses over cycles with the lesions' response.

    Parameters
    ----------
    response : PatientResponse
    cycles : iterable of CycleRecord
        The patient's recorded cycles (``Registry.cycles(patient_id)``).

    Returns
    -------
    DoseResponse
    """
    followups = response.followups
    last_date = max((s.study_date for s in followups), default=response.baseline_date)
    counted: list[CycleRecord] = []
    notes: list[str] = []
    for c in sorted(cycles, key=lambda c: (c.treatment, c.number)):
        if c.administration.date() <= last_date:
            counted.append(c)
        else:
            notes.append(
                f"cycle {c.number} ({c.administration.date().isoformat()}) after the last "
                "follow-up study: not counted"
            )
    by_lesion: dict[str, list[tuple[str, Any]]] = {}
    for r in response.lesions:
        by_lesion.setdefault(r.lesion_id, []).append((r.study_date, r))
    baseline_ids = [
        r.lesion_id
        for r in response.lesions
        if r.study_date == response.baseline_date and r.role in ("target", "non_target")
    ]
    dosed = {name for c in counted for name, reg in c.regions.items() if reg.kind == "lesion"}
    rows = []
    for lesion_id in baseline_ids:
        history = sorted(by_lesion[lesion_id], key=lambda t: t[0])
        base = history[0][1]
        doses = [c.regions[lesion_id] for c in counted if lesion_id in c.regions]
        dose_gy = sum(d.mean_dose_gy for d in doses) if doses else None
        sds = [d.dose_sd_gy for d in doses]
        known_sd = bool(doses) and all(s is not None for s in sds)
        dose_sd = math.sqrt(sum(s * s for s in sds)) if known_sd else None
        beds = [d.bed_gy for d in doses]
        bed = sum(beds) if doses and all(b is not None for b in beds) else None
        if not doses:
            notes.append(f"{lesion_id}: no dose recorded in the counted cycles")
        changes = []
        if base.role == "target" and base.diameter_mm:
            changes = [
                (r.diameter_mm - base.diameter_mm) / base.diameter_mm * 100.0
                for d, r in history[1:]
                if r.diameter_mm is not None
            ]
        last = history[-1][1]
        rows.append(
            {
                "lesion_id": lesion_id,
                "organ": base.organ,
                "role": base.role,
                "cycles": len(doses),
                "dose_gy": dose_gy,
                "dose_sd_gy": dose_sd,
                "bed_gy": bed,
                "baseline_diameter_mm": base.diameter_mm if base.role == "target" else None,
                "last_diameter_mm": last.diameter_mm if base.role == "target" else None,
                "last_change_pct": changes[-1] if changes else None,
                "best_change_pct": min(changes) if changes else None,
                "last_status": last.status or ("measured" if base.role == "target" else ""),
            }
        )
    for name in sorted(dosed - set(baseline_ids)):
        notes.append(f"{name}: dosimetry lesion with no response measurement")
    return DoseResponse(tuple(rows), tuple(c.number for c in counted), tuple(notes))


def dose_response_figure(rows: Sequence[dict[str, Any]], *, x: str = "auto"):
    """Scatter of each target lesion's diameter change against its dose or BED.

    Parameters
    ----------
    rows : sequence of dict
        :attr:`DoseResponse.rows`.
    x : {"auto", "bed_gy", "dose_gy"}
        ``"auto"``: BED where every plotted lesion has one, else absorbed dose.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from matplotlib.figure import Figure

    pts = [r for r in rows if r["last_change_pct"] is not None and r["dose_gy"] is not None]
    if x == "auto":
        x = "bed_gy" if pts and all(r["bed_gy"] is not None for r in pts) else "dose_gy"
    if x not in ("bed_gy", "dose_gy"):
        raise ValueError(f"x: unknown {x!r}; use 'auto', 'bed_gy' or 'dose_gy'")
    pts = [r for r in pts if r[x] is not None]
    fig = Figure(figsize=(6.0, 4.5), dpi=120, layout="constrained")
    ax = fig.add_subplot()
    if not pts:
        ax.text(0.5, 0.5, "no target lesion with both a dose and a follow-up diameter",
                ha="center", transform=ax.transAxes)  # fmt: skip
        ax.set_axis_off()
        return fig
    organs = sorted({r["organ"] for r in pts})
    markers = "osD^vP*X"
    for i, organ in enumerate(organs):
        sel = [r for r in pts if r["organ"] == organ]
        ax.scatter([r[x] for r in sel], [r["last_change_pct"] for r in sel],
                   marker=markers[i % len(markers)], s=40, label=organ, edgecolor="black",
                   linewidth=0.5)  # fmt: skip
        for r in sel:
            ax.annotate(r["lesion_id"], (r[x], r["last_change_pct"]), fontsize=7,
                        xytext=(3, 3), textcoords="offset points")  # fmt: skip
    ax.axhline(0.0, color="black", linewidth=0.8)
    ax.axhline(-30.0, color="#1a9850", linestyle="--", linewidth=1)
    ax.axhline(20.0, color="#d73027", linestyle="--", linewidth=1)
    label = "cumulative BED (Gy)" if x == "bed_gy" else "cumulative absorbed dose (Gy)"
    ax.set_xlabel(label)
    ax.set_ylabel("diameter change from baseline at last follow-up (%)")
    ax.set_title("Lesion dose-response", fontsize=10)
    ax.legend(fontsize=8)
    return fig
