"""Eligibility for radionuclide therapy: PRRT (177Lu-DOTATATE, 90Y-DOTATOC) and 131I-MIBG.

A decision is a list of rules, each evaluated to a :class:`Reason` (passed, failed,
or unknown when its input is missing), and a verdict (:class:`Eligibility`):

* ``False`` (not eligible) if any rule with effect ``"exclude"`` failed;
* else ``None`` (undetermined) if a *required* rule could not be evaluated — missing
  information never makes a patient eligible; the missing items are listed;
* else ``True``.

Rules with effect ``"warn"`` (e.g. the Ki-67 trial limit, SSA withdrawal, renal risk
factors) are reported as warnings and never change the verdict. Optional exclusion
rules (heart failure, brain metastases …) are applied when their input is given and
listed as "not assessed" otherwise.

Rules and thresholds (clinical.md §1.10, §1.11, §3, §5.1, §5.4, §5.4a)
-----------------------------------------------------------------------
PRRT (§5.1, NETTER-1-type thresholds): SSTR uptake >= normal liver (Krenning >= 2)
in all target lesions (§3.1); no SSTR−/FDG+ disease (NETPET P5, §3.3); creatinine
clearance >= 50 mL/min; haemoglobin >= 8.0 g/dL; WBC >= 2 × 10⁹/L; platelets
>= 75 × 10⁹/L; bilirubin <= 3 × ULN; albumin >= 3.0 g/dL unless the prothrombin time
is normal; Karnofsky >= 60 [UNCERTAIN] / ECOG 0–1; life expectancy > 3 months
[UNCERTAIN]; not pregnant or breast-feeding. Optional exclusions: uncontrolled heart
failure, uncontrolled diabetes (fasting glucose > 2 × ULN), untreated brain
metastases, systemic therapy within 4 weeks (§5.4a), age < 12 y, not
well-differentiated. Warnings: Krenning < 3 ("preferred"), heterogeneous uptake,
NETPET P4b/P0, Ki-67 > 20 %, not progressive under SSA, labs older than 4 weeks, renal
risk factors (plan with the 28 Gy kidney BED limit, §5.5), prior myelotoxic
chemotherapy, SSA not withdrawn per policy (§1.10: flagged, never blocking).

131I-MIBG (§3.4, §5.4, §1.11): MIBG-avid disease on the diagnostic scan; Azedra
haematology minimums (platelets >= 80 000/µL, ANC >= 1 200/µL); interfering drugs
withdrawn (:func:`interfering_drugs`); thyroid blockade planned. Optional: age
>= 12 y. Warnings: not all known lesions avid; CrCl < 30 mL/min (not studied).
Isolation in a shielded room (national rules) is not modelled.

Every threshold and rule lives in ``theranet/data/eligibility.toml`` with its source,
section and verification status (:func:`load_criteria`); a caller overrides
thresholds per call (``thresholds={"prrt_platelets_min": 100.0}``, internal units) or
passes a complete site table.

Units
-----
Internal units, also in the field names: creatinine clearance and GFR mL/min,
haemoglobin and albumin g/dL, cell counts 10⁹/L (= per nL: 75 × 10⁹/L is ``75.0``,
80 000/µL is ``80.0``), bilirubin and fasting glucose as multiples of the upper limit
of normal (``x_uln``), Ki-67 and Karnofsky in %, life expectancy in months, ages in
years, intervals in days or hours as named (``days_since_last_la_ssa``,
``hours_since_last_sa_ssa``, clinical.md §1.10).

Examples
--------
>>> from theranet.therapy.eligibility import Clinical, Labs, prrt_eligibility
>>> labs = Labs(creatinine_clearance_ml_min=80.0, haemoglobin_g_dl=12.0, wbc_per_nl=5.0,
...             platelets_per_nl=200.0, bilirubin_x_uln=0.8, albumin_g_dl=4.0)
>>> clinical = Clinical(ecog=0, life_expectancy_months=24.0, pregnant=False,
...                     breast_feeding=False)
>>> result = prrt_eligibility([3, 4], labs, clinical, fdg_positive_sstr_negative=False)
>>> result.verdict
'eligible'
>>> prrt_eligibility([3, 4], Labs(), clinical).missing[:3]
('prrt_sstr_negative_fdg_positive', 'prrt_renal', 'prrt_haemoglobin')
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from functools import lru_cache
from os import PathLike
from pathlib import Path
from types import MappingProxyType
from typing import Any

from theranet import _checks
from theranet._checks import read_table_text
from theranet._tables import parse_toml, read_shipped
from theranet.errors import TheranetError
from theranet.imaging import score as _score
from theranet.imaging.score import (
    KrenningScore,
    NetpetResult,
    PatientKrenning,
    ScoreError,
    ScoreThresholds,
)
from theranet.radiopharmaceuticals import STATUSES, Sourced

__all__ = [
    "DRUG_ACTIONS",
    "EFFECTS",
    "THERAPIES",
    "Clinical",
    "Criteria",
    "DrugClass",
    "DrugMatch",
    "Eligibility",
    "EligibilityError",
    "History",
    "Labs",
    "Reason",
    "Rule",
    "SsaPolicy",
    "Tumour",
    "interfering_drugs",
    "load_criteria",
    "match_drugs",
    "mibg_eligibility",
    "prrt_eligibility",
    "ssa_withdrawal",
]

#: Therapies (and the SSA-withdrawal context) a rule can belong to.
THERAPIES: tuple[str, ...] = ("prrt", "mibg", "ssa")
#: Effect of a failed rule: "exclude" makes the patient ineligible, "warn" is reported only.
EFFECTS: tuple[str, ...] = ("exclude", "warn")
#: What to do with a drug of a class: withdraw before MIBG, review (controversial or
#: unspecified members), none (known not to interfere).
DRUG_ACTIONS: tuple[str, ...] = ("withdraw", "review", "none")

_DATA_FILE = "data/eligibility.toml"
_OVERRIDE_SOURCE = "caller override"
_TOP_KEYS = frozenset({"version", "score", "threshold", "rule", "ssa_policy", "drug"})
_RULE_KEYS = frozenset(
    {"therapy", "text", "effect", "required", "thresholds", "source", "section", "status", "note"}
)
_DRUG_KEYS = frozenset(
    {
        "names",
        "aliases",
        "aliases_source",
        "aliases_status",
        "action",
        "evidence",
        "washout_min",
        "washout_max",
        "source",
        "section",
        "status",
        "note",
    }
)
_POLICY_KEYS = frozenset(
    {
        "context",
        "long_acting_min",
        "short_acting_min",
        "long_acting_note",
        "source",
        "section",
        "status",
    }
)

_COUNT = {"10^9/L": 1.0, "/nL": 1.0, "/uL": 1e-3, "/mm^3": 1e-3}
_DAYS = {"d": 1.0, "week": 7.0, "h": 1.0 / 24.0}
_HOURS = {"h": 1.0, "d": 24.0, "week": 168.0}
_GDL = {"g/dL": 1.0, "g/L": 0.1}
# key -> (internal unit, allowed unit -> factor, integer)
_SPEC: dict[str, tuple[str, dict[str, float], bool]] = {
    "prrt_creatinine_clearance_min": ("mL/min", {"mL/min": 1.0}, False),
    "prrt_haemoglobin_min": ("g/dL", _GDL, False),
    "prrt_wbc_min": ("10^9/L", _COUNT, False),
    "prrt_platelets_min": ("10^9/L", _COUNT, False),
    "prrt_bilirubin_max": ("xULN", {"xULN": 1.0}, False),
    "prrt_albumin_min": ("g/dL", _GDL, False),
    "prrt_karnofsky_min": ("%", {"%": 1.0}, False),
    "prrt_ecog_max": ("grade", {"grade": 1.0}, True),
    "prrt_life_expectancy_min": ("month", {"month": 1.0}, False),
    "prrt_fasting_glucose_max": ("xULN", {"xULN": 1.0}, False),
    "prrt_ki67_max": ("%", {"%": 1.0}, False),
    "prrt_systemic_therapy_interval_min": ("d", _DAYS, False),
    "prrt_age_min": ("year", {"year": 1.0}, False),
    "prrt_labs_max_age": ("d", _DAYS, False),
    "renal_risk_age_min": ("year", {"year": 1.0}, False),
    "mibg_platelets_min": ("10^9/L", _COUNT, False),
    "mibg_anc_min": ("10^9/L", _COUNT, False),
    "mibg_creatinine_clearance_studied_min": ("mL/min", {"mL/min": 1.0}, False),
    "mibg_age_min": ("year", {"year": 1.0}, False),
    "mibg_avid_fraction_min": ("1", {"1": 1.0, "%": 0.01}, False),
    "mibg_thyroid_blockade_start_before": ("h", _HOURS, False),
    "mibg_thyroid_blockade_continue_after": ("d", _DAYS, False),
}
_FRACTION_KEYS = frozenset({"mibg_avid_fraction_min"})
_PERCENT_KEYS = frozenset({"prrt_karnofsky_min", "prrt_ki67_max"})

_PRRT_RULES: tuple[str, ...] = (
    "prrt_uptake",
    "prrt_sstr_negative_fdg_positive",
    "prrt_renal",
    "prrt_haemoglobin",
    "prrt_wbc",
    "prrt_platelets",
    "prrt_bilirubin",
    "prrt_albumin",
    "prrt_performance",
    "prrt_life_expectancy",
    "prrt_pregnancy_lactation",
    "prrt_heart_failure",
    "prrt_diabetes",
    "prrt_brain_metastases",
    "prrt_systemic_therapy",
    "prrt_age",
    "prrt_well_differentiated",
    "prrt_uptake_preferred",
    "prrt_uptake_heterogeneous",
    "prrt_dual_tracer",
    "prrt_ki67",
    "prrt_progressive",
    "prrt_labs_recent",
    "prrt_renal_risk_factors",
    "prrt_myelotoxic_chemotherapy",
)
_SSA_RULES: tuple[str, ...] = ("ssa_long_acting", "ssa_short_acting")
_MIBG_RULES: tuple[str, ...] = (
    "mibg_avid",
    "mibg_platelets",
    "mibg_anc",
    "mibg_interfering_drugs",
    "mibg_thyroid_blockade",
    "mibg_age",
    "mibg_avid_fraction",
    "mibg_renal",
)
_RULE_IDS = frozenset(_PRRT_RULES + _SSA_RULES + _MIBG_RULES)


class EligibilityError(TheranetError, ValueError):
    """An eligibility input, threshold, rule table or lookup is unusable."""


# ----------------------------------------------------------------------------------------
# inputs


def _opt_number(
    owner: str,
    name: str,
    value: Any,
    unit: str,
    *,
    upper: float = math.inf,
    allow_inf: bool = False,
) -> float | None:
    if value is None:
        return None
    where = f"{owner}.{name}"
    if isinstance(value, str | bytes):
        raise EligibilityError(
            where, "must be a number, not text", value, f"give a number in {unit}"
        )
    if allow_inf and not isinstance(value, bool) and value == math.inf:
        return math.inf
    number = _checks.non_negative(EligibilityError, where, value, unit)
    if number > upper:
        raise EligibilityError(where, f"must be <= {upper:g} {unit}", value)
    return number


def _opt_bool(owner: str, name: str, value: Any) -> bool | None:
    if value is not None and not isinstance(value, bool):
        raise EligibilityError(f"{owner}.{name}", "must be True, False or None", value)
    return value


def _validate(obj: Any, owner: str, units: Mapping[str, tuple[str, float, bool]]) -> None:
    """Check every field: numbers in ``units`` (unit, upper bound, inf allowed), others bool."""
    for f in fields(obj):
        value = getattr(obj, f.name)
        if f.name in units:
            unit, upper, allow_inf = units[f.name]
            checked = _opt_number(owner, f.name, value, unit, upper=upper, allow_inf=allow_inf)
            object.__setattr__(obj, f.name, checked)
        else:
            _opt_bool(owner, f.name, value)


@dataclass(frozen=True)
class Labs:
    """Laboratory values before a therapy cycle; every field optional (``None``: not known).

    Parameters
    ----------
    creatinine_clearance_ml_min : float, optional
        Creatinine clearance (Cockcroft–Gault or measured), mL/min.
    measured_gfr_ml_min : float, optional
        Measured GFR or CrCl (absolute, mL/min); takes precedence over the estimate.
    egfr_ml_min_1_73m2 : float, optional
        eGFR normalised to 1.73 m², mL/min/1.73 m² — recorded, but not the PRRT
        criterion (which is in mL/min) and not used for a verdict.
    haemoglobin_g_dl : float, optional
        Haemoglobin, g/dL (5.0 mmol/L ≈ 8.0 g/dL).
    wbc_per_nl : float, optional
        White-cell count, 10⁹/L (= per nL).
    neutrophils_per_nl : float, optional
        Absolute neutrophil count, 10⁹/L (1 200/µL = 1.2).
    platelets_per_nl : float, optional
        Platelets, 10⁹/L (75 000/µL = 75.0).
    bilirubin_x_uln : float, optional
        Total bilirubin as a multiple of the upper limit of normal.
    albumin_g_dl : float, optional
        Serum albumin, g/dL.
    prothrombin_time_normal : bool, optional
        Whether the prothrombin time is normal (albumin exception, clinical.md §5.1).
    fasting_glucose_x_uln : float, optional
        Fasting glucose as a multiple of the upper limit of normal.
    days_before_treatment : float, optional
        Age of the labs at the planned cycle, days.

    Raises
    ------
    EligibilityError
        A number that is negative, not finite or not a number; a non-boolean flag.
    """

    creatinine_clearance_ml_min: float | None = None
    measured_gfr_ml_min: float | None = None
    egfr_ml_min_1_73m2: float | None = None
    haemoglobin_g_dl: float | None = None
    wbc_per_nl: float | None = None
    neutrophils_per_nl: float | None = None
    platelets_per_nl: float | None = None
    bilirubin_x_uln: float | None = None
    albumin_g_dl: float | None = None
    prothrombin_time_normal: bool | None = None
    fasting_glucose_x_uln: float | None = None
    days_before_treatment: float | None = None

    def __post_init__(self) -> None:
        _validate(
            self,
            "labs",
            {
                "creatinine_clearance_ml_min": ("mL/min", math.inf, False),
                "measured_gfr_ml_min": ("mL/min", math.inf, False),
                "egfr_ml_min_1_73m2": ("mL/min/1.73 m^2", math.inf, False),
                "haemoglobin_g_dl": ("g/dL", math.inf, False),
                "wbc_per_nl": ("10^9/L", math.inf, False),
                "neutrophils_per_nl": ("10^9/L", math.inf, False),
                "platelets_per_nl": ("10^9/L", math.inf, False),
                "bilirubin_x_uln": ("x ULN", math.inf, False),
                "albumin_g_dl": ("g/dL", math.inf, False),
                "fasting_glucose_x_uln": ("x ULN", math.inf, False),
                "days_before_treatment": ("d", math.inf, False),
            },
        )


@dataclass(frozen=True)
class Clinical:
    """Patient status; every field optional (``None``: not known).

    Parameters
    ----------
    karnofsky_percent : float, optional
        Karnofsky performance status, 0–100 %.
    ecog : int, optional
        ECOG performance status, 0–5.
    life_expectancy_months : float, optional
    age_years : float, optional
    pregnant, breast_feeding : bool, optional
    uncontrolled_heart_failure : bool, optional
        Uncontrolled heart failure (NYHA II–IV).
    untreated_brain_metastases : bool, optional
    hypertension, diabetes, single_kidney : bool, optional
        Renal risk factors (clinical.md §5.1; single kidney [UNCERTAIN]).
    """

    karnofsky_percent: float | None = None
    ecog: int | None = None
    life_expectancy_months: float | None = None
    age_years: float | None = None
    pregnant: bool | None = None
    breast_feeding: bool | None = None
    uncontrolled_heart_failure: bool | None = None
    untreated_brain_metastases: bool | None = None
    hypertension: bool | None = None
    diabetes: bool | None = None
    single_kidney: bool | None = None

    def __post_init__(self) -> None:
        if self.ecog is not None and (
            isinstance(self.ecog, bool) or not isinstance(self.ecog, int) or not 0 <= self.ecog <= 5
        ):
            raise EligibilityError("clinical.ecog", "must be an integer 0-5", self.ecog)
        _validate(
            self,
            "clinical",
            {
                "karnofsky_percent": ("%", 100.0, False),
                "ecog": ("grade", 5.0, False),
                "life_expectancy_months": ("month", math.inf, False),
                "age_years": ("year", 150.0, False),
            },
        )
        if self.ecog is not None:
            object.__setattr__(self, "ecog", int(self.ecog))


@dataclass(frozen=True)
class Tumour:
    """Tumour criteria of PRRT (clinical.md §5.1); every field optional.

    Parameters
    ----------
    well_differentiated : bool, optional
        Well-differentiated, inoperable/metastatic SSTR-positive NET.
    ki67_percent : float, optional
        Ki-67 index, 0–100 %.
    progressive_under_ssa : bool, optional
        Progression under somatostatin analogues (NETTER-1 inclusion).
    """

    well_differentiated: bool | None = None
    ki67_percent: float | None = None
    progressive_under_ssa: bool | None = None

    def __post_init__(self) -> None:
        _validate(self, "tumour", {"ki67_percent": ("%", 100.0, False)})


@dataclass(frozen=True)
class History:
    """Treatment history relevant to eligibility (clinical.md §1.10, §5.4a).

    Intervals are measured to the planned scan or cycle; ``math.inf`` means "never
    given" and ``None`` "not known".

    Parameters
    ----------
    days_since_last_la_ssa : float, optional
        Days since the last long-acting SSA (octreotide LAR, lanreotide).
    hours_since_last_sa_ssa : float, optional
        Hours since the last short-acting octreotide.
    days_since_systemic_therapy : float, optional
        Days since the last interferon, everolimus or other systemic therapy.
    prior_nephrotoxic_chemotherapy : bool, optional
        Renal risk factor [UNCERTAIN list extension].
    prior_myelotoxic_chemotherapy : bool, optional
        Risk factor for marrow toxicity [UNCERTAIN].
    """

    days_since_last_la_ssa: float | None = None
    hours_since_last_sa_ssa: float | None = None
    days_since_systemic_therapy: float | None = None
    prior_nephrotoxic_chemotherapy: bool | None = None
    prior_myelotoxic_chemotherapy: bool | None = None

    def __post_init__(self) -> None:
        _validate(
            self,
            "history",
            {
                "days_since_last_la_ssa": ("d", math.inf, True),
                "hours_since_last_sa_ssa": ("h", math.inf, True),
                "days_since_systemic_therapy": ("d", math.inf, True),
            },
        )


# ----------------------------------------------------------------------------------------
# table rows


@dataclass(frozen=True)
class Rule:
    """One eligibility rule of the table (its logic is in this module, keyed by ``id``)."""

    id: str
    therapy: str
    text: str
    effect: str
    required: bool
    thresholds: tuple[str, ...]
    source: str
    section: str
    status: str
    note: str = ""


@dataclass(frozen=True)
class DrugClass:
    """A class of drugs and its effect on MIBG uptake (clinical.md §1.11).

    Attributes
    ----------
    name : str
        Table key, e.g. ``"labetalol"``, ``"calcium_channel_blockers"``.
    names : tuple of str
        Names as listed in clinical.md (status ``status``).
    aliases : tuple of str
        Class members and brand names added for matching (status ``aliases_status``).
    action : {"withdraw", "review", "none"}
    evidence : str
    washout_min_h, washout_max_h : Sourced or None
        Typical washout before MIBG, h.
    """

    name: str
    names: tuple[str, ...]
    aliases: tuple[str, ...]
    aliases_source: str
    aliases_status: str
    action: str
    evidence: str
    washout_min_h: Sourced | None
    washout_max_h: Sourced | None
    source: str
    section: str
    status: str
    note: str = ""


@dataclass(frozen=True)
class SsaPolicy:
    """An SSA withdrawal policy of clinical.md §1.10.

    Attributes
    ----------
    name, context : str
    long_acting_min_d : Sourced or None
        Minimum interval since the last long-acting SSA, days (``None``: the source
        gives no number, see ``long_acting_note``).
    short_acting_min_h : Sourced or None
        Minimum interval since the last short-acting octreotide, h.
    long_acting_note : str
    source, section, status : str
    """

    name: str
    context: str
    long_acting_min_d: Sourced | None
    short_acting_min_h: Sourced | None
    long_acting_note: str
    source: str
    section: str
    status: str


def _lookup(name: Any, table: Mapping[str, Any], field_name: str, what: str) -> Any:
    if not isinstance(name, str):
        raise EligibilityError(field_name, f"must be a {what} name", name)
    key = _checks.lookup_key(name)
    if key not in table:
        raise EligibilityError(
            field_name, f"unknown {what}", name, f"use one of {', '.join(sorted(table))}"
        )
    return table[key]


@dataclass(frozen=True)
class Criteria:
    """The validated table of thresholds, rules, SSA policies and MIBG drug classes.

    Use :func:`load_criteria` to build one; :meth:`with_overrides` for per-call values.
    """

    score: ScoreThresholds
    thresholds: Mapping[str, Sourced]
    rules: Mapping[str, Rule]
    drugs: Mapping[str, DrugClass]
    ssa_policies: Mapping[str, SsaPolicy]
    version: str = ""
    paths: tuple[str, ...] = ()

    def sourced(self, key: str) -> Sourced:
        """Threshold ``key`` (of ``[threshold]`` or ``[score]``) with its provenance."""
        if key in self.thresholds:
            return self.thresholds[key]
        if key in self.score.values:
            return self.score.values[key]
        raise EligibilityError(
            "threshold", "unknown key", key, f"use one of {', '.join(self.keys())}"
        )

    def value(self, key: str) -> float:
        """Threshold ``key`` in its internal unit."""
        return self.sourced(key).value  # type: ignore[return-value]

    def keys(self) -> tuple[str, ...]:
        """All threshold keys, score keys first."""
        return tuple(self.score.values) + tuple(self.thresholds)

    def rule(self, rule_id: str) -> Rule:
        """The rule row ``rule_id``."""
        if rule_id not in self.rules:
            raise EligibilityError(
                "rule", "unknown rule", rule_id, f"use one of {', '.join(sorted(self.rules))}"
            )
        return self.rules[rule_id]

    def drug_class(self, name: str) -> DrugClass:
        """Drug class by table key (case, spaces and hyphens ignored)."""
        return _lookup(name, self.drugs, "drug_class", "drug class")

    def ssa_policy(self, name: str) -> SsaPolicy:
        """SSA withdrawal policy by name (``"lutathera"``, ``"netspot"``, ``"detectnet"``,
        ``"department"``, ``"octreoscan"``)."""
        return _lookup(name, self.ssa_policies, "ssa_policy", "SSA policy")

    def with_overrides(self, overrides: Mapping[str, Any] | None) -> Criteria:
        """A copy with thresholds replaced by caller values (internal units).

        Raises
        ------
        EligibilityError
            Unknown key or unusable value.
        """
        if not overrides:
            return self
        if not isinstance(overrides, Mapping):
            raise EligibilityError(
                "thresholds",
                "must be a mapping of key to value",
                overrides,
                "give e.g. {'prrt_platelets_min': 100.0}",
            )
        score_part = {k: v for k, v in overrides.items() if k in self.score.values}
        values = dict(self.thresholds)
        for key, raw in overrides.items():
            if key in score_part:
                continue
            values[key] = self.sourced(key).overridden(_override_value(key, raw), _OVERRIDE_SOURCE)
        try:
            score = self.score.with_overrides(score_part)
        except ScoreError as exc:
            raise EligibilityError(exc.field, exc.problem, exc.value, exc.fix) from exc
        return Criteria(
            score,
            MappingProxyType(values),
            self.rules,
            self.drugs,
            self.ssa_policies,
            self.version,
            self.paths,
        )


def _override_value(key: str, raw: Any) -> float | int:
    where = f"thresholds[{key!r}]"
    unit, _, integer = _SPEC[key]
    if integer:
        if isinstance(raw, bool) or not isinstance(raw, int) or not 0 <= raw <= 5:
            raise EligibilityError(where, "must be an integer 0-5", raw)
        return int(raw)
    number = _checks.positive(EligibilityError, where, raw, unit)
    if key in _FRACTION_KEYS and number > 1.0:
        raise EligibilityError(where, "must be a fraction <= 1", raw)
    if key in _PERCENT_KEYS and number > 100.0:
        raise EligibilityError(where, "must be <= 100 %", raw)
    return number


# ----------------------------------------------------------------------------------------
# table loading


def _text(
    raw: Mapping[str, Any], key: str, where: str, source: str, *, optional: bool = False
) -> str:
    value = raw.get(key)
    if value is None and optional:
        return ""
    if not isinstance(value, str) or (not optional and not value.strip()):
        raise EligibilityError(f"{where}.{key}", "must be a non-empty string", value, source=source)
    return value


def _status(raw: Mapping[str, Any], key: str, where: str, source: str) -> str:
    value = _text(raw, key, where, source)
    if value not in STATUSES:
        raise EligibilityError(
            f"{where}.{key}",
            "not an allowed status",
            value,
            f"use one of {', '.join(STATUSES)}",
            source,
        )
    return value


def _keys(raw: Any, allowed: frozenset[str], where: str, source: str) -> Mapping[str, Any]:
    if not isinstance(raw, Mapping):
        raise EligibilityError(where, "must be a table", raw, source=source)
    extra = sorted(set(raw) - allowed)
    if extra:
        raise EligibilityError(
            where, "unknown key(s)", extra, f"allowed keys are {', '.join(sorted(allowed))}", source
        )
    return raw


def _str_list(raw: Mapping[str, Any], key: str, where: str, source: str) -> tuple[str, ...]:
    value = raw.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise EligibilityError(
            f"{where}.{key}", "must be a list of non-empty strings", value, source=source
        )
    return tuple(value)


def _duration(raw: Any, where: str, source: str, unit: str) -> Sourced | None:
    if raw is None:
        return None
    factors = _HOURS if unit == "h" else _DAYS
    return _checks.sourced_value(
        EligibilityError, raw, where, source, factors=factors, internal_unit=unit
    )


def _parse_thresholds(doc: Mapping[str, Any], source: str) -> dict[str, Sourced]:
    table = _keys(doc.get("threshold"), frozenset(_SPEC), "threshold", source)
    values = {}
    for key, (unit, factors, integer) in _SPEC.items():
        if key not in table:
            raise EligibilityError(
                f"threshold.{key}",
                "missing",
                fix="give value, unit, source, section and status",
                source=source,
            )
        values[key] = _checks.sourced_value(
            EligibilityError,
            table[key],
            f"threshold.{key}",
            source,
            factors=factors,
            internal_unit=unit,
            integer=integer,
        )
        if key in _FRACTION_KEYS and values[key].value > 1.0:
            raise EligibilityError(
                f"threshold.{key}.value",
                "must be a fraction <= 1",
                values[key].value,
                source=source,
            )
    return values


def _parse_rules(doc: Mapping[str, Any], known: set[str], source: str) -> dict[str, Rule]:
    table = doc.get("rule")
    if not isinstance(table, Mapping):
        raise EligibilityError("rule", "missing or not a table", table, source=source)
    unknown = sorted(set(table) - _RULE_IDS)
    missing = sorted(_RULE_IDS - set(table))
    if unknown or missing:
        raise EligibilityError(
            "rule",
            "rule ids do not match the rules this version evaluates",
            {"unknown": unknown, "missing": missing},
            source=source,
        )
    rules = {}
    for rule_id, raw in table.items():
        where = f"rule.{rule_id}"
        raw = _keys(raw, _RULE_KEYS, where, source)
        therapy = _text(raw, "therapy", where, source)
        effect = _text(raw, "effect", where, source)
        if therapy not in THERAPIES or effect not in EFFECTS:
            raise EligibilityError(
                where,
                "therapy or effect not allowed",
                (therapy, effect),
                f"therapy in {THERAPIES}, effect in {EFFECTS}",
                source,
            )
        required = raw.get("required")
        if not isinstance(required, bool):
            raise EligibilityError(
                f"{where}.required", "must be true or false", required, source=source
            )
        keys = _str_list(raw, "thresholds", where, source)
        for k in keys:
            if k not in known:
                raise EligibilityError(
                    f"{where}.thresholds", "unknown threshold key", k, source=source
                )
        rules[rule_id] = Rule(
            rule_id,
            therapy,
            _text(raw, "text", where, source),
            effect,
            required,
            keys,
            _text(raw, "source", where, source),
            _text(raw, "section", where, source),
            _status(raw, "status", where, source),
            _text(raw, "note", where, source, optional=True),
        )
    return rules


def _parse_drugs(doc: Mapping[str, Any], source: str) -> dict[str, DrugClass]:
    table = doc.get("drug")
    if not isinstance(table, Mapping) or not table:
        raise EligibilityError("drug", "missing or empty", table, source=source)
    drugs: dict[str, DrugClass] = {}
    seen: dict[tuple[str, ...], str] = {}
    for name, raw in table.items():
        where = f"drug.{name}"
        raw = _keys(raw, _DRUG_KEYS, where, source)
        action = _text(raw, "action", where, source)
        if action not in DRUG_ACTIONS:
            raise EligibilityError(
                f"{where}.action",
                "not allowed",
                action,
                f"use one of {', '.join(DRUG_ACTIONS)}",
                source,
            )
        names = _str_list(raw, "names", where, source)
        if not names:
            raise EligibilityError(
                f"{where}.names", "empty", fix="list at least one name", source=source
            )
        aliases = _str_list(raw, "aliases", where, source)
        for term in names + aliases:
            tokens = _tokens(term)
            if tokens in seen and seen[tokens] != name:
                raise EligibilityError(
                    where,
                    "name also listed under another class",
                    term,
                    f"remove it from drug.{seen[tokens]} or here",
                    source,
                )
            seen[tokens] = name
        key = _checks.lookup_key(name)
        drugs[key] = DrugClass(
            key,
            names,
            aliases,
            _text(raw, "aliases_source", where, source),
            _status(raw, "aliases_status", where, source),
            action,
            _text(raw, "evidence", where, source),
            _duration(raw.get("washout_min"), f"{where}.washout_min", source, "h"),
            _duration(raw.get("washout_max"), f"{where}.washout_max", source, "h"),
            _text(raw, "source", where, source),
            _text(raw, "section", where, source),
            _status(raw, "status", where, source),
            _text(raw, "note", where, source, optional=True),
        )
    return drugs


def _parse_policies(doc: Mapping[str, Any], source: str) -> dict[str, SsaPolicy]:
    table = doc.get("ssa_policy")
    if not isinstance(table, Mapping) or not table:
        raise EligibilityError("ssa_policy", "missing or empty", table, source=source)
    policies = {}
    for name, raw in table.items():
        where = f"ssa_policy.{name}"
        raw = _keys(raw, _POLICY_KEYS, where, source)
        long_min = _duration(raw.get("long_acting_min"), f"{where}.long_acting_min", source, "d")
        note = _text(raw, "long_acting_note", where, source, optional=True)
        if long_min is None and not note:
            raise EligibilityError(
                where, "needs long_acting_min or long_acting_note", source=source
            )
        key = _checks.lookup_key(name)
        policies[key] = SsaPolicy(
            key,
            _text(raw, "context", where, source),
            long_min,
            _duration(raw.get("short_acting_min"), f"{where}.short_acting_min", source, "h"),
            note,
            _text(raw, "source", where, source),
            _text(raw, "section", where, source),
            _status(raw, "status", where, source),
        )
    return policies


def _build(
    doc: Mapping[str, Any], score: ScoreThresholds, version: str, paths: tuple[str, ...]
) -> Criteria:
    source = " + ".join(paths)
    extra = sorted(set(doc) - _TOP_KEYS)
    if extra:
        raise EligibilityError(
            "table", "unknown key(s)", extra, f"allowed keys are {sorted(_TOP_KEYS)}", source
        )
    thresholds = _parse_thresholds(doc, source)
    rules = _parse_rules(doc, set(thresholds) | set(score.values), source)
    return Criteria(
        score,
        MappingProxyType(thresholds),
        MappingProxyType(rules),
        MappingProxyType(_parse_drugs(doc, source)),
        MappingProxyType(_parse_policies(doc, source)),
        version,
        paths,
    )


def _read(text: str, source: str) -> dict[str, Any]:
    return parse_toml(EligibilityError, text, source)


@lru_cache(maxsize=1)
def _shipped() -> Criteria:
    doc, source = read_shipped(_DATA_FILE, _read)
    return _build(doc, _score.score_thresholds(), str(doc.get("version", "")), (source,))


def load_criteria(path: str | PathLike[str] | None = None) -> Criteria:
    """Read and validate the eligibility table.

    Parameters
    ----------
    path : str or path-like, optional
        A complete site table with the layout of the shipped ``eligibility.toml``
        (``[score]``, ``[threshold]``, ``[rule.<id>]`` for every rule id,
        ``[ssa_policy.<name>]``, ``[drug.<class>]``); ``None`` reads the shipped table.

    Returns
    -------
    Criteria

    Raises
    ------
    EligibilityError
        Unreadable file, unknown or missing keys or rules, values without unit,
        source, section or status, disallowed units, statuses or effects.
    """
    if path is None:
        return _shipped()
    text, where = read_table_text(EligibilityError, path)
    p = Path(where)
    try:
        score = _score.load_score_thresholds(p)
    except ScoreError as exc:
        raise EligibilityError(exc.field, exc.problem, exc.value, exc.fix, exc.source) from exc
    return _build(_read(text, str(p)), score, str(score.version), (str(p),))


def _criteria(criteria: Criteria | None, thresholds: Mapping[str, Any] | None) -> Criteria:
    if criteria is not None and not isinstance(criteria, Criteria):
        raise EligibilityError("criteria", "must be a Criteria (load_criteria())", criteria)
    return (criteria or _shipped()).with_overrides(thresholds)


# ----------------------------------------------------------------------------------------
# MIBG interfering drugs


def _tokens(text: str) -> tuple[str, ...]:
    """Lower-case word tokens, a plural 's' dropped (``"Calcium-channel blockers"``)."""
    words = re.findall(r"[0-9a-z]+", text.casefold())
    return tuple(
        w[:-1] if len(w) > 3 and w.endswith("s") and not w.endswith("ss") else w for w in words
    )


def _contains(haystack: tuple[str, ...], needle: tuple[str, ...]) -> bool:
    n = len(needle)
    return any(haystack[i : i + n] == needle for i in range(len(haystack) - n + 1))


@dataclass(frozen=True)
class DrugMatch:
    """A medication matched to a drug class of clinical.md §1.11.

    Attributes
    ----------
    query : str
        The name as given.
    matched : str
        The table name that matched.
    drug_class : DrugClass
        The class with its action, evidence, washout and source.
    name_status : str
        Verification status of ``matched`` (the class status for names listed in
        clinical.md, ``aliases_status`` for added members and brand names).
    """

    query: str
    matched: str
    drug_class: DrugClass
    name_status: str

    @property
    def action(self) -> str:
        return self.drug_class.action

    @property
    def source(self) -> str:
        return self.drug_class.source

    def describe(self) -> str:
        """One line: name, class, action, evidence and washout."""
        c = self.drug_class
        text = f"{self.query} ({c.name}, {c.action}; evidence {c.evidence}"
        lo, hi = c.washout_min_h, c.washout_max_h
        if lo is not None and hi is not None:
            text += f"; washout {lo.value:g}-{hi.value:g} h"
        elif hi is not None:
            text += f"; washout up to {hi.value:g} h"
        elif lo is not None:
            text += f"; washout at least {lo.value:g} h"
        return text + f"; {c.source})"


def match_drugs(names: Iterable[str], *, criteria: Criteria | None = None) -> list[DrugMatch]:
    """Match medication names to the MIBG drug table (case-insensitive, generic or brand).

    A name matches a table name when the table name's words occur, in order, among
    its words (``"Nifedipine 30 mg retard"`` matches ``"nifedipine"``); the longest
    match wins. Names of the table are generic names and classes as listed in
    clinical.md §1.11 plus class members and brand names added for matching.

    Parameters
    ----------
    names : iterable of str
        Medications (generic, brand or class names).
    criteria : Criteria, optional
        A site table (default: the shipped one).

    Returns
    -------
    list of DrugMatch
        One per matched name, in input order; names without a match are left out.
        Includes classes with action ``"none"`` (known not to interfere).

    Raises
    ------
    EligibilityError
        ``names`` is a string or holds a non-string or empty name.
    """
    table = _criteria(criteria, None)
    if isinstance(names, str | bytes) or not isinstance(names, Iterable):
        raise EligibilityError(
            "names",
            "must be a list of medication names",
            names,
            "give e.g. ['labetalol', 'amlodipine']",
        )
    matches: list[DrugMatch] = []
    for i, name in enumerate(names):
        if not isinstance(name, str) or not name.strip():
            raise EligibilityError(f"names[{i}]", "must be a non-empty string", name)
        query = _tokens(name)
        best: tuple[int, str, DrugClass, str] | None = None
        for cls in table.drugs.values():
            terms = [(t, cls.status) for t in cls.names]
            terms += [(t, cls.aliases_status) for t in cls.aliases]
            for term, status in terms:
                tokens = _tokens(term)
                if _contains(query, tokens) and (best is None or len(tokens) > best[0]):
                    best = (len(tokens), term, cls, status)
        if best is not None:
            matches.append(DrugMatch(name, best[1], best[2], best[3]))
    return matches


def interfering_drugs(names: Iterable[str], *, criteria: Criteria | None = None) -> list[DrugMatch]:
    """The medications that interfere with MIBG uptake (action "withdraw" or "review").

    Examples
    --------
    >>> [m.drug_class.name for m in interfering_drugs(["LABETALOL", "Cardizem", "paracetamol"])]
    ['labetalol', 'calcium_channel_blockers']
    """
    return [m for m in match_drugs(names, criteria=criteria) if m.action != "none"]


# ----------------------------------------------------------------------------------------
# reasons and verdict


@dataclass(frozen=True)
class Reason:
    """The evaluation of one rule.

    Attributes
    ----------
    rule : str
        Rule id (a row of the table).
    passed : bool or None
        ``None`` when the input was missing.
    effect : {"exclude", "warn"}
    required : bool
        Whether the verdict needs this rule to be known.
    value : object
        The patient's value (number, flag, grade, list of names), JSON-serialisable.
    threshold : float or None
        The threshold applied (first one used), in ``unit``.
    unit : str
    text : str
        The rule as stated in the table.
    detail : str
        What was found.
    source, section, status : str
        Provenance of the rule.
    thresholds : mapping of str to Sourced
        Every threshold of the rule with its provenance (caller overrides included).
    """

    rule: str
    passed: bool | None
    effect: str
    required: bool
    value: Any
    threshold: float | None
    unit: str
    text: str
    detail: str
    source: str
    section: str
    status: str
    thresholds: Mapping[str, Sourced] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form."""
        value = self.value
        if isinstance(value, float) and math.isinf(value):
            value = "never"
        return {
            "rule": self.rule,
            "passed": self.passed,
            "effect": self.effect,
            "required": self.required,
            "value": value,
            "threshold": self.threshold,
            "unit": self.unit,
            "text": self.text,
            "detail": self.detail,
            "source": self.source,
            "section": self.section,
            "status": self.status,
            "thresholds": {
                k: {"value": s.value, "unit": s.unit, "source": s.source, "status": s.status}
                for k, s in self.thresholds.items()
            },
        }


@dataclass(frozen=True)
class Eligibility:
    """The eligibility of a patient for one therapy.

    Attributes
    ----------
    therapy : {"prrt", "mibg"}
    eligible : bool or None
        ``False`` if an exclusion rule failed; ``None`` (undetermined) if a required
        rule could not be evaluated; else ``True``.
    reasons : tuple of Reason
    warnings : tuple of str
    criteria_version : str
    """

    therapy: str
    eligible: bool | None
    reasons: tuple[Reason, ...]
    warnings: tuple[str, ...]
    criteria_version: str

    @property
    def verdict(self) -> str:
        """``"eligible"``, ``"not eligible"`` or ``"undetermined"``."""
        return {True: "eligible", False: "not eligible", None: "undetermined"}[self.eligible]

    @property
    def failed(self) -> tuple[str, ...]:
        """Ids of the exclusion rules that failed."""
        return tuple(r.rule for r in self.reasons if r.effect == "exclude" and r.passed is False)

    @property
    def missing(self) -> tuple[str, ...]:
        """Ids of the required rules whose input is missing."""
        return tuple(r.rule for r in self.reasons if r.required and r.passed is None)

    @property
    def not_assessed(self) -> tuple[str, ...]:
        """Ids of the optional rules whose input was not given."""
        return tuple(r.rule for r in self.reasons if not r.required and r.passed is None)

    def reason(self, rule_id: str) -> Reason:
        """The reason of rule ``rule_id``."""
        for r in self.reasons:
            if r.rule == rule_id:
                return r
        raise EligibilityError(
            "rule",
            "not evaluated for this therapy",
            rule_id,
            f"use one of {', '.join(r.rule for r in self.reasons)}",
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (for ``assessment.json`` and the registry)."""
        return {
            "therapy": self.therapy,
            "eligible": self.eligible,
            "verdict": self.verdict,
            "failed": list(self.failed),
            "missing": list(self.missing),
            "not_assessed": list(self.not_assessed),
            "warnings": list(self.warnings),
            "reasons": [r.to_dict() for r in self.reasons],
            "criteria_version": self.criteria_version,
        }


def _verdict(reasons: Iterable[Reason]) -> bool | None:
    items = list(reasons)
    if any(r.effect == "exclude" and r.passed is False for r in items):
        return False
    if any(r.required and r.passed is None for r in items):
        return None
    return True


class _Evaluator:
    """Builds reasons for one therapy from the table."""

    def __init__(self, criteria: Criteria) -> None:
        self.criteria = criteria
        self.reasons: list[Reason] = []
        self.notes: list[str] = []

    def add(
        self,
        rule_id: str,
        passed: bool | None,
        value: Any,
        detail: str,
        threshold_key: str | None = None,
    ) -> None:
        rule = self.criteria.rule(rule_id)
        used = {k: self.criteria.sourced(k) for k in rule.thresholds}
        key = threshold_key or (rule.thresholds[0] if rule.thresholds else None)
        sourced = self.criteria.sourced(key) if key else None
        self.reasons.append(
            Reason(
                rule_id,
                passed,
                rule.effect,
                rule.required,
                value,
                None if sourced is None else float(sourced.value),  # type: ignore[arg-type]
                "" if sourced is None else sourced.unit,
                rule.text,
                detail,
                rule.source,
                rule.section,
                rule.status,
                MappingProxyType(used),
            )
        )

    def compare(self, rule_id: str, value: float | None, key: str, kind: str, name: str) -> None:
        """``kind``: "min" (value >= t), "max" (value <= t) or "above" (value > t)."""
        s = self.criteria.sourced(key)
        t = float(s.value)  # type: ignore[arg-type]
        if value is None:
            self.add(rule_id, None, None, f"missing: give {name}", key)
            return
        passed = {"min": value >= t, "max": value <= t, "above": value > t}[kind]
        sign = {"min": ">=", "max": "<=", "above": ">"}[kind]
        verdict = "meets" if passed else "fails"
        self.add(
            rule_id,
            passed,
            value,
            f"{name} = {value:g} {s.unit}: {verdict} {sign} {t:g} {s.unit} ({s.source})",
            key,
        )

    def flag(self, rule_id: str, bad: bool | None, name: str, what: str) -> None:
        """A rule that fails when the flag ``bad`` is True."""
        if bad is None:
            self.add(rule_id, None, None, f"missing: give {name}")
        else:
            self.add(rule_id, not bad, bad, f"{what}: {'yes' if bad else 'no'}")

    def result(self, therapy: str) -> Eligibility:
        warnings = [
            f"{r.rule}: {r.detail}"
            for r in self.reasons
            if r.effect == "warn" and r.passed is False
        ]
        return Eligibility(
            therapy,
            _verdict(self.reasons),
            tuple(self.reasons),
            tuple(warnings + self.notes),
            self.criteria.version,
        )


def _renal_value(labs: Labs) -> tuple[float | None, str]:
    if labs.measured_gfr_ml_min is not None:
        return labs.measured_gfr_ml_min, "labs.measured_gfr_ml_min"
    return labs.creatinine_clearance_ml_min, "labs.creatinine_clearance_ml_min"


def _renal(ev: _Evaluator, rule_id: str, labs: Labs, key: str) -> None:
    value, name = _renal_value(labs)
    if value is None and labs.egfr_ml_min_1_73m2 is not None:
        name = (
            "labs.creatinine_clearance_ml_min or labs.measured_gfr_ml_min (an eGFR per "
            "1.73 m^2 is not the criterion)"
        )
    ev.compare(rule_id, value, key, "min", name)


def _check_type(value: Any, cls: type, name: str) -> Any:
    if value is None:
        return cls()
    if not isinstance(value, cls):
        raise EligibilityError(
            name, f"must be a {cls.__name__}", value, f"build one with {cls.__name__}(...)"
        )
    return value


# ----------------------------------------------------------------------------------------
# SSA withdrawal


def _ssa_reasons(ev: _Evaluator, policy: SsaPolicy, history: History) -> None:
    long_rule, short_rule = _SSA_RULES
    _interval(
        ev,
        long_rule,
        history.days_since_last_la_ssa,
        policy.long_acting_min_d,
        policy,
        "history.days_since_last_la_ssa",
        "d",
    )
    _interval(
        ev,
        short_rule,
        history.hours_since_last_sa_ssa,
        policy.short_acting_min_h,
        policy,
        "history.hours_since_last_sa_ssa",
        "h",
    )


def _interval(
    ev: _Evaluator,
    rule_id: str,
    value: float | None,
    minimum: Sourced | None,
    policy: SsaPolicy,
    name: str,
    unit: str,
) -> None:
    rule = ev.criteria.rule(rule_id)
    threshold: float | None = None
    if minimum is None:
        # The policy gives no minimum interval (NETSPOT: "image just prior to the next dose").
        note = policy.long_acting_note if rule_id == _SSA_RULES[0] else "no rule in the policy"
        passed = True if value == math.inf else None
        detail = f"{policy.context}: {note} ({policy.source})"
        source, section, status, used = policy.source, policy.section, policy.status, {}
    else:
        threshold = float(minimum.value)  # type: ignore[arg-type]
        source, section, status = minimum.source, minimum.section, minimum.status
        kind = "long_acting_min" if rule_id == _SSA_RULES[0] else "short_acting_min"
        used = {f"ssa_policy.{policy.name}.{kind}": minimum}
        if value is None:
            passed, detail = None, f"missing: give {name} (math.inf if never given)"
        else:
            passed = value >= threshold
            shown = "never" if value == math.inf else f"{value:g} {unit}"
            outcome = (
                "compliant"
                if passed
                else "NOT compliant: uptake may be under-estimated; record in the report"
            )
            detail = (
                f"{policy.context}: {shown} since the last dose, policy >= "
                f"{threshold:g} {unit} ({source}); {outcome}"
            )
    ev.reasons.append(
        Reason(
            rule_id,
            passed,
            rule.effect,
            rule.required,
            value,
            threshold,
            unit,
            rule.text,
            detail,
            source,
            section,
            status,
            MappingProxyType(used),
        )
    )


def ssa_withdrawal(
    policy: str = "lutathera",
    history: History | None = None,
    *,
    criteria: Criteria | None = None,
) -> tuple[Reason, Reason]:
    """Check somatostatin-analogue withdrawal against a policy of clinical.md §1.10.

    Non-compliance is flagged (``passed=False``, effect ``"warn"``), never blocking:
    a clinical override is allowed, but uptake (Krenning/SUV) may be under-estimated
    and the report must say so.

    Parameters
    ----------
    policy : str, default "lutathera"
        ``"lutathera"`` (177Lu-DOTATATE: LA-SSA >= 4 weeks, short-acting >= 24 h),
        ``"netspot"`` (68Ga-DOTATATE), ``"detectnet"`` (64Cu-DOTATATE),
        ``"department"``, ``"octreoscan"`` (111In-pentetreotide).
    history : History, optional
        ``days_since_last_la_ssa`` and ``hours_since_last_sa_ssa`` at scan or
        treatment time (``math.inf``: never given).
    criteria : Criteria, optional

    Returns
    -------
    (Reason, Reason)
        Long-acting and short-acting checks.

    Examples
    --------
    >>> la, sa = ssa_withdrawal("lutathera", History(days_since_last_la_ssa=21.0,
    ...                                               hours_since_last_sa_ssa=48.0))
    >>> la.passed, sa.passed
    (False, True)
    """
    table = _criteria(criteria, None)
    chosen = table.ssa_policy(policy)
    ev = _Evaluator(table)
    _ssa_reasons(ev, chosen, _check_type(history, History, "history"))
    return ev.reasons[0], ev.reasons[1]


# ----------------------------------------------------------------------------------------
# PRRT


def _patient_krenning(
    lesion_grades: Any, others: Any, table: ScoreThresholds
) -> PatientKrenning | None:
    if isinstance(lesion_grades, PatientKrenning):
        return lesion_grades
    if lesion_grades is None:
        return None
    if isinstance(lesion_grades, str | bytes) or not isinstance(lesion_grades, Iterable):
        raise EligibilityError(
            "lesion_grades", "must be a sequence of Krenning grades", lesion_grades
        )
    grades = list(lesion_grades)
    if not grades:
        return None
    try:
        return _score.patient_krenning(grades, others, thresholds=table)
    except ScoreError as exc:
        raise EligibilityError(exc.field, exc.problem, exc.value, exc.fix) from exc


def _uptake_rules(ev: _Evaluator, pk: PatientKrenning | None) -> None:
    if pk is None:
        for rule_id in ("prrt_uptake", "prrt_uptake_preferred", "prrt_uptake_heterogeneous"):
            ev.add(rule_id, None, None, "missing: give the Krenning grade of each target lesion")
        return
    where = f" on {pk.modality}" if pk.modality else ""
    ev.add(
        "prrt_uptake",
        pk.eligible,
        pk.min_grade,
        f"lowest target-lesion Krenning grade {pk.min_grade}{where} (grades {list(pk.grades)})",
    )
    ev.add(
        "prrt_uptake_preferred",
        pk.preferred,
        pk.min_grade,
        f"lowest target-lesion grade {pk.min_grade}",
    )
    grades = list(pk.grades + pk.other_grades)
    ev.add(
        "prrt_uptake_heterogeneous",
        not pk.heterogeneous,
        min(grades),
        f"lowest measurable-lesion grade {min(grades)}",
    )


def _dual_tracer_rules(ev: _Evaluator, flag: bool | None, netpet: NetpetResult | None) -> None:
    if netpet is not None and not isinstance(netpet, NetpetResult):
        raise EligibilityError(
            "netpet", "must be a NetpetResult (imaging.score.netpet_patient)", netpet
        )
    flag = _opt_bool("prrt_eligibility", "fdg_positive_sstr_negative", flag)
    known = [x for x in (flag, None if netpet is None else netpet.grade == "P5") if x is not None]
    if not known:
        ev.add(
            "prrt_sstr_negative_fdg_positive",
            None,
            None,
            "missing: give fdg_positive_sstr_negative or a NETPET result",
        )
    else:
        bad = any(known)
        value = netpet.grade if netpet is not None else flag
        ev.add(
            "prrt_sstr_negative_fdg_positive",
            not bad,
            value,
            f"SSTR-negative/FDG-positive disease: {'yes' if bad else 'no'}",
        )
    if netpet is None:
        ev.add("prrt_dual_tracer", None, None, "no NETPET grade given")
    else:
        ok = netpet.grade in ("P1", "P2", "P3", "P4a")
        ev.add(
            "prrt_dual_tracer",
            ok,
            netpet.grade,
            f"NETPET {netpet.grade}: {netpet.suitability} ({netpet.n_fdg_dominant} lesion(s) "
            f"FDG > SSTR)",
        )


def _albumin(ev: _Evaluator, labs: Labs) -> None:
    s = ev.criteria.sourced("prrt_albumin_min")
    t = float(s.value)  # type: ignore[arg-type]
    albumin, pt = labs.albumin_g_dl, labs.prothrombin_time_normal
    if albumin is not None and albumin >= t:
        passed, detail = True, f"albumin {albumin:g} g/dL >= {t:g} g/dL"
    elif pt is True:
        passed, detail = True, "prothrombin time normal (albumin criterion waived)"
    elif albumin is not None and pt is False:
        passed, detail = (
            False,
            f"albumin {albumin:g} g/dL < {t:g} g/dL and prothrombin time abnormal",
        )
    elif albumin is None:
        passed, detail = None, "missing: give labs.albumin_g_dl (or labs.prothrombin_time_normal)"
    else:
        passed, detail = (
            None,
            (f"albumin {albumin:g} g/dL < {t:g} g/dL: give labs.prothrombin_time_normal"),
        )
    ev.add("prrt_albumin", passed, albumin, detail)


def _performance(ev: _Evaluator, clinical: Clinical) -> None:
    kps_key, ecog_key = "prrt_karnofsky_min", "prrt_ecog_max"
    kps, ecog = clinical.karnofsky_percent, clinical.ecog
    if kps is None and ecog is None:
        ev.add(
            "prrt_performance",
            None,
            None,
            "missing: give clinical.karnofsky_percent or clinical.ecog",
        )
        return
    checks, parts = [], []
    if kps is not None:
        t = ev.criteria.value(kps_key)
        checks.append(kps >= t)
        parts.append(f"Karnofsky {kps:g} % (>= {t:g} %)")
    if ecog is not None:
        t = ev.criteria.value(ecog_key)
        checks.append(ecog <= t)
        parts.append(f"ECOG {ecog} (<= {t:g})")
    value = {"karnofsky_percent": kps, "ecog": ecog}
    ev.add(
        "prrt_performance",
        all(checks),
        value,
        "; ".join(parts),
        kps_key if kps is not None else ecog_key,
    )


def _pregnancy(ev: _Evaluator, clinical: Clinical) -> None:
    flags = {"pregnant": clinical.pregnant, "breast_feeding": clinical.breast_feeding}
    if any(flags.values()):
        passed: bool | None = False
    elif None in flags.values():
        passed = None
    else:
        passed = True
    detail = ", ".join(
        f"{k}: {'unknown' if v is None else ('yes' if v else 'no')}" for k, v in flags.items()
    )
    if passed is None:
        detail = "missing: " + detail
    ev.add("prrt_pregnancy_lactation", passed, flags, detail)


def _renal_risk(ev: _Evaluator, clinical: Clinical, history: History) -> None:
    age_limit = ev.criteria.value("renal_risk_age_min")
    age = clinical.age_years
    factors = {
        "hypertension": clinical.hypertension,
        "diabetes": clinical.diabetes,
        "single_kidney": clinical.single_kidney,
        "prior_nephrotoxic_chemotherapy": history.prior_nephrotoxic_chemotherapy,
        f"age_over_{age_limit:g}_years": None if age is None else age > age_limit,
    }
    present = [k for k, v in factors.items() if v]
    if present:
        passed: bool | None = False
        detail = (
            f"renal risk factors: {', '.join(present)}: plan with the kidney BED limit "
            "for patients with risk factors (28 Gy, clinical.md §5.5; "
            "theranet.therapy.planning risk_factors=True)"
        )
    elif None in factors.values():
        passed = None
        unknown = [k for k, v in factors.items() if v is None]
        detail = f"not assessed: {', '.join(unknown)}"
    else:
        passed, detail = True, "no renal risk factor"
    ev.add("prrt_renal_risk_factors", passed, present, detail)


def _interval_rule(ev: _Evaluator, rule_id: str, days: float | None, key: str) -> None:
    t = ev.criteria.value(key)
    if days is None:
        ev.add(rule_id, None, None, "missing: give history.days_since_systemic_therapy", key)
        return
    shown = "never" if days == math.inf else f"{days:g} d"
    ev.add(rule_id, days >= t, days, f"last systemic therapy: {shown} (>= {t:g} d)", key)


def prrt_eligibility(
    lesion_grades: Iterable[int | KrenningScore] | PatientKrenning | None,
    labs: Labs | None,
    clinical: Clinical | None = None,
    tumour: Tumour | None = None,
    history: History | None = None,
    *,
    other_measurable_grades: Iterable[int | KrenningScore] = (),
    fdg_positive_sstr_negative: bool | None = None,
    netpet: NetpetResult | None = None,
    ssa_policy: str = "lutathera",
    thresholds: Mapping[str, Any] | None = None,
    criteria: Criteria | None = None,
) -> Eligibility:
    """Eligibility for PRRT (177Lu-DOTATATE / 90Y-DOTATOC), clinical.md §5.1.

    Parameters
    ----------
    lesion_grades : iterable of int or KrenningScore, or PatientKrenning, or None
        Krenning grades of the target lesions (0–4) on SRS or SSTR PET.
    labs : Labs or None
    clinical : Clinical, optional
    tumour : Tumour, optional
    history : History, optional
        SSA timing (§1.10), last systemic therapy (§5.4a), prior chemotherapy.
    other_measurable_grades : iterable of int or KrenningScore, optional
        Grades of the other measurable lesions ("heterogeneous" flag, §3.1).
    fdg_positive_sstr_negative : bool, optional
        Whether there is SSTR-negative/FDG-positive disease (§3.3).
    netpet : NetpetResult, optional
        Patient-level NETPET grade; P5 excludes, P4b and P0 give warnings.
    ssa_policy : str, default "lutathera"
        SSA withdrawal policy (:func:`ssa_withdrawal`).
    thresholds : mapping of str to number, optional
        Threshold overrides in internal units, e.g. ``{"prrt_platelets_min": 100.0}``.
    criteria : Criteria, optional
        A site table (:func:`load_criteria`); default the shipped one.

    Returns
    -------
    Eligibility

    Raises
    ------
    EligibilityError
        Wrong input types, a grade outside 0–4, unknown threshold key or policy.
    """
    table = _criteria(criteria, thresholds)
    labs = _check_type(labs, Labs, "labs")
    clinical = _check_type(clinical, Clinical, "clinical")
    tumour = _check_type(tumour, Tumour, "tumour")
    history = _check_type(history, History, "history")
    policy = table.ssa_policy(ssa_policy)
    ev = _Evaluator(table)

    _uptake_rules(ev, _patient_krenning(lesion_grades, other_measurable_grades, table.score))
    _dual_tracer_rules(ev, fdg_positive_sstr_negative, netpet)
    _renal(ev, "prrt_renal", labs, "prrt_creatinine_clearance_min")
    ev.compare(
        "prrt_haemoglobin",
        labs.haemoglobin_g_dl,
        "prrt_haemoglobin_min",
        "min",
        "labs.haemoglobin_g_dl",
    )
    ev.compare("prrt_wbc", labs.wbc_per_nl, "prrt_wbc_min", "min", "labs.wbc_per_nl")
    ev.compare(
        "prrt_platelets",
        labs.platelets_per_nl,
        "prrt_platelets_min",
        "min",
        "labs.platelets_per_nl",
    )
    ev.compare(
        "prrt_bilirubin", labs.bilirubin_x_uln, "prrt_bilirubin_max", "max", "labs.bilirubin_x_uln"
    )
    _albumin(ev, labs)
    _performance(ev, clinical)
    ev.compare(
        "prrt_life_expectancy",
        clinical.life_expectancy_months,
        "prrt_life_expectancy_min",
        "above",
        "clinical.life_expectancy_months",
    )
    _pregnancy(ev, clinical)
    ev.flag(
        "prrt_heart_failure",
        clinical.uncontrolled_heart_failure,
        "clinical.uncontrolled_heart_failure",
        "uncontrolled heart failure (NYHA II-IV)",
    )
    ev.compare(
        "prrt_diabetes",
        labs.fasting_glucose_x_uln,
        "prrt_fasting_glucose_max",
        "max",
        "labs.fasting_glucose_x_uln",
    )
    ev.flag(
        "prrt_brain_metastases",
        clinical.untreated_brain_metastases,
        "clinical.untreated_brain_metastases",
        "untreated brain metastases",
    )
    _interval_rule(
        ev,
        "prrt_systemic_therapy",
        history.days_since_systemic_therapy,
        "prrt_systemic_therapy_interval_min",
    )
    ev.compare("prrt_age", clinical.age_years, "prrt_age_min", "min", "clinical.age_years")
    well = tumour.well_differentiated
    ev.flag(
        "prrt_well_differentiated",
        None if well is None else not well,
        "tumour.well_differentiated",
        "not well-differentiated",
    )
    ev.compare("prrt_ki67", tumour.ki67_percent, "prrt_ki67_max", "max", "tumour.ki67_percent")
    progressive = tumour.progressive_under_ssa
    ev.flag(
        "prrt_progressive",
        None if progressive is None else not progressive,
        "tumour.progressive_under_ssa",
        "not progressive under SSA",
    )
    ev.compare(
        "prrt_labs_recent",
        labs.days_before_treatment,
        "prrt_labs_max_age",
        "max",
        "labs.days_before_treatment",
    )
    _renal_risk(ev, clinical, history)
    ev.flag(
        "prrt_myelotoxic_chemotherapy",
        history.prior_myelotoxic_chemotherapy,
        "history.prior_myelotoxic_chemotherapy",
        "prior myelotoxic chemotherapy",
    )
    _ssa_reasons(ev, policy, history)
    if labs.egfr_ml_min_1_73m2 is not None and _renal_value(labs)[0] is None:
        ev.notes.append(
            "eGFR per 1.73 m^2 given without creatinine clearance: the PRRT "
            "criterion is CrCl/GFR in mL/min (Cockcroft-Gault or measured)"
        )
    return ev.result("prrt")


# ----------------------------------------------------------------------------------------
# 131I-MIBG


def _lesion_counts(avid: Any, total: Any) -> tuple[int | None, int | None]:
    checked = []
    for name, value in (("mibg_avid_lesions", avid), ("total_lesions", total)):
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or value < 0
        ):
            raise EligibilityError(name, "must be an integer >= 0", value)
        checked.append(value)
    if None not in checked and checked[0] > checked[1]:
        raise EligibilityError(
            "mibg_avid_lesions",
            "exceeds total_lesions",
            tuple(checked),
            "count each known lesion once",
        )
    return checked[0], checked[1]


def _drug_rule(ev: _Evaluator, medications: Iterable[str] | None) -> None:
    if medications is None:
        ev.add(
            "mibg_interfering_drugs",
            None,
            None,
            "missing: give the current medications (an empty list if none)",
        )
        return
    names = list(medications) if not isinstance(medications, str | bytes) else medications
    matches = match_drugs(names, criteria=ev.criteria)
    withdraw = [m for m in matches if m.action == "withdraw"]
    review = [m for m in matches if m.action == "review"]
    matched = {m.query for m in matches}
    unknown = [n for n in names if n not in matched]
    detail = (
        "withdraw before therapy: " + "; ".join(m.describe() for m in withdraw)
        if withdraw
        else "no drug to withdraw"
    )
    ev.add("mibg_interfering_drugs", not withdraw, [m.query for m in withdraw], detail)
    for m in review:
        ev.notes.append(f"mibg_interfering_drugs: review {m.describe()}")
    for m in matches:
        if m.action == "none":
            ev.notes.append(f"mibg_interfering_drugs: no significant effect: {m.describe()}")
    if unknown:
        ev.notes.append(
            "mibg_interfering_drugs: not in the drug table (no match is no proof of "
            f"no interference): {', '.join(unknown)}"
        )


def _avid_rules(ev: _Evaluator, avid: int | None, total: int | None) -> None:
    if avid is None:
        ev.add("mibg_avid", None, None, "missing: give mibg_avid_lesions")
    else:
        ev.add("mibg_avid", avid >= 1, avid, f"{avid} MIBG-avid lesion(s) on the diagnostic scan")
    if avid is None or not total:
        ev.add(
            "mibg_avid_fraction",
            None,
            None,
            "missing: give mibg_avid_lesions and total_lesions (>= 1)",
        )
        return
    fraction = avid / total
    t = ev.criteria.value("mibg_avid_fraction_min")
    ev.add(
        "mibg_avid_fraction",
        fraction >= t,
        fraction,
        f"{avid} of {total} known lesions MIBG-avid ({fraction:.0%}; >= {t:.0%} expected)",
    )


def mibg_eligibility(
    mibg_avid_lesions: int | None,
    total_lesions: int | None,
    labs: Labs | None,
    clinical: Clinical | None = None,
    *,
    medications: Iterable[str] | None = None,
    thyroid_blockade: bool | None = None,
    thresholds: Mapping[str, Any] | None = None,
    criteria: Criteria | None = None,
) -> Eligibility:
    """Eligibility for 131I-MIBG therapy (Azedra), clinical.md §3.4, §5.4, §1.11.

    Parameters
    ----------
    mibg_avid_lesions : int or None
        Known lesions with uptake on the diagnostic 123I/131I-MIBG scan.
    total_lesions : int or None
        Known lesions (CT/MRI), >= ``mibg_avid_lesions``.
    labs : Labs or None
        ``platelets_per_nl`` and ``neutrophils_per_nl`` (Azedra minimums 80 and 1.2
        × 10⁹/L); creatinine clearance for the "not studied" warning.
    clinical : Clinical, optional
        ``age_years`` (Azedra indication >= 12 y).
    medications : iterable of str, optional
        Current medications (``[]`` if none; ``None``: not known).
    thyroid_blockade : bool, optional
        Whether thyroid blockade is planned before each dose and continued after.
    thresholds, criteria
        As in :func:`prrt_eligibility`.

    Returns
    -------
    Eligibility
    """
    table = _criteria(criteria, thresholds)
    avid, total = _lesion_counts(mibg_avid_lesions, total_lesions)
    labs = _check_type(labs, Labs, "labs")
    clinical = _check_type(clinical, Clinical, "clinical")
    blockade = _opt_bool("mibg_eligibility", "thyroid_blockade", thyroid_blockade)
    ev = _Evaluator(table)

    _avid_rules(ev, avid, total)
    ev.compare(
        "mibg_platelets",
        labs.platelets_per_nl,
        "mibg_platelets_min",
        "min",
        "labs.platelets_per_nl",
    )
    ev.compare(
        "mibg_anc", labs.neutrophils_per_nl, "mibg_anc_min", "min", "labs.neutrophils_per_nl"
    )
    _drug_rule(ev, medications)
    before = table.sourced("mibg_thyroid_blockade_start_before")
    after = table.sourced("mibg_thyroid_blockade_continue_after")
    ev.flag(
        "mibg_thyroid_blockade",
        None if blockade is None else not blockade,
        "thyroid_blockade",
        f"no thyroid blockade planned (mandatory; Azedra: start >= "
        f"{before.value:g} h before, continue ~{after.value:g} d after each dose)",
    )
    ev.compare("mibg_age", clinical.age_years, "mibg_age_min", "min", "clinical.age_years")
    _renal(ev, "mibg_renal", labs, "mibg_creatinine_clearance_studied_min")
    return ev.result("mibg")
