"""The next-cycle plan of a patient from the cycles recorded in the registry.

What :func:`plan_from_registry` takes from the registry (the patient's latest
treatment; the kidney BED and marrow dose of earlier treatments are stated in the
plan's notes, not added):

* **Kidneys**: the mass-weighted mean absorbed dose and BED of the regions whose
  radiobiology tissue is the kidney (e.g. ``kidney_cortex`` and ``kidney_medulla``)
  in each cycle. The cumulative BED is the sum over cycles. The next cycle's
  kinetics per GBq are the latest cycle's: dose per GBq ``d1 = D / A`` and the
  mono-exponential effective half-life that reproduces that cycle's BED for
  its dose (``G = (BED - D) (alpha/beta) / D^2 = T_rep / (T_rep + T_eff)``, Dale
  1985), so the shape of the dose rate carries over.
* **Red marrow**: absorbed dose (the 2 Gy limit comes from blood-based practice,
  clinical.md §6.6): per cycle the blood-based row (``red_marrow_blood_based``) when
  it was recorded, else the image-based ``red_marrow`` row, as stated in the plan's
  notes; a cycle without either is refused.
* **Uncertainty** of the dose per GBq: the recorded dose SD divided by the activity.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from theranet import radiobiology as rb
from theranet.radiobiology import tissue_of
from theranet.therapy.planning import OrganKinetics, Plan, PlanningError, limits, plan_next_cycle

__all__ = ["PLAN_HEADERS", "plan_from_registry", "plan_rows"]

#: Column headers of :func:`plan_rows`.
PLAN_HEADERS = (
    "organ",
    "limit",
    "cumulative so far (Gy)",
    "Gy/GBq",
    "activity to limit (GBq)",
    "after the standard regimen (Gy)",
)


def plan_rows(plan: Plan) -> list[list[str]]:
    """One formatted row per constrained organ (columns :data:`PLAN_HEADERS`)."""
    return [
        [
            o.organ,
            f"{o.constraint.upper()} {o.limit_gy:g} Gy",
            f"{o.cumulative_gy:.3g}",
            f"{o.dose_per_gbq_gy:.3g}",
            f"{o.activity_to_limit_gbq:.3g} ± {o.activity_to_limit_sd_gbq:.2g}",
            f"{o.after_standard_regimen_gy:.3g}",
        ]
        for o in plan.organs
    ]


_MARROW_ROWS = ("red_marrow_blood_based", "red_marrow")


def _kidney_rows(cycle) -> list:
    return [r for n, r in cycle.regions.items() if tissue_of(n) == "kidney"]


def _kidney(cycle) -> tuple[float, float | None, float]:
    """(dose Gy, BED Gy or None, dose SD Gy), mass-weighted over the kidney regions."""
    rows = _kidney_rows(cycle)
    m = [r.mass_g for r in rows]
    total = math.fsum(m)
    dose = math.fsum(r.mean_dose_gy * w for r, w in zip(rows, m, strict=True)) / total
    beds = [r.bed_gy for r in rows]
    bed = (
        None
        if any(b is None for b in beds)
        else math.fsum(b * w for b, w in zip(beds, m, strict=True)) / total
    )
    sds = [r.dose_sd_gy or 0.0 for r in rows]
    sd = math.fsum(s * w for s, w in zip(sds, m, strict=True)) / total
    return dose, bed, sd


def plan_from_registry(
    registry,
    patient_id: str,
    *,
    risk_factors: bool = False,
    limit_kidney_bed_gy: float | None = None,
    max_activity_gbq: float | None = None,
    activity_step_gbq: float | None = None,
    minimum_activity_gbq: float | None = None,
) -> tuple[Plan, list[str]]:
    """Plan the next cycle of a recorded patient.

    Parameters
    ----------
    registry : Registry
    patient_id : str
        Pseudonymous id with at least one recorded cycle.
    risk_factors : bool
        Use the kidney BED limit for patients with risk factors (28 Gy).
    limit_kidney_bed_gy : float, optional
        Overrides the kidney BED limit.
    max_activity_gbq : float, optional
        Cap of the planned activity.
    activity_step_gbq, minimum_activity_gbq : float, optional
        Dispensable step and smallest activity worth giving, GBq (see
        :func:`~theranet.therapy.planning.plan_next_cycle`).

    Returns
    -------
    Plan
    notes : list of str
        What was taken from which cycle.

    Raises
    ------
    PlanningError
        No recorded cycle, no kidney regions or BED, no marrow row.
    """
    cycles = registry.cycles(patient_id)
    if not cycles:
        raise PlanningError(
            "patient_id",
            "has no recorded cycle",
            patient_id,
            "record a cycle first (theranet dosimetry ... --registry) or check the id "
            "(theranet registry list)",
        )
    treatment = max(c.treatment for c in cycles)
    earlier: Sequence = [c for c in cycles if c.treatment != treatment]
    cycles: Sequence = [c for c in cycles if c.treatment == treatment]
    last = cycles[-1]
    if not _kidney_rows(last):
        raise PlanningError(
            "regions",
            "the latest cycle has no kidney region",
            sorted(last.regions),
            "segment the kidneys in the dosimetry",
        )
    kidney_bed_total = 0.0
    kidney_dose_total = 0.0
    for c in cycles:
        if not _kidney_rows(c):
            raise PlanningError("regions", f"cycle {c.number} has no kidney region", c.number)
        dose, bed, _ = _kidney(c)
        if bed is None:
            raise PlanningError(
                "bed_gy",
                f"cycle {c.number} has no kidney BED",
                c.number,
                "record cycles with theranet dosimetry (it computes the BED)",
            )
        kidney_bed_total += bed
        kidney_dose_total += dose
    marrow_name = next((n for n in _MARROW_ROWS if n in last.regions), None)
    if marrow_name is None:
        raise PlanningError(
            "regions",
            "the latest cycle has no red-marrow dose",
            sorted(last.regions),
            "give blood samples or a red_marrow region in the dosimetry",
        )
    # per cycle: the blood-based row when recorded, else the image-based one
    per_cycle = {c.number: next((n for n in _MARROW_ROWS if n in c.regions), None) for c in cycles}
    missing = sorted(n for n, row in per_cycle.items() if row is None)
    if missing:
        raise PlanningError(
            "regions",
            f"cycle(s) {missing} have no red-marrow dose",
            missing,
            "record the marrow dose of every cycle (blood samples or a red_marrow region)",
        )
    marrow_total = math.fsum(c.regions[per_cycle[c.number]].mean_dose_gy for c in cycles)
    a_gbq = last.administered_activity_mbq / 1000.0
    dose, bed, sd = _kidney(last)
    kidney = rb.tissue("kidney")
    g = (bed - dose) * kidney.alpha_beta_gy / dose**2
    if not 0.0 < g < 1.0:
        raise PlanningError(
            "bed_gy", "latest kidney BED inconsistent with its dose", bed, "recompute the cycle"
        )
    t_eff_h = kidney.repair_half_time_h * (1.0 - g) / g
    marrow = last.regions[marrow_name]
    kin = [
        OrganKinetics.mono("kidney", dose / a_gbq, t_eff_h, dose_per_gbq_sd_gy=sd / a_gbq),
        OrganKinetics.mono(
            "red_marrow",
            marrow.mean_dose_gy / a_gbq,
            t_eff_h,  # unused by an absorbed-dose constraint
            dose_per_gbq_sd_gy=(marrow.dose_sd_gy or 0.0) / a_gbq,
        ),
    ]
    lim = limits(risk_factors, limit_kidney_bed_gy=limit_kidney_bed_gy)
    plan = plan_next_cycle(
        {"kidney": kidney_bed_total, "red_marrow": marrow_total},
        kin,
        limits=lim,
        cycles_given=len(cycles),
        max_activity_gbq=max_activity_gbq,
        activity_step_gbq=activity_step_gbq,
        minimum_activity_gbq=minimum_activity_gbq,
    )
    notes = [
        f"treatment {treatment}: {len(cycles)} recorded cycle(s); kinetics per GBq from cycle "
        f"{last.number} ({last.administered_activity_mbq / 1000:.3g} GBq)",
        f"kidneys: mass-weighted over {', '.join(r.region for r in _kidney_rows(last))}; "
        f"dose {dose / a_gbq:.3g} Gy/GBq, BED-equivalent mono-exponential T_eff "
        f"{t_eff_h:.3g} h (alpha/beta {kidney.alpha_beta_gy:g} Gy, T_rep "
        f"{kidney.repair_half_time_h:g} h)",
        f"red marrow: {marrow_name} ({marrow.method or 'recorded method'}), "
        f"{marrow.mean_dose_gy / a_gbq:.3g} Gy/GBq",
    ]
    try:
        notes.append(_kidney_dose_note(lim, kidney_dose_total, dose / a_gbq, plan.activity_gbq))
    except PlanningError:  # a site table without a kidney absorbed-dose limit
        pass
    if len(set(per_cycle.values())) > 1:
        notes.append(
            "red marrow: the cumulative dose mixes methods ("
            + ", ".join(f"cycle {n}: {row}" for n, row in sorted(per_cycle.items()))
            + ")"
        )
    if earlier:
        notes.append(_earlier_note(earlier, marrow_name))
    return plan, notes


def _kidney_dose_note(lim, dose_so_far_gy: float, d_gy_per_gbq: float, a_gbq: float) -> str:
    """The kidney absorbed dose after the plan, beside the absorbed-dose limit."""
    limit = lim.limit_gy("kidney", "dose")
    after = dose_so_far_gy + d_gy_per_gbq * a_gbq
    verdict = "above" if after > limit else "within"
    return (
        f"kidneys: cumulative absorbed dose {after:.3g} Gy after the planned activity, "
        f"{verdict} the {limit:g} Gy absorbed-dose limit ({lim.source('kidney', 'dose').source}; "
        "external-beam TD5/5), which the plan does not apply: the BED limit governs"
    )


def _earlier_note(earlier: Sequence, marrow_name: str) -> str:
    """What the earlier treatments gave, said because the plan does not count it."""
    beds = [_kidney(c)[1] if _kidney_rows(c) else None for c in earlier]
    known = [b for b in beds if b is not None]
    bed = f"{math.fsum(known):.3g} Gy" if known else "not recorded"
    if known and len(known) < len(beds):
        bed += f" (over {len(known)} of {len(beds)} cycles)"
    marrow = math.fsum(c.regions[marrow_name].mean_dose_gy for c in earlier
                       if marrow_name in c.regions)  # fmt: skip
    courses = sorted({c.treatment for c in earlier})
    return (
        f"earlier treatment(s) {', '.join(map(str, courses))}: {len(earlier)} cycle(s), kidney "
        f"BED {bed}, {marrow_name} dose {marrow:.3g} Gy; NOT included in the cumulative "
        "values above, which cover the current treatment only: weigh them before deciding"
    )
