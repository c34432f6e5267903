"""Tests of theranet.imaging.score: Krenning grade, SSTR PET ratios, NETPET, MIBG extent.

References
----------
* clinical.md §3.1 (project reference) [Krenning]: grades 0-4 vs liver and spleen (kidney
  when there is no spleen); semi-automatic rule 0 not visible, 1 U < k1 L, 2 k1 L <= U <= L,
  3 L < U <= S, 4 U > S with k1 = 0.5 [UNCERTAIN]; patient rule: eligible if all targets
  >= 2, preferred if >= 3, heterogeneous if any measurable lesion <= 1
  [Lutathera-SmPC §4.2, NETTER-1, Radiopaedia].
* clinical.md §3.2 [Kratochwil-2015] (68Ga-DOTATOC): TLR = SUVmax,lesion / SUVmean,liver
  > 2.2; lesion SUVmax > 16.4 predicts response (sens 95 %, spec 60 %); mean SUVmax 33.6
  (responders) vs 18.0 (non-responders); TSR 1.90 vs 1.20.
* clinical.md §3.3 [NETPET] table P0-P5, P4a (1-2 lesions FDG > SSTR) / P4b (>= 3), patient
  grade = worst lesion; Karfis C1-C3.
* clinical.md §3.4 [Curie/SIOPEN]: Curie 10 segments x 0-3 (total 0-30); SIOPEN 12 regions
  x 0-6 (total 0-72); Curie <= 2 and SIOPEN <= 4 favourable.

The rules are exact inequalities: boundary tests use the published numbers themselves and
the adjacent floating-point numbers (``math.nextafter``), i.e. zero tolerance.
"""

from __future__ import annotations

import math
import tomllib
from importlib import resources
from pathlib import Path

import pytest

from theranet.errors import TheranetError
from theranet.imaging import score as sc
from theranet.imaging.score import ScoreError

LIVER = 10.0
SPLEEN = 20.0


def below(x: float) -> float:
    return math.nextafter(x, -math.inf)


def above(x: float) -> float:
    return math.nextafter(x, math.inf)


# ----------------------------------------------------------------------------------------
# shipped thresholds (published values, clinical.md §3.1-§3.4; exact)


def test_shipped_thresholds_match_clinical_reference():
    t = sc.score_thresholds()
    assert t["krenning_k1"].value == 0.5 and t["krenning_k1"].status == "uncertain"
    assert t.value("krenning_eligible_min_grade") == 2
    assert "Lutathera-SmPC" in t["krenning_eligible_min_grade"].source
    assert t.value("krenning_preferred_min_grade") == 3
    assert t.value("krenning_heterogeneous_max_grade") == 1
    assert t.value("tlr_min") == 2.2 and t["tlr_min"].source == "Kratochwil-2015"
    assert t.value("suvmax_response_min") == 16.4
    assert t.tracer("tlr_min") == t.tracer("suvmax_response_min") == "68Ga-DOTATOC"
    assert t.value("netpet_p4b_min_lesions") == 3
    assert t.value("curie_favourable_max") == 2 and t.value("siopen_favourable_max") == 4


def test_every_score_row_has_source_section_and_status():
    doc = tomllib.loads(resources.files("theranet").joinpath("data/eligibility.toml").read_text())
    for key, row in doc["score"].items():
        for field in ("value", "unit", "source", "section", "status"):
            assert row.get(field) not in (None, ""), (key, field)
        assert row["status"] in ("verified", "unconfirmed", "uncertain")


# ----------------------------------------------------------------------------------------
# Krenning grade boundaries (clinical.md §3.1; k1 = 0.5, liver 10, spleen 20)


@pytest.mark.parametrize(
    ("lesion", "grade"),
    [
        (0.0, 1),
        (below(0.5 * LIVER), 1),  # just below k1 * liver
        (0.5 * LIVER, 2),  # at k1 * liver
        (above(0.5 * LIVER), 2),
        (below(LIVER), 2),
        (LIVER, 2),  # "slightly less than or equal to normal liver"
        (above(LIVER), 3),  # "greater than normal liver"
        (below(SPLEEN), 3),
        (SPLEEN, 3),
        (above(SPLEEN), 4),  # "greater than spleen"
        (1e6, 4),
    ],
)
def test_krenning_boundaries_liver_spleen(lesion, grade):
    assert sc.krenning_grade(lesion, LIVER, SPLEEN) == grade


def test_krenning_not_visible_is_grade_0():
    assert sc.krenning_grade(25.0, LIVER, SPLEEN, visible=False) == 0


@pytest.mark.parametrize(("k1", "grade"), [(0.4, 2), (0.5, 1), (0.6, 1)])
def test_krenning_k1_is_configurable(k1, grade):
    # U = 4.5 against liver 10: grade 2 iff U >= k1 * liver.
    assert sc.krenning_grade(4.5, LIVER, SPLEEN, k1=k1) == grade


def test_krenning_k1_boundary_for_nondefault_k1():
    k1 = 0.3
    assert sc.krenning_grade(below(k1 * LIVER), LIVER, SPLEEN, k1=k1) == 1
    assert sc.krenning_grade(k1 * LIVER, LIVER, SPLEEN, k1=k1) == 2


def test_krenning_liver_tolerance():
    assert sc.krenning_grade(10.4, LIVER, SPLEEN) == 3
    assert sc.krenning_grade(10.4, LIVER, SPLEEN, liver_tolerance=0.05) == 2
    assert sc.krenning_grade(10.6, LIVER, SPLEEN, liver_tolerance=0.05) == 3


def test_krenning_kidney_fallback_without_spleen():
    kidney = 30.0
    assert sc.krenning_grade(25.0, LIVER, kidney_uptake=kidney) == 3
    assert sc.krenning_grade(kidney, LIVER, kidney_uptake=kidney) == 3
    assert sc.krenning_grade(above(kidney), LIVER, kidney_uptake=kidney) == 4
    s = sc.krenning_score(above(kidney), LIVER, kidney_uptake=kidney, modality="SPECT")
    assert (s.grade, s.reference, s.modality) == (4, "kidney", "SPECT")


def test_krenning_spleen_takes_precedence_over_kidney():
    # 25 is above spleen (20) but below kidney (30): the spleen decides.
    assert sc.krenning_grade(25.0, LIVER, SPLEEN, kidney_uptake=30.0) == 4


def test_krenning_needs_spleen_or_kidney_only_above_liver():
    assert sc.krenning_grade(LIVER, LIVER) == 2
    with pytest.raises(ScoreError, match="spleen_uptake"):
        sc.krenning_grade(above(LIVER), LIVER)


def test_krenning_score_stores_modality_and_method():
    s = sc.krenning_score(12.0, LIVER, SPLEEN, modality="pet")
    assert (s.grade, s.modality, s.k1) == (3, "PET", 0.5)
    assert s.method == "semi-automatic Krenning-equivalent"
    with pytest.raises(ScoreError, match="modality"):
        sc.krenning_score(12.0, LIVER, SPLEEN, modality="MRI")


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"lesion_uptake": -1.0}, "lesion_uptake"),
        ({"lesion_uptake": math.nan}, "lesion_uptake"),
        ({"liver_uptake": 0.0}, "liver_uptake"),
        ({"liver_uptake": math.inf}, "liver_uptake"),
        ({"spleen_uptake": -2.0}, "spleen_uptake"),
        ({"k1": 1.5}, "k1"),
        ({"k1": 0.0}, "k1"),
        ({"visible": "yes"}, "visible"),
        ({"liver_tolerance": -0.1}, "liver_tolerance"),
    ],
)
def test_krenning_bad_input_raises_typed_error(kwargs, field):
    args = {"lesion_uptake": 12.0, "liver_uptake": LIVER, "spleen_uptake": SPLEEN} | kwargs
    with pytest.raises(ScoreError) as info:
        sc.krenning_grade(**args)
    assert info.value.field == field
    assert isinstance(info.value, TheranetError) and isinstance(info.value, ValueError)


# ----------------------------------------------------------------------------------------
# patient-level Krenning (clinical.md §3.1 default software rule)


@pytest.mark.parametrize(
    ("targets", "others", "eligible", "preferred", "heterogeneous"),
    [
        ([2, 2], [], True, False, False),
        ([3, 4], [], True, True, False),
        ([3, 4], [1], True, True, True),  # other measurable lesion <= 1
        ([3, 4], [0], True, True, True),
        ([1, 4], [], False, False, True),  # one target below liver
        ([2, 3, 4], [2], True, False, False),
    ],
)
def test_patient_krenning_rules(targets, others, eligible, preferred, heterogeneous):
    p = sc.patient_krenning(targets, others)
    assert (p.eligible, p.preferred, p.heterogeneous) == (eligible, preferred, heterogeneous)
    assert p.min_grade == min(targets) and p.max_grade == max(targets)


def test_patient_krenning_threshold_override_and_sources():
    p = sc.patient_krenning([2, 3], thresholds={"krenning_eligible_min_grade": 3})
    assert not p.eligible
    assert p.thresholds["krenning_eligible_min_grade"].source == "caller override"


@pytest.mark.parametrize("bad", [[5], [-1], [2.0], [True], []])
def test_patient_krenning_rejects_bad_grades(bad):
    with pytest.raises(ScoreError):
        sc.patient_krenning(bad)


def test_patient_krenning_refuses_mixed_modalities():
    a = sc.krenning_score(12.0, LIVER, SPLEEN, modality="PET")
    b = sc.krenning_score(12.0, LIVER, SPLEEN, modality="planar")
    assert sc.patient_krenning([a, a]).modality == "PET"
    with pytest.raises(ScoreError, match="modalities"):
        sc.patient_krenning([a, b])


def test_threshold_overrides_are_checked():
    with pytest.raises(ScoreError, match="unknown key"):
        sc.score_thresholds({"krenning_k2": 0.5})
    with pytest.raises(ScoreError):
        sc.score_thresholds({"krenning_eligible_min_grade": 2.5})
    with pytest.raises(ScoreError):
        sc.score_thresholds({"krenning_eligible_min_grade": 5})
    with pytest.raises(ScoreError):
        sc.score_thresholds({"krenning_k1": 1.2})


# ----------------------------------------------------------------------------------------
# SSTR PET ratios [Kratochwil-2015] (clinical.md §3.2)


def test_uptake_ratios_definition():
    # TLR = SUVmax,lesion / SUVmean,liver; TSR = SUVmax,lesion / SUVmean,spleen (exact).
    tlr, tsr = sc.uptake_ratios(lesion_max=22.0, liver_mean=10.0, spleen_mean=11.0)
    assert tlr == pytest.approx(2.2, rel=1e-15) and tsr == pytest.approx(2.0, rel=1e-15)
    assert sc.uptake_ratios(5.0, 2.0) == (2.5, None)


def test_tlr_criterion_2_2_is_strict():
    # "TLR > 2.2 proposed as scanner-independent PRRT criterion" (clinical.md §3.2).
    assert sc.tlr_check(2.2, tracer="68Ga-DOTATOC").passed is False
    assert sc.tlr_check(above(2.2), tracer="68Ga-DOTATOC").passed is True
    check = sc.tlr_check(3.0, tracer="Ga-68 edotreotide")
    assert check.threshold == 2.2 and check.source.source == "Kratochwil-2015"


def test_kratochwil_published_suvmax_values():
    # SUVmax > 16.4 predicts response; published group means 33.6 (responders) and 18.0
    # (non-responders) lie above it (specificity 60 %: the cut-off is below the mean of
    # non-responders); 16.4 itself does not pass (strict inequality).
    dotatoc = "68Ga-DOTATOC"
    assert sc.suvmax_check(33.6, tracer=dotatoc).passed is True
    assert sc.suvmax_check(18.0, tracer=dotatoc).passed is True
    assert sc.suvmax_check(16.4, tracer=dotatoc).passed is False
    assert sc.suvmax_check(above(16.4), tracer=dotatoc).passed is True


def test_kratochwil_published_tsr_values():
    # TSR 1.90 (responders) vs 1.20 (non-responders), no formal cut-off: the ratio is
    # reported, e.g. lesion SUVmax 19.0 over spleen SUVmean 10.0 gives 1.90 exactly.
    assert sc.uptake_ratios(19.0, 8.0, 10.0)[1] == pytest.approx(1.90, rel=1e-15)
    assert sc.uptake_ratios(12.0, 8.0, 10.0)[1] == pytest.approx(1.20, rel=1e-15)


def test_pet_thresholds_apply_only_to_their_tracer():
    check = sc.suvmax_check(40.0, tracer="NETSPOT")
    assert check.tracer == "68Ga-DOTATATE" and not check.applicable and check.passed is None
    own = sc.suvmax_check(40.0, tracer="68Ga-DOTATATE", threshold=20.0)
    assert own.passed is True and own.source.source == "caller override"
    with pytest.raises(ScoreError, match="tracer"):
        sc.tlr_check(3.0, tracer="no-such-tracer")


# ----------------------------------------------------------------------------------------
# NETPET and Karfis (clinical.md §3.3)


@pytest.mark.parametrize(
    ("sstr", "fdg", "relation", "grade"),
    [
        (False, False, None, "P0"),
        (True, False, None, "P1"),
        (True, True, "lower", "P2"),
        (True, True, "equal", "P3"),
        (True, True, "higher", "P4"),
        (False, True, None, "P5"),
    ],
)
def test_netpet_lesion_grades(sstr, fdg, relation, grade):
    assert sc.netpet_lesion_grade(sstr, fdg, relation) == grade


def test_netpet_needs_fdg_vs_sstr_when_both_positive():
    with pytest.raises(ScoreError, match="fdg_vs_sstr"):
        sc.netpet_lesion_grade(True, True)
    with pytest.raises(ScoreError):
        sc.netpet_lesion_grade(True, True, "more")


def test_netpet_positivity_is_modified_krenning_2_to_4():
    assert [sc.netpet_positive(g) for g in range(5)] == [False, False, True, True, True]


@pytest.mark.parametrize(
    ("lesions", "grade", "suitability"),
    [
        (["P0", "P0"], "P0", "not suitable"),
        (["P1", "P0"], "P1", "probably suitable"),
        (["P1", "P2"], "P2", "probably suitable"),
        (["P3", "P1", "P2"], "P3", "probably suitable"),
        (["P1", "P4"], "P4a", "probably suitable"),
        (["P4", "P4", "P1"], "P4a", "probably suitable"),  # 2 FDG > SSTR lesions
        (["P4", "P4", "P4"], "P4b", "maybe suitable with additional therapy"),  # >= 3
        (["P4", "P4", "P4", "P5"], "P5", "not suitable"),  # worst lesion
        (["P1", "P5"], "P5", "not suitable"),
    ],
)
def test_netpet_patient_grade(lesions, grade, suitability):
    r = sc.netpet_patient(lesions)
    assert (r.grade, r.suitability) == (grade, suitability)
    assert r.n_fdg_dominant == lesions.count("P4")


def test_netpet_p4b_count_is_configurable_and_lesion_objects_work():
    lesions = [sc.NetpetLesion(True, True, "higher")] * 2
    assert sc.netpet_patient(lesions).grade == "P4a"
    assert sc.netpet_patient(lesions, thresholds={"netpet_p4b_min_lesions": 2}).grade == "P4b"


@pytest.mark.parametrize("bad", [["P4a"], ["P6"], [], "P1"])
def test_netpet_patient_rejects_bad_input(bad):
    with pytest.raises(ScoreError):
        sc.netpet_patient(bad)


def test_karfis_categories():
    pos_neg, pos_pos = sc.NetpetLesion(True, False), sc.NetpetLesion(True, True, "lower")
    neg_pos, neg_neg = sc.NetpetLesion(False, True), sc.NetpetLesion(False, False)
    assert sc.karfis_category([pos_neg, pos_neg]).category == "C1"
    assert sc.karfis_category([pos_neg, pos_pos]).category == "C2"
    c3 = sc.karfis_category([pos_neg, neg_pos])
    assert (c3.category, c3.prrt_suitable) == ("C3", False)
    assert sc.karfis_category([pos_neg, neg_neg]).category is None


# ----------------------------------------------------------------------------------------
# MIBG extent scores (clinical.md §3.4)


@pytest.mark.parametrize(
    ("n", "diffuse", "score"),
    [(0, 0.0, 0), (1, 0.0, 1), (2, 0.0, 2), (7, 0.0, 2), (1, 0.5, 1), (1, above(0.5), 3)],
)
def test_curie_segment_score(n, diffuse, score):
    # 0 none; 1 one site; 2 more than one site; 3 diffuse (> 50 % of the segment).
    assert sc.curie_segment_score(n, diffuse) == score


def test_curie_total_range():
    assert sc.curie_score([3] * 10) == 30
    assert sc.curie_score([0] * 9 + [1]) == 1
    with pytest.raises(ScoreError):
        sc.curie_score([1] * 9)
    with pytest.raises(ScoreError):
        sc.curie_score([4] + [0] * 9)


@pytest.mark.parametrize(
    ("n", "diffuse", "score"),
    [
        (0, 0.0, 0),
        (1, 0.0, 1),
        (2, 0.0, 2),
        (3, 0.0, 3),
        (4, 0.0, 4),  # > 3 discrete foci
        (0, below(0.5), 4),  # single diffuse lesion < 50 % of bone
        (0, 0.5, 5),  # diffuse 50-95 %
        (0, 0.95, 5),
        (0, above(0.95), 6),  # diffuse whole bone
        (0, 1.0, 6),
    ],
)
def test_siopen_region_score(n, diffuse, score):
    assert sc.siopen_region_score(n, diffuse) == score


def test_siopen_total_and_regions():
    assert len(sc.SIOPEN_REGIONS) == 12
    assert sc.siopen_score([6] * 12) == 72
    assert sc.siopen_score(dict.fromkeys(sc.SIOPEN_REGIONS, 1)) == 12
    with pytest.raises(ScoreError):
        sc.siopen_score({"skull": 1})
    with pytest.raises(ScoreError):
        sc.siopen_score([7] + [0] * 11)


def test_mibg_extent_prognostic_limits():
    # Curie <= 2 and SIOPEN <= 4 at diagnosis: better EFS/OS (clinical.md §3.4).
    fav = sc.mibg_extent([1, 1] + [0] * 8, [2, 2] + [0] * 10)
    assert (fav.curie, fav.siopen, fav.curie_favourable, fav.siopen_favourable) == (
        2, 4, True, True
    )  # fmt: skip
    poor = sc.mibg_extent([1, 1, 1] + [0] * 7, [5] + [0] * 11)
    assert (poor.curie_favourable, poor.siopen_favourable) == (False, False)
    assert sc.mibg_extent([0] * 10).siopen_favourable is None


# ----------------------------------------------------------------------------------------
# site tables


def _shipped_text() -> str:
    return resources.files("theranet").joinpath("data/eligibility.toml").read_text()


def test_load_score_thresholds_from_site_table(tmp_path: Path):
    text = _shipped_text().replace(
        'krenning_k1 = { value = 0.5, unit = "1"', 'krenning_k1 = { value = 0.4, unit = "1"'
    )
    path = tmp_path / "site.toml"
    path.write_text(text)
    table = sc.load_score_thresholds(path)
    assert table.value("krenning_k1") == 0.4 and table.paths == (str(path),)


def test_load_score_thresholds_rejects_missing_source(tmp_path: Path):
    row = 'tlr_min = { value = 2.2, unit = "1", tracer = "68Ga-DOTATOC", '
    text = _shipped_text()
    assert row + 'source = "Kratochwil-2015", ' in text
    text = text.replace(row + 'source = "Kratochwil-2015", ', row)
    path = tmp_path / "site.toml"
    path.write_text(text)
    with pytest.raises(ScoreError, match="source"):
        sc.load_score_thresholds(path)
    with pytest.raises(ScoreError, match="cannot be read"):
        sc.load_score_thresholds(tmp_path / "missing.toml")
