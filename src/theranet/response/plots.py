"""Response figures: the waterfall plot of best change per patient and the spider plot
of each target lesion over time (matplotlib, no global pyplot state).

The thresholds drawn are RECIST 1.1's: -30 % (partial response, against baseline)
and +20 % (progression, against the nadir; drawn against baseline for orientation
only, as is customary for these plots).
"""

from __future__ import annotations

from collections.abc import Mapping

from theranet.response.recist import PatientResponse

__all__ = ["spider_figure", "waterfall_figure"]

#: Colour per best overall response.
_COLOURS = {"CR": "#1a9850", "PR": "#91cf60", "SD": "#fee08b", "PD": "#d73027", "NE": "#999999"}


def _figure(width_in: float, height_in: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width_in, height_in), dpi=120, layout="constrained")


def waterfall_figure(patients: Mapping[str, PatientResponse]):
    """Best percent change of the sum of diameters from baseline, one bar per patient.

    Parameters
    ----------
    patients : mapping of str to PatientResponse
        Patients with target disease and at least one evaluated follow-up are drawn.

    Returns
    -------
    matplotlib.figure.Figure
    """
    bars = []
    for pid, p in patients.items():
        changes = [s.change_from_baseline_pct for s in p.followups]
        changes = [c for c in changes if c is not None]
        if p.has_target_disease and changes:
            bars.append((min(changes), pid, str(p.best_overall)))
    fig = _figure(7.0, 4.0)
    ax = fig.add_subplot()
    if not bars:
        ax.text(0.5, 0.5, "no patient with evaluated target disease", ha="center",
                transform=ax.transAxes)  # fmt: skip
        ax.set_axis_off()
        return fig
    bars.sort(reverse=True)
    x = range(len(bars))
    ax.bar(x, [b[0] for b in bars], color=[_COLOURS.get(b[2], "#999999") for b in bars],
           edgecolor="black", linewidth=0.5)  # fmt: skip
    ax.axhline(20.0, color="#d73027", linestyle="--", linewidth=1)
    ax.axhline(-30.0, color="#1a9850", linestyle="--", linewidth=1)
    ax.axhline(0.0, color="black", linewidth=0.8)
    ax.set_xticks(list(x), [b[1] for b in bars], rotation=60, ha="right", fontsize=8)
    ax.set_ylabel("best change of the sum of diameters from baseline (%)")
    ax.set_title("Waterfall plot (RECIST 1.1), colour = best overall response", fontsize=10)
    from matplotlib.patches import Patch

    handles = [Patch(color=c, label=k) for k, c in _COLOURS.items()]
    ax.legend(handles=handles, fontsize=8, loc="upper right")
    return fig


def spider_figure(patient: PatientResponse):
    """Percent change of each target lesion's diameter from baseline over time.

    Parameters
    ----------
    patient : PatientResponse

    Returns
    -------
    matplotlib.figure.Figure
    """
    series: dict[str, list[tuple[float, float]]] = {}
    weeks = {s.study_date: s.weeks_from_baseline for s in patient.studies}
    baseline: dict[str, float] = {}
    for row in patient.lesions:
        if row.role != "target" or row.diameter_mm is None:
            continue
        if row.study_date == patient.baseline_date:
            baseline[row.lesion_id] = row.diameter_mm
    for row in patient.lesions:
        b = baseline.get(row.lesion_id)
        if row.role != "target" or row.diameter_mm is None or not b:
            continue
        series.setdefault(row.lesion_id, []).append(
            (weeks[row.study_date], 100.0 * (row.diameter_mm - b) / b)
        )
    fig = _figure(7.0, 4.0)
    ax = fig.add_subplot()
    for lesion, points in sorted(series.items()):
        points.sort()
        ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=lesion)
    ax.axhline(20.0, color="#d73027", linestyle="--", linewidth=1)
    ax.axhline(-30.0, color="#1a9850", linestyle="--", linewidth=1)
    ax.axhline(0.0, color="black", linewidth=0.8)
    ax.set_xlabel("weeks from baseline")
    ax.set_ylabel("change of the lesion diameter from baseline (%)")
    ax.set_title(f"Spider plot of the target lesions, patient {patient.patient_id}", fontsize=10)
    if series:
        ax.legend(fontsize=8, loc="best")
    return fig
