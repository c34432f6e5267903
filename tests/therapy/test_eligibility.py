"""Tests of theranet.therapy.eligibility: PRRT and 131I-MIBG eligibility, SSA withdrawal,
MIBG interfering drugs.

References (clinical.md, the project's rule specification)
----------------------------------------------------------
* §5.1 PRRT (NETTER-1-type thresholds [NETTER-1; UChicago trial listing; LUTIA protocol]):
  CrCl >= 50 mL/min, Hb >= 8.0 g/dL, WBC >= 2 x 10^9/L, platelets >= 75 x 10^9/L,
  bilirubin <= 3 x ULN, albumin >= 3.0 g/dL unless PT normal, KPS >= 60 [UNCERTAIN] /
  ECOG 0-1 [LUTIA], life expectancy > 3-6 months [IAEA-2013, UNCERTAIN], no pregnancy or
  lactation, no uncontrolled heart failure, fasting glucose <= 2 x ULN, no untreated brain
  metastases; age >= 12 y [Lutathera-PI]; Ki-67 <= 20 % (trial limit).
* §3.1 uptake >= liver (Krenning >= 2) in all target lesions [Lutathera-SmPC, NETTER-1];
  §3.3 FDG+/SSTR- disease (NETPET P5) excludes.
* §5.4a no systemic therapy within 4 weeks [LUTIA protocol].
* §1.10 SSA withdrawal: 177Lu-DOTATATE LA-SSA >= 4 weeks, short-acting >= 24 h
  [Lutathera-PI]; 64Cu-DOTATATE 28 d / 2 d [Detectnet-PI]; flagged, never blocking.
* §3.4/§5.4 Azedra [Azedra-PI]: platelets >= 80 000/uL, ANC >= 1 200/uL, MIBG-avid disease,
  thyroid blockade mandatory; §1.11 interfering drugs [Stefanelli-2013, Jacobson-2015,
  Khafagi-1989]: labetalol (up to 1 week), reserpine, TCAs, CCBs (diltiazem, verapamil,
  nifedipine), sympathomimetics, cocaine, tramadol; digoxin/amiodarone controversial;
  other alpha/beta-blockers without significant effect.

Each threshold test quotes the published value and checks the value at the threshold
(passes) and the adjacent floating-point number on the failing side (fails): the rules
are exact inequalities, so the tolerance is zero.
"""

from __future__ import annotations

import dataclasses
import json
import math
import tomllib
from importlib import resources
from pathlib import Path

import pytest

from theranet.imaging import score as sc
from theranet.therapy import eligibility as el
from theranet.therapy.eligibility import (
    Clinical,
    EligibilityError,
    History,
    Labs,
    Tumour,
    interfering_drugs,
    load_criteria,
    match_drugs,
    mibg_eligibility,
    prrt_eligibility,
    ssa_withdrawal,
)

STATUSES = ("verified", "unconfirmed", "uncertain")


def below(x: float) -> float:
    return math.nextafter(x, -math.inf)


def above(x: float) -> float:
    return math.nextafter(x, math.inf)


# A synthetic patient who meets every PRRT criterion.
LABS = Labs(
    creatinine_clearance_ml_min=90.0,
    haemoglobin_g_dl=13.0,
    wbc_per_nl=6.0,
    neutrophils_per_nl=4.0,
    platelets_per_nl=250.0,
    bilirubin_x_uln=0.5,
    albumin_g_dl=4.2,
    fasting_glucose_x_uln=1.0,
    days_before_treatment=7.0,
)
CLINICAL = Clinical(
    karnofsky_percent=90.0,
    ecog=0,
    life_expectancy_months=36.0,
    age_years=55.0,
    pregnant=False,
    breast_feeding=False,
    uncontrolled_heart_failure=False,
    untreated_brain_metastases=False,
    hypertension=False,
    diabetes=False,
    single_kidney=False,
)
TUMOUR = Tumour(well_differentiated=True, ki67_percent=5.0, progressive_under_ssa=True)
HISTORY = History(
    days_since_last_la_ssa=35.0,
    hours_since_last_sa_ssa=48.0,
    days_since_systemic_therapy=math.inf,
    prior_nephrotoxic_chemotherapy=False,
    prior_myelotoxic_chemotherapy=False,
)


def prrt(grades=(3, 4), labs=LABS, clinical=CLINICAL, tumour=TUMOUR, history=HISTORY, **kw):
    kw.setdefault("fdg_positive_sstr_negative", False)
    if isinstance(grades, tuple):
        grades = list(grades)
    return prrt_eligibility(grades, labs, clinical, tumour, history, **kw)


def test_reference_patient_is_eligible_without_warnings():
    result = prrt()
    assert result.eligible is True and result.verdict == "eligible"
    assert result.failed == () and result.missing == () and result.warnings == ()
    json.dumps(result.to_dict())  # serialisable for assessment.json


# ----------------------------------------------------------------------------------------
# shipped table: published values (exact) and provenance


def test_shipped_prrt_thresholds_match_clinical_reference():
    c = load_criteria()
    expected = {
        "prrt_creatinine_clearance_min": (50.0, "mL/min"),
        "prrt_haemoglobin_min": (8.0, "g/dL"),
        "prrt_wbc_min": (2.0, "10^9/L"),
        "prrt_platelets_min": (75.0, "10^9/L"),
        "prrt_bilirubin_max": (3.0, "xULN"),
        "prrt_albumin_min": (3.0, "g/dL"),
        "prrt_karnofsky_min": (60.0, "%"),
        "prrt_ecog_max": (1, "grade"),
        "prrt_life_expectancy_min": (3.0, "month"),
        "prrt_fasting_glucose_max": (2.0, "xULN"),
        "prrt_systemic_therapy_interval_min": (28.0, "d"),  # 4 weeks
        "prrt_age_min": (12.0, "year"),
    }
    for key, (value, unit) in expected.items():
        assert (c.value(key), c.sourced(key).unit) == (value, unit), key
    assert c.sourced("prrt_karnofsky_min").status == "uncertain"
    assert c.sourced("prrt_life_expectancy_min").status == "uncertain"


def test_shipped_azedra_thresholds_converted_from_per_microlitre():
    # Azedra-PI: platelets >= 80 000/uL = 80 x 10^9/L; ANC >= 1 200/uL = 1.2 x 10^9/L.
    c = load_criteria()
    assert c.value("mibg_platelets_min") == pytest.approx(80.0, rel=1e-12)
    assert c.value("mibg_anc_min") == pytest.approx(1.2, rel=1e-12)
    assert c.sourced("mibg_anc_min").source == "Azedra-PI"


def _iter_sourced_rows(doc):
    """(where, row) for every table row that must carry a source."""
    for section in ("score", "threshold"):
        for key, row in doc[section].items():
            yield f"{section}.{key}", row
    for group in ("rule", "ssa_policy", "drug"):
        for name, row in doc[group].items():
            yield f"{group}.{name}", row
            for key, value in row.items():
                if isinstance(value, dict):
                    yield f"{group}.{name}.{key}", value


def test_every_toml_row_has_a_source():
    doc = tomllib.loads(resources.files("theranet").joinpath("data/eligibility.toml").read_text())
    rows = list(_iter_sourced_rows(doc))
    assert len(rows) > 80
    for where, row in rows:
        assert isinstance(row.get("source"), str) and row["source"].strip(), where
        assert isinstance(row.get("section"), str) and "clinical.md" in row["section"], where
        assert row.get("status") in STATUSES, where
    for name, row in doc["drug"].items():
        assert row["aliases_source"].strip() and row["aliases_status"] in STATUSES, name


def test_loaded_criteria_keep_the_sources():
    c = load_criteria()
    for key in c.keys():
        assert c.sourced(key).source.strip(), key
    assert {r.therapy for r in c.rules.values()} == {"prrt", "mibg", "ssa"}
    assert all(r.source.strip() for r in c.rules.values())


# ----------------------------------------------------------------------------------------
# each PRRT exclusion failing alone (threshold quoted with its source)

FAILING_ALONE = [
    # rule, change, published threshold, source ID in the reason
    ("prrt_uptake", {"grades": (1, 4)}, 2, "Lutathera-SmPC"),
    ("prrt_sstr_negative_fdg_positive", {"fdg_positive_sstr_negative": True}, None, "NETPET"),
    ("prrt_renal", {"labs": {"creatinine_clearance_ml_min": below(50.0)}}, 50.0, "NETTER-1"),
    ("prrt_haemoglobin", {"labs": {"haemoglobin_g_dl": below(8.0)}}, 8.0, "NETTER-1"),
    ("prrt_wbc", {"labs": {"wbc_per_nl": below(2.0)}}, 2.0, "NETTER-1"),
    ("prrt_platelets", {"labs": {"platelets_per_nl": below(75.0)}}, 75.0, "NETTER-1"),
    ("prrt_bilirubin", {"labs": {"bilirubin_x_uln": above(3.0)}}, 3.0, "NETTER-1"),
    (
        "prrt_albumin",
        {"labs": {"albumin_g_dl": below(3.0), "prothrombin_time_normal": False}},
        3.0,
        "NETTER-1",
    ),
    ("prrt_performance", {"clinical": {"karnofsky_percent": 50.0}}, 60.0, "NETTER-1"),
    ("prrt_performance", {"clinical": {"karnofsky_percent": None, "ecog": 2}}, 1.0, "LUTIA"),
    ("prrt_life_expectancy", {"clinical": {"life_expectancy_months": 3.0}}, 3.0, "IAEA-2013"),
    ("prrt_pregnancy_lactation", {"clinical": {"pregnant": True}}, None, "NETTER-1"),
    ("prrt_pregnancy_lactation", {"clinical": {"breast_feeding": True}}, None, "NETTER-1"),
    ("prrt_heart_failure", {"clinical": {"uncontrolled_heart_failure": True}}, None, "NETTER-1"),
    ("prrt_diabetes", {"labs": {"fasting_glucose_x_uln": above(2.0)}}, 2.0, "NETTER-1"),
    ("prrt_brain_metastases", {"clinical": {"untreated_brain_metastases": True}}, None, "LUTIA"),
    ("prrt_systemic_therapy", {"history": {"days_since_systemic_therapy": 27.0}}, 28.0, "LUTIA"),
    ("prrt_age", {"clinical": {"age_years": below(12.0)}}, 12.0, "Lutathera-PI"),
    ("prrt_well_differentiated", {"tumour": {"well_differentiated": False}}, None, "NETTER-1"),
]


def _apply(change: dict) -> dict:
    kwargs = {}
    bases = {"labs": LABS, "clinical": CLINICAL, "tumour": TUMOUR, "history": HISTORY}
    for key, value in change.items():
        kwargs[key] = dataclasses.replace(bases[key], **value) if key in bases else value
    return kwargs


@pytest.mark.parametrize(
    ("rule", "change", "threshold", "source"),
    FAILING_ALONE,
    ids=[f"{r}-{i}" for i, (r, *_) in enumerate(FAILING_ALONE)],
)
def test_prrt_criterion_failing_alone_excludes(rule, change, threshold, source):
    result = prrt(**_apply(change))
    assert result.eligible is False and result.verdict == "not eligible"
    assert result.failed == (rule,)
    reason = result.reason(rule)
    assert reason.passed is False and reason.effect == "exclude"
    assert source in reason.source
    if threshold is not None:
        assert reason.threshold == threshold


@pytest.mark.parametrize(
    "change",
    [
        {"grades": (2, 2)},
        {"labs": {"creatinine_clearance_ml_min": 50.0}},
        {"labs": {"haemoglobin_g_dl": 8.0}},
        {"labs": {"wbc_per_nl": 2.0}},
        {"labs": {"platelets_per_nl": 75.0}},
        {"labs": {"bilirubin_x_uln": 3.0}},
        {"labs": {"albumin_g_dl": 3.0, "prothrombin_time_normal": False}},
        {"clinical": {"karnofsky_percent": 60.0, "ecog": 1}},
        {"clinical": {"life_expectancy_months": above(3.0)}},
        {"labs": {"fasting_glucose_x_uln": 2.0}},
        {"history": {"days_since_systemic_therapy": 28.0}},
        {"clinical": {"age_years": 12.0}},
    ],
)
def test_prrt_thresholds_pass_at_the_boundary(change):
    assert prrt(**_apply(change)).eligible is True


# ----------------------------------------------------------------------------------------
# missing information never makes a patient eligible


@pytest.mark.parametrize(
    ("field", "rule"),
    [
        ("platelets_per_nl", "prrt_platelets"),
        ("haemoglobin_g_dl", "prrt_haemoglobin"),
        ("wbc_per_nl", "prrt_wbc"),
        ("creatinine_clearance_ml_min", "prrt_renal"),
        ("bilirubin_x_uln", "prrt_bilirubin"),
    ],
)
def test_missing_lab_is_undetermined(field, rule):
    result = prrt(labs=dataclasses.replace(LABS, **{field: None}))
    assert result.eligible is None and result.verdict == "undetermined"
    assert result.missing == (rule,)
    assert field in result.reason(rule).detail


def test_missing_inputs_listed_and_exclusion_still_wins():
    result = prrt_eligibility([3, 4], Labs(), Clinical())
    assert result.eligible is None
    assert {"prrt_renal", "prrt_platelets", "prrt_performance", "prrt_pregnancy_lactation",
            "prrt_sstr_negative_fdg_positive"} <= set(result.missing)  # fmt: skip
    excluded = prrt_eligibility([3, 4], Labs(platelets_per_nl=50.0), Clinical())
    assert excluded.eligible is False and excluded.failed == ("prrt_platelets",)


def test_missing_grades_undetermined_and_optional_rules_not_assessed():
    assert prrt(grades=()).missing == ("prrt_uptake",)
    result = prrt(tumour=None, history=None)
    assert result.eligible is True
    assert {"prrt_well_differentiated", "prrt_systemic_therapy"} <= set(result.not_assessed)


def test_albumin_exception_for_normal_prothrombin_time():
    low = {"albumin_g_dl": 2.5}
    assert prrt(labs=dataclasses.replace(LABS, **low, prothrombin_time_normal=True)).eligible
    unknown = prrt(labs=dataclasses.replace(LABS, **low))
    assert unknown.eligible is None and unknown.missing == ("prrt_albumin",)


def test_renal_measured_gfr_takes_precedence_and_egfr_is_not_the_criterion():
    measured = dataclasses.replace(LABS, creatinine_clearance_ml_min=45.0, measured_gfr_ml_min=55.0)
    assert prrt(labs=measured).eligible is True
    egfr_only = dataclasses.replace(LABS, creatinine_clearance_ml_min=None, egfr_ml_min_1_73m2=80.0)
    result = prrt(labs=egfr_only)
    assert result.eligible is None and result.missing == ("prrt_renal",)
    assert any("eGFR" in w for w in result.warnings)


def test_performance_both_scores_must_pass():
    mixed = dataclasses.replace(CLINICAL, karnofsky_percent=80.0, ecog=2)
    assert prrt(clinical=mixed).failed == ("prrt_performance",)
    ecog_only = dataclasses.replace(CLINICAL, karnofsky_percent=None, ecog=1)
    assert prrt(clinical=ecog_only).eligible is True


# ----------------------------------------------------------------------------------------
# uptake, dual tracer, warnings


def test_uptake_preferred_and_heterogeneous_are_warnings():
    result = prrt(grades=(2, 4), other_measurable_grades=[1])
    assert result.eligible is True
    assert result.reason("prrt_uptake_preferred").passed is False
    assert result.reason("prrt_uptake_heterogeneous").passed is False
    assert len(result.warnings) == 2


def test_uptake_accepts_scores_and_patient_summary():
    s = sc.krenning_score(12.0, 10.0, 20.0, modality="PET")
    assert prrt(grades=[s, s]).reason("prrt_uptake").detail.endswith("(grades [3, 3])")
    assert prrt(grades=sc.patient_krenning([1, 3])).failed == ("prrt_uptake",)
    with pytest.raises(EligibilityError):
        prrt(grades=(3, 5))


def test_netpet_p5_excludes_and_p4b_warns():
    p5 = sc.netpet_patient(["P1", "P5"])
    result = prrt(fdg_positive_sstr_negative=None, netpet=p5)
    assert result.failed == ("prrt_sstr_negative_fdg_positive",)
    p4b = sc.netpet_patient(["P4"] * 3)
    result = prrt(fdg_positive_sstr_negative=None, netpet=p4b)
    assert result.eligible is True
    assert result.reason("prrt_dual_tracer").passed is False
    assert "maybe suitable" in result.warnings[0]


def test_ki67_progression_and_renal_risk_are_warnings():
    tumour = dataclasses.replace(TUMOUR, ki67_percent=25.0, progressive_under_ssa=False)
    clinical = dataclasses.replace(CLINICAL, hypertension=True)
    result = prrt(tumour=tumour, clinical=clinical)
    assert result.eligible is True
    assert {r.rule for r in result.reasons if r.passed is False} == {
        "prrt_ki67", "prrt_progressive", "prrt_renal_risk_factors"
    }  # fmt: skip
    assert result.reason("prrt_ki67").threshold == 20.0
    assert "28 Gy" in result.reason("prrt_renal_risk_factors").detail


def test_renal_risk_age_over_60():
    result = prrt(clinical=dataclasses.replace(CLINICAL, age_years=61.0))
    assert "age_over_60_years" in result.reason("prrt_renal_risk_factors").detail


# ----------------------------------------------------------------------------------------
# SSA withdrawal (clinical.md §1.10)


def test_lutathera_ssa_policy_4_weeks_and_24_hours():
    ok = History(days_since_last_la_ssa=28.0, hours_since_last_sa_ssa=24.0)
    la, sa = ssa_withdrawal("lutathera", ok)
    assert (la.passed, sa.passed) == (True, True)
    assert (la.threshold, sa.threshold) == (28.0, 24.0) and la.source == "Lutathera-PI"
    la, sa = ssa_withdrawal("lutathera", History(below(28.0), below(24.0)))
    assert (la.passed, sa.passed) == (False, False) and la.effect == "warn"


def test_detectnet_policy_and_never_given():
    la, sa = ssa_withdrawal("Detectnet", History(27.0, 47.0))
    assert (la.threshold, sa.threshold) == (28.0, 48.0)  # 28 d and 2 d = 48 h
    assert (la.passed, sa.passed) == (False, False)
    la, sa = ssa_withdrawal("detectnet", History(math.inf, math.inf))
    assert (la.passed, sa.passed) == (True, True)


def test_netspot_long_acting_has_no_interval():
    la, _ = ssa_withdrawal("netspot", History(10.0, 30.0))
    assert la.passed is None and "just prior" in la.detail and la.source == "NETSPOT-PI"


def test_ssa_noncompliance_never_blocks_prrt():
    result = prrt(history=dataclasses.replace(HISTORY, days_since_last_la_ssa=7.0))
    assert result.eligible is True
    assert result.reason("ssa_long_acting").passed is False
    assert "NOT compliant" in result.warnings[0]


def test_unknown_ssa_policy():
    with pytest.raises(EligibilityError, match="SSA policy"):
        ssa_withdrawal("weekly")


# ----------------------------------------------------------------------------------------
# overrides and site tables


def test_threshold_override_is_applied_and_recorded():
    labs = dataclasses.replace(LABS, platelets_per_nl=90.0)
    result = prrt(labs=labs, thresholds={"prrt_platelets_min": 100.0})
    assert result.failed == ("prrt_platelets",)
    used = result.reason("prrt_platelets").thresholds["prrt_platelets_min"]
    assert used.source == "caller override" and "75" in used.note


def test_score_threshold_override_through_eligibility():
    result = prrt(grades=(2, 3), thresholds={"krenning_eligible_min_grade": 3})
    assert result.failed == ("prrt_uptake",)


@pytest.mark.parametrize(
    "overrides",
    [
        {"prrt_platelet_min": 100.0},  # misspelt key
        {"prrt_platelets_min": -1.0},
        {"prrt_platelets_min": math.nan},
        {"prrt_ecog_max": 1.5},
        {"krenning_eligible_min_grade": 7},
        {"mibg_avid_fraction_min": 2.0},
    ],
)
def test_bad_overrides_raise(overrides):
    with pytest.raises(EligibilityError):
        prrt(thresholds=overrides)


def _shipped_text() -> str:
    return resources.files("theranet").joinpath("data/eligibility.toml").read_text()


def test_site_table_is_loaded(tmp_path: Path):
    text = _shipped_text().replace(
        'prrt_platelets_min = { value = 75.0, unit = "10^9/L"',
        'prrt_platelets_min = { value = 100000.0, unit = "/uL"',
    )
    path = tmp_path / "site.toml"
    path.write_text(text)
    c = load_criteria(path)
    assert c.value("prrt_platelets_min") == pytest.approx(100.0, rel=1e-12)
    assert prrt(labs=dataclasses.replace(LABS, platelets_per_nl=90.0), criteria=c).eligible is False


@pytest.mark.parametrize(
    ("old", "new", "match"),
    [
        ("[rule.prrt_age]", "[rule.prrt_age_limit]", "rule ids"),
        ('source = "Azedra-PI"\nsection', "section", "source"),
        ('effect = "warn"', 'effect = "maybe"', "effect"),
        ('action = "review"', 'action = "ignore"', "action"),
    ],
)
def test_site_table_errors(tmp_path: Path, old, new, match):
    text = _shipped_text()
    assert old in text
    path = tmp_path / "site.toml"
    path.write_text(text.replace(old, new, 1))
    with pytest.raises(EligibilityError, match=match):
        load_criteria(path)


# ----------------------------------------------------------------------------------------
# input validation


@pytest.mark.parametrize(
    ("cls", "kwargs", "field"),
    [
        (Labs, {"platelets_per_nl": -1.0}, "labs.platelets_per_nl"),
        (Labs, {"haemoglobin_g_dl": math.nan}, "labs.haemoglobin_g_dl"),
        (Labs, {"creatinine_clearance_ml_min": math.inf}, "labs.creatinine_clearance_ml_min"),
        (Labs, {"wbc_per_nl": "5"}, "labs.wbc_per_nl"),
        (Labs, {"wbc_per_nl": True}, "labs.wbc_per_nl"),
        (Labs, {"prothrombin_time_normal": 1}, "labs.prothrombin_time_normal"),
        (Clinical, {"ecog": 6}, "clinical.ecog"),
        (Clinical, {"karnofsky_percent": 110.0}, "clinical.karnofsky_percent"),
        (Clinical, {"pregnant": "no"}, "clinical.pregnant"),
        (Tumour, {"ki67_percent": 101.0}, "tumour.ki67_percent"),
        (History, {"days_since_last_la_ssa": -math.inf}, "history.days_since_last_la_ssa"),
    ],
)
def test_bad_inputs_raise_typed_errors(cls, kwargs, field):
    with pytest.raises(EligibilityError) as info:
        cls(**kwargs)
    assert info.value.field == field and isinstance(info.value, ValueError)


def test_wrong_argument_types():
    with pytest.raises(EligibilityError, match="Labs"):
        prrt(labs={"platelets_per_nl": 100.0})
    with pytest.raises(EligibilityError):
        prrt(grades="34")
    with pytest.raises(EligibilityError):
        prrt(fdg_positive_sstr_negative="no")


# ----------------------------------------------------------------------------------------
# 131I-MIBG (Azedra) eligibility and interfering drugs


def mibg(avid=3, total=3, labs=LABS, clinical=CLINICAL, **kw):
    kw.setdefault("medications", [])
    kw.setdefault("thyroid_blockade", True)
    return mibg_eligibility(avid, total, labs, clinical, **kw)


def test_mibg_reference_patient_is_eligible():
    result = mibg()
    assert result.eligible is True and result.warnings == ()


@pytest.mark.parametrize(
    ("field", "threshold", "rule"),
    [("platelets_per_nl", 80.0, "mibg_platelets"), ("neutrophils_per_nl", 1.2, "mibg_anc")],
)
def test_azedra_haematology_minimums(field, threshold, rule):
    # Azedra-PI: do not administer if platelets < 80 000/uL or ANC < 1 200/uL.
    at = mibg(labs=dataclasses.replace(LABS, **{field: threshold}))
    assert at.eligible is True
    low = mibg(labs=dataclasses.replace(LABS, **{field: below(threshold)}))
    assert low.failed == (rule,)
    assert low.reason(rule).source == "Azedra-PI"
    assert low.reason(rule).threshold == pytest.approx(threshold, rel=1e-12)
    missing = mibg(labs=dataclasses.replace(LABS, **{field: None}))
    assert missing.eligible is None and missing.missing == (rule,)


def test_mibg_scan_negative_excludes_and_partial_avidity_warns():
    assert mibg(avid=0, total=4).failed == ("mibg_avid",)
    partial = mibg(avid=3, total=4)
    assert partial.eligible is True and partial.reason("mibg_avid_fraction").passed is False
    with pytest.raises(EligibilityError, match="total_lesions"):
        mibg(avid=5, total=4)


def test_mibg_thyroid_blockade_is_mandatory():
    assert mibg(thyroid_blockade=False).failed == ("mibg_thyroid_blockade",)
    assert mibg(thyroid_blockade=None).missing == ("mibg_thyroid_blockade",)


def test_mibg_medications_unknown_is_undetermined_and_labetalol_excludes():
    assert mibg(medications=None).missing == ("mibg_interfering_drugs",)
    result = mibg(medications=["Labetalol 100 mg", "paracetamol"])
    assert result.failed == ("mibg_interfering_drugs",)
    assert "up to 168 h" in result.reason("mibg_interfering_drugs").detail  # 1 week
    assert any("paracetamol" in w for w in result.warnings)


def test_mibg_age_and_renal_warning():
    assert mibg(clinical=dataclasses.replace(CLINICAL, age_years=11.0)).failed == ("mibg_age",)
    low = mibg(labs=dataclasses.replace(LABS, creatinine_clearance_ml_min=below(30.0)))
    assert low.eligible is True and low.reason("mibg_renal").passed is False


@pytest.mark.parametrize(
    ("name", "drug_class", "action"),
    [
        # generic names as listed in clinical.md §1.11
        ("labetalol", "labetalol", "withdraw"),
        ("reserpine", "reserpine", "withdraw"),
        ("cocaine", "cocaine", "withdraw"),
        ("tramadol", "tramadol", "withdraw"),
        ("diltiazem", "calcium_channel_blockers", "withdraw"),
        ("verapamil", "calcium_channel_blockers", "withdraw"),
        ("nifedipine", "calcium_channel_blockers", "withdraw"),
        ("digoxin", "digoxin", "review"),
        ("amiodarone", "amiodarone", "review"),
        # case-insensitive, class names, brand names and plurals
        ("LABETALOL", "labetalol", "withdraw"),
        ("Trandate", "labetalol", "withdraw"),
        ("Cardizem", "calcium_channel_blockers", "withdraw"),
        ("Calcium-channel blockers", "calcium_channel_blockers", "withdraw"),
        ("tricyclic antidepressants", "tricyclic_antidepressants", "withdraw"),
        ("amitriptyline", "tricyclic_antidepressants", "withdraw"),
        ("Sudafed", "sympathomimetics", "withdraw"),
        ("nasal decongestant", "sympathomimetics", "withdraw"),
        ("some antipsychotic", "antipsychotics", "review"),
    ],
)
def test_drug_matching(name, drug_class, action):
    (match,) = interfering_drugs([name])
    assert (match.drug_class.name, match.action) == (drug_class, action)
    assert match.source.strip()


def test_alpha_beta_blockers_other_than_labetalol_do_not_interfere():
    (match,) = match_drugs(["propranolol"])
    assert match.action == "none" and match.source == "Khafagi-1989"
    assert interfering_drugs(["propranolol", "doxazosin"]) == []
    assert mibg(medications=["propranolol"]).eligible is True


def test_listed_names_verified_added_names_unconfirmed():
    assert match_drugs(["nifedipine"])[0].name_status == "verified"
    assert match_drugs(["Adalat"])[0].name_status == "unconfirmed"


def test_drug_lookups_and_bad_names():
    assert interfering_drugs(["paracetamol", "omeprazole"]) == []
    c = load_criteria()
    assert c.drug_class("Calcium channel blockers").action == "withdraw"
    assert c.drug_class("labetalol").washout_max_h.value == 168.0  # Khafagi-1989: 1 week
    with pytest.raises(EligibilityError, match="drug class"):
        c.drug_class("antacids")
    with pytest.raises(EligibilityError):
        interfering_drugs("labetalol")
    with pytest.raises(EligibilityError):
        interfering_drugs([""])


def test_unknown_rule_and_threshold_lookups():
    c = el.load_criteria()
    with pytest.raises(EligibilityError):
        c.rule("prrt_magic")
    with pytest.raises(EligibilityError):
        c.value("prrt_magic_min")
    with pytest.raises(EligibilityError):
        prrt().reason("mibg_avid")
