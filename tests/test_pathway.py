"""Tests of theranet.pathway: the NET imaging-and-therapy rule table.

Reference
---------
The expected answers are transcribed by hand from the project reference
/work/shared/reference/clinical.md (§2 decision table, §1.7, §1.8, §1.12, §5.1-5.4a) and
its sources (IDs as listed in clinical.md §10), never from the library's own output:

* EANM-PPGL-2019 (Taieb D et al., EJNMMI 2019;46:2112-2137, Table 3): PPGL tracer by
  genotype and site.
* ATA-MTC (Wells SA et al., Thyroid 2015) via Romero-Lluch-2017: imaging beyond neck US
  when basal calcitonin > 150 pg/mL; FDG PET for aggressive disease, Ct > 1000 pg/mL.
* ENETS-HG-2016: SSTR imaging in G3 only if Ki-67 < 55 %; FDG PET for NEC.
* NETPET (Chan 2017): dual-tracer SSTR + FDG PET for NET G2 with high Ki-67 or G3.
* AUC-SSTR-2018: SSTR PET first line for well-differentiated GEP-NET, replacing OctreoScan.
* Christ-2020: GLP-1R imaging for benign insulinoma, SSTR PET (± FDG) for malignant.
* EANM-NB-2018: 123I-MIBG first line for neuroblastoma, FDG if MIBG non-avid.

Band boundaries: the brief and clinical.md §2 give "Ki-67 >= 10 %" (dual tracer) and
"Ki-67 < 55 %" (ENETS HG), so a value equal to an edge joins the upper Ki-67 band; the
calcitonin rules are strict ("Ct > 150 pg/mL", "Ct > 1000 pg/mL"), so 150 and 1000 pg/mL
fall in the lower band. These are exact comparisons (no tolerance).
"""

from __future__ import annotations

import json
import math
import tomllib
from importlib import resources

import pytest

from theranet import pathway as pw
from theranet.errors import TheranetError
from theranet.pathway import (
    TUMOUR_TYPES,
    Pathway,
    PathwayError,
    format_text,
    load_table,
    recommend,
    table_version,
)
from theranet.radiopharmaceuticals import STATUSES

# Source IDs of clinical.md §10, transcribed from that list (not from the TOML).
CLINICAL_MD_SECTION_10_IDS = frozenset(
    {
        "Kaltsas-2004", "ICRP-107", "DICOM-C.8.9", "QIBA/cornerstone", "MITK-SUV",
        "VoxelTrace-rules", "Slicer", "MITK", "OctreoScan-PI", "EANM-SRS-2010", "SNM-SRS-2011",
        "EANM-MIBG-2010", "NA-Peds-consensus", "AdreView-table", "MIBG-SmPC", "Khafagi-1989",
        "Stefanelli-2013", "Jacobson-2015", "AdreView-PI", "EANM-Ga-2010", "EANM-Ga-DOPA-2017",
        "SNMMI-EANM-SSTR-2023", "AUC-SSTR-2018", "DOTATOC-PI", "NETSPOT-PI", "Detectnet-PI",
        "Loft-64Cu-1h-3h", "Sandström-2013", "ENETS-Imaging-2017", "ENETS-PRRT-2017",
        "ENETS-HG-2016", "EANM-PPGL-2019", "EANM-NB-2018", "Christ-2013", "Luo-2016",
        "Antwi-2018", "Christ-2020", "ATA-MTC", "Romero-Lluch-2017", "Balogova-2013",
        "Örlefors-2005", "Örlefors-2006", "Krenning", "Kratochwil-2015", "NETPET", "NETPET-2022",
        "Werner-2018", "Carlsen-2021", "Curie/SIOPEN", "NETTER-1", "Lutathera-PI",
        "Lutathera-SmPC", "AJR-2022", "Novartis safety page", "EJHP-2018", "IAEA-2013",
        "Hope-2019", "Hope-2020", "Bodei-2008", "Konijnenberg-2003", "Menda-2018",
        "Kidney-XRT-2004", "PyTheranostics", "MGH-MIRDCalc", "Sundlöv-2022", "Svensson-2015",
        "Reidy-Lagunes-2019", "Barone-2005", "Wessels-2008", "Cremonesi-2006", "Cremonesi-2018",
        "Dale-1985", "Staanum-2021", "Lutate-STP-2018", "Santoro-2018", "STP-JNM-2021",
        "Gustafsson-Taprogge-2022", "Hänscheid-2018", "Madsen-2018", "Gear-2018",
        "Finocchiaro-2020", "Hindorf-2010", "Sgouros-1993", "Forrer-2009", "MIRD-16", "MIRD-21",
        "MIRD-26", "Ogawa-1991", "Jaszczak-1984", "PyTomography", "syd-doc", "Jönsson-2018",
        "Kletting-2013", "EANM-Art56-2020", "RECIST-1.1", "RECIST-text", "Choi-2007", "PERCIST",
        "Practical PERCIST", "EANM-FDG-2015", "QIBA-FDG-1.14", "mRECIST", "CgA/5-HIAA",
        "NRC-RG-8.39", "Azedra-PI",
        # "Other sources consulted" in clinical.md §10
        "InsideRadiology", "WJNM-2018", "petsfortechs summary", "Clin Nucl Med 1995",
        "Carbidopa-FDOPA-insulinoma abstract", "Örlefors whole-body 1999 abstract",
        "JNM-2019-abstract 1535", "Cancers-2023 Tab.2", "UChicago trial listing",
        "LUTIA protocol", "ReLUTH protocol", "GATE digitiser example", "Asabella-2013",
        "booksci abstract", "HRRT calibration script", "patient-lab guidance",
        "pparpathway summary", "LabCorp summary", "Lodge-2012", "131I SmPC",
    }
)  # fmt: skip
# Cited in the text of clinical.md (§5.4, §5.5) but missing from its §10 list.
CITED_OUTSIDE_SECTION_10 = frozenset({"EANM-MIBG-Tx-2008"})
KNOWN_SOURCE_IDS = CLINICAL_MD_SECTION_10_IDS | CITED_OUTSIDE_SECTION_10

# Rows of clinical.md §2 marked [UNCERTAIN] in the row itself.
UNCERTAIN_ROWS = {
    "gastrinoma": "Gastrinoma / ZES: [UNCERTAIN: quantitative sensitivities]",
    "lung_carcinoid_typical": "Lung carcinoid - typical: [UNCERTAIN: ENETS lung 2015 wording]",
    "lung_carcinoid_atypical": "atypical carcinoids more often FDG-avid [UNCERTAIN]",
    "carcinoid_mibg_therapy_selection": "MIBG uptake in ~50-70 % of midgut NET [UNCERTAIN]",
}


@pytest.fixture(scope="module")
def raw_table() -> dict:
    """The shipped TOML read with tomllib alone, independent of the loader."""
    text = resources.files("theranet").joinpath("data/pathway.toml").read_text("utf-8")
    return tomllib.loads(text)


def modality_keys(items) -> list[tuple[str, ...]]:
    return [item.modalities for item in items]


def line(p: Pathway, number: int, row: str | None = None) -> list[tuple[str, ...]]:
    return modality_keys(p.line(number, row))


def therapy_keys(p: Pathway) -> list[str]:
    return [t.key for t in p.therapy]


# ----------------------------------------------------------------------------------------
# the table itself


def test_table_has_version_and_date(raw_table):
    assert isinstance(raw_table["version"], str) and raw_table["version"]
    assert isinstance(raw_table["date"], str) and len(raw_table["date"]) == 10
    assert table_version() == raw_table["version"]
    p = recommend("gep_net", ki67_percent=5.0)
    assert (p.table_version, p.table_date) == (raw_table["version"], raw_table["date"])


def test_every_row_has_sources_that_are_known_ids(raw_table):
    """Every row cites at least one source ID of clinical.md §10 and a clinical.md section."""
    for row in raw_table["row"]:
        assert row["sources"], row["id"]
        assert set(row["sources"]) <= KNOWN_SOURCE_IDS, row["id"]
        assert row["section"].startswith("clinical.md §"), row["id"]
        assert row["status"] in STATUSES, row["id"]
        for caveat in row.get("caveats", []):
            assert caveat["sources"] and set(caveat["sources"]) <= KNOWN_SOURCE_IDS
        for key in ("first_line", "second_line", "third_line", "anatomical"):
            for option in row.get(key, []):
                if isinstance(option, dict):
                    assert set(option.get("sources", [])) <= KNOWN_SOURCE_IDS, row["id"]


def test_every_other_entry_cites_known_ids(raw_table):
    for kind in ("modality", "therapy"):
        for key, entry in raw_table[kind].items():
            assert entry["sources"] and set(entry["sources"]) <= KNOWN_SOURCE_IDS, key
    for key, tumour in raw_table["tumour"].items():
        for entry in tumour["therapy"]:
            assert set(entry.get("sources", [])) <= KNOWN_SOURCE_IDS, key
    for band in raw_table["bands"].values():
        for edge in band["edges"]:
            assert set(edge["source"].split("; ")) <= KNOWN_SOURCE_IDS
    # the table's own list of known IDs holds nothing clinical.md does not cite
    assert set(raw_table["source"]) <= KNOWN_SOURCE_IDS


def test_rows_marked_uncertain_in_clinical_md_are_uncertain(raw_table):
    status = {row["id"]: row["status"] for row in raw_table["row"]}
    for row_id, quote in UNCERTAIN_ROWS.items():
        assert status[row_id] == "uncertain", quote


def test_band_edges_are_the_published_thresholds():
    """Ki-67 10 % (clinical.md §2) and 55 % (ENETS-HG-2016); Ct 150 and 1000 pg/mL (ATA)."""
    table = load_table()
    ki67 = table.band("ki67_percent")
    assert [e.value for e in ki67.edges] == [10.0, 55.0]
    assert ki67.unit == "%"
    ct = table.band("calcitonin_pg_ml")
    assert [e.value for e in ct.edges] == [150.0, 1000.0]
    assert ct.unit == "pg/mL"
    assert "ATA-MTC" in ct.edges[0].source
    assert "ENETS-HG-2016" in ki67.edges[1].source


def test_tumour_types_and_aliases():
    expected = {
        "gep_net", "nec", "insulinoma", "gastrinoma", "small_bowel_net", "lung_carcinoid",
        "ppgl", "mtc", "neuroblastoma",
    }  # fmt: skip
    assert set(TUMOUR_TYPES) == expected
    assert "phaeochromocytoma" in TUMOUR_TYPES["ppgl"].aliases
    assert set(TUMOUR_TYPES["ppgl"].genotypes) == {"sporadic", "NF1", "RET", "VHL", "MAX", "SDHx"}
    assert recommend("Phaeochromocytoma").inputs["site"] == "adrenal"
    assert recommend("midgut NET").tumour == "small_bowel_net"
    assert recommend("Zollinger-Ellison syndrome").tumour == "gastrinoma"


def test_tracer_names_match_the_radiopharmaceutical_catalogue():
    """Tracer names of the pathway table are the catalogue's canonical names."""
    from theranet import radiopharmaceuticals as rp

    table = load_table()
    for name in ("68Ga-DOTATATE", "68Ga-DOTATOC", "64Cu-DOTATATE", "18F-FDG", "18F-DOPA",
                 "123I-MIBG", "111In-pentetreotide"):  # fmt: skip
        assert rp.get(name).name == name
        assert table.resolve_unavailable([name]) == {name}


# ----------------------------------------------------------------------------------------
# one test per tumour type (clinical.md §2, §5)


def test_gep_net_g1_g2():
    """§2: 'Well-differentiated GEP-NET G1/G2 | SSTR PET/CT ✔ | 111In-SRS SPECT/CT or
    99mTc-HYNIC-TOC only if PET unavailable ✔; 18F-DOPA (midgut) ✔ | CE-CT with 3-phase
    liver; liver MRI incl. DWI ✔' [AUC-SSTR-2018]."""
    p = recommend("gep_net", ki67_percent=5.0, grade="G2")
    assert p.rows[0].id == "gep_net_g1_g2" and p.rows[0].status == "verified"
    assert "AUC-SSTR-2018" in p.rows[0].sources
    assert line(p, 1) == [("sstr_pet",)]
    # 111In-SRS / HYNIC-TOC are fallbacks "only if PET unavailable": hidden while PET is there
    assert line(p, 2) == [("fdopa_pet",)]
    assert "midgut" in p.line(2)[0].note
    assert modality_keys(p.anatomical) == [("ce_ct_3phase_liver",), ("liver_mri_dwi",)]
    keys = therapy_keys(p)
    # §5.4a: curative resection first when feasible; SSA, PRRT (§5.1), everolimus/sunitinib
    assert keys[0] == "surgery"
    for key in ("ssa", "prrt_lu177_dotatate", "prrt_y90_dotatoc", "everolimus", "sunitinib",
                "interferon_alpha", "in111_octreotide", "mibg131_carcinoid"):  # fmt: skip
        assert key in keys
    historic = [t.key for t in p.therapy if t.historic]
    assert keys[-len(historic) :] == historic  # historic options listed last
    prrt = p.therapy[keys.index("prrt_lu177_dotatate")]
    assert "Lutathera-PI" in prrt.sources and "20 %" in prrt.conditions  # NETTER-1 Ki-67 <= 20 %
    assert not p.assumed


def test_gep_net_high_ki67_dual_tracer():
    """§2: 'NET G2 with high Ki-67 (≳10 %) or G3 NET | SSTR PET and FDG PET (dual tracer)';
    FDG+/SSTR- lesions -> PRRT unsuitable ✔ [NETPET]."""
    p = recommend("gep_net", ki67_percent=15.0)
    assert p.rows[0].id == "gep_net_high_ki67_or_g3"
    assert "NETPET" in p.rows[0].sources
    assert line(p, 1) == [("sstr_pet", "fdg_pet")]  # one combined study: both tracers
    assert any("NETPET P5" in n for n in p.notes)
    prrt = [t for t in p.therapy if t.key == "prrt_lu177_dotatate"]
    assert len(prrt) == 1 and "NETPET P5" in prrt[0].conditions
    g3 = recommend("G3 NET")  # alias implying grade G3
    assert g3.rows[0].id == "gep_net_high_ki67_or_g3"
    assert any("Ki-67 not given" in w for w in g3.warnings)


def test_nec():
    """§2: 'NEC (poorly differentiated G3) | FDG PET (if it changes management) ✔ | SSTR PET
    rarely useful | CT' [ENETS-HG-2016]; §5.4a: platinum-etoposide for NEC."""
    p = recommend("neuroendocrine carcinoma")
    assert p.tumour == "nec" and p.rows[0].sources == ("ENETS-HG-2016",)
    assert line(p, 1) == [("fdg_pet",)]
    assert line(p, 2) == [("sstr_pet",)] and "rarely" in p.line(2)[0].note
    assert modality_keys(p.anatomical) == [("ct",)]
    assert therapy_keys(p)[0] == "chemo_platinum_etoposide"
    assert "prrt_lu177_dotatate" not in therapy_keys(p)


@pytest.mark.parametrize(
    ("ki67", "row", "first"),
    [
        (0.0, "gep_net_g1_g2", [("sstr_pet",)]),
        (9.99, "gep_net_g1_g2", [("sstr_pet",)]),
        (10.0, "gep_net_high_ki67_or_g3", [("sstr_pet", "fdg_pet")]),  # ">= 10 %"
        (54.9, "gep_net_high_ki67_or_g3", [("sstr_pet", "fdg_pet")]),
        (55.0, "gep_net_high_ki67_or_g3", [("sstr_pet", "fdg_pet")]),
        (100.0, "gep_net_high_ki67_or_g3", [("sstr_pet", "fdg_pet")]),
    ],
)
def test_ki67_band_switch(ki67, row, first):
    """GEP-NET low (< 10 %) vs >= 10 % (dual tracer); ENETS HG caveat from 55 %."""
    p = recommend("gep_net", ki67_percent=ki67)
    assert p.rows[0].id == row
    assert line(p, 1) == first
    caveat = any("Ki-67 >= 55 %" in w and "ENETS-HG-2016" in w for w in p.warnings)
    assert caveat == (ki67 >= 55.0)


def test_ki67_band_switch_to_nec():
    """NEC is a different tumour type: FDG first, whatever the Ki-67 (§2)."""
    low = recommend("gep_net", ki67_percent=60.0)
    nec = recommend("nec", ki67_percent=60.0)
    assert line(low, 1) == [("sstr_pet", "fdg_pet")]
    assert line(nec, 1) == [("fdg_pet",)]
    # ENETS HG: SSTR imaging may be considered if Ki-67 < 55 %
    assert not any("Ki-67 < 55 %" in w for w in nec.warnings)
    assert any("Ki-67 < 55 %" in w for w in recommend("nec", ki67_percent=40.0).warnings)


def test_insulinoma_benign_and_malignant():
    """§2: 'Insulinoma (benign, localisation) | GLP-1R PET/CT (68Ga-exendin-4) ✔ | EUS ✔;
    carbidopa-assisted 18F-DOPA ✔; SSTR imaging has low sensitivity (~20 %) ✔ | multiphase
    CT, MRI | Malignant insulinoma: SSTR PET (± FDG) because GLP-1R often lost ✔
    [Christ-2020]; invasive ASVS as fallback'."""
    benign = recommend("insulinoma", grade="benign")
    assert line(benign, 1) == [("glp1r_pet",)]
    assert line(benign, 2) == [("eus",), ("fdopa_pet",)]
    assert "carbidopa" in benign.line(2)[1].note
    assert line(benign, 3) == [("asvs",)]
    assert all("sstr_pet" not in i.modalities for i in benign.imaging)
    assert modality_keys(benign.anatomical) == [("multiphase_ct",), ("mri",)]
    assert therapy_keys(benign) == ["surgery"]

    malignant = recommend("malignant insulinoma")
    assert malignant.rows[0].id == "insulinoma_malignant"
    assert "Christ-2020" in malignant.rows[0].sources
    assert line(malignant, 1) == [("sstr_pet",)]
    assert line(malignant, 2) == [("fdg_pet",)]
    assert all("glp1r_pet" not in i.modalities for i in malignant.imaging)
    assert "prrt_lu177_dotatate" in therapy_keys(malignant)

    default = recommend("insulinoma")
    assert default.rows[0].id == "insulinoma_benign" and default.assumed == ("grade",)
    assert any(w.startswith("grade not given: assumed grade benign") for w in default.warnings)


def test_gastrinoma_incl_men1():
    """§2: 'Gastrinoma / ZES (incl. MEN1) | SSTR PET/CT | EUS (pancreas/duodenum) | CT/MRI |
    ... [UNCERTAIN: quantitative sensitivities]'."""
    p = recommend("gastrinoma", genotype="MEN1", ki67_percent=2.0)
    assert p.rows[0].id == "gastrinoma" and p.rows[0].status == "uncertain"
    assert line(p, 1) == [("sstr_pet",)]
    assert line(p, 2) == [("eus",)]
    assert modality_keys(p.anatomical) == [("ct_mri",)]
    assert any("[UNCERTAIN]" in w and "gastrinoma" in w for w in p.warnings)
    assert therapy_keys(p)[:3] == ["surgery", "ssa", "prrt_lu177_dotatate"]


def test_small_bowel_net():
    """§2: 'Small-bowel (midgut) NET | SSTR PET/CT | 18F-DOPA ✔; 11C-5-HTP (research) ✔ |
    CT/MR enterography, CE-CT liver'."""
    p = recommend("small bowel NET", ki67_percent=3.0)
    assert [r.id for r in p.rows] == ["small_bowel_net"]
    assert line(p, 1) == [("sstr_pet",)]
    assert line(p, 2) == [("fdopa_pet",), ("htp_pet",)]
    assert modality_keys(p.anatomical) == [("ct_mr_enterography",), ("ce_ct_liver",)]
    prrt = [t for t in p.therapy if t.key == "prrt_lu177_dotatate"]
    assert "NETTER-1" in prrt[0].sources and "midgut" in prrt[0].conditions


def test_small_bowel_net_high_ki67_adds_dual_tracer_row():
    """The NET G2 high-Ki-67 / G3 row of §2 is not site-specific: it comes first."""
    p = recommend("small_bowel_net", ki67_percent=25.0)
    assert [(r.id, r.role) for r in p.rows] == [
        ("gep_net_high_ki67_or_g3", "modifier"),
        ("small_bowel_net", "base"),
    ]
    assert modality_keys(p.first_line) == [("sstr_pet", "fdg_pet")]
    assert line(p, 1, "small_bowel_net") == [("sstr_pet",)]


def test_lung_carcinoid_typical_and_atypical():
    """§2: 'Lung carcinoid — typical | SSTR PET/CT | — | chest CT | [UNCERTAIN]';
    'Lung carcinoid — atypical / high Ki-67 | SSTR PET/CT + FDG PET | | chest CT'."""
    typical = recommend("lung_carcinoid", grade="typical")
    assert typical.rows[0].id == "lung_carcinoid_typical"
    assert line(typical, 1) == [("sstr_pet",)] and line(typical, 2) == []
    assert modality_keys(typical.anatomical) == [("chest_ct",)]
    atypical = recommend("atypical carcinoid")
    assert atypical.rows[0].id == "lung_carcinoid_atypical"
    assert line(atypical, 1) == [("sstr_pet", "fdg_pet")]
    for p in (typical, atypical):
        assert p.status == "uncertain"
        assert any("[UNCERTAIN]" in w for w in p.warnings)
        assert "UNCERTAIN" in p.format_text()


# (genotype, site) -> row, first, second, third line of EANM-PPGL-2019 Table 3 (clinical.md §2)
SDHX = (
    "ppgl_sympathetic_multifocal_metastatic_sdhx",
    [("ga68_ssa_pet",)],
    [("fdg_pet", "fdopa_pet")],
    [("fdg_pet", "mibg123"), ("fdg_pet", "in111_srs"), ("fdg_pet", "tc99m_hynic_toc")],
)
PPGL_CASES = {
    # "Phaeochromocytoma, sporadic | 18F-DOPA or 123I-MIBG ✔ | 68Ga-SSA ✔ | ... 3rd: FDG ✔"
    ("sporadic", "adrenal"): (
        "pheo_sporadic",
        [("fdopa_pet",), ("mibg123",)],
        [("ga68_ssa_pet",)],
        [("fdg_pet",)],
    ),
    # "Inherited PHEO (NF1, RET, VHL, MAX; not SDHx) | 18F-DOPA ✔ | 123I-MIBG or 68Ga-SSA ✔ |
    #  | 3rd: FDG ✔"
    **{
        (g, "adrenal"): (
            "pheo_inherited",
            [("fdopa_pet",)],
            [("mibg123",), ("ga68_ssa_pet",)],
            [("fdg_pet",)],
        )
        for g in ("NF1", "RET", "VHL", "MAX")
    },
    # "Head-and-neck PGL (sporadic) | 68Ga-SSA ✔ | 18F-DOPA ✔ | MRI | 3rd: 111In/99mTc-SSA ✔"
    ("sporadic", "head_and_neck"): (
        "ppgl_head_and_neck_sporadic",
        [("ga68_ssa_pet",)],
        [("fdopa_pet",)],
        [("in111_srs",), ("tc99m_hynic_toc",)],
    ),
    # "Extra-adrenal sympathetic, multifocal, metastatic, or SDHx-mutated PPGL | 68Ga-SSA ✔ |
    #  FDG and 18F-DOPA ✔ | CT/MRI | 3rd: FDG + 123I-MIBG, or FDG + 111In/99mTc-SSA ✔"
    ("sporadic", "extra_adrenal_sympathetic"): SDHX,
    ("sporadic", "multifocal"): SDHX,
    ("sporadic", "metastatic"): SDHX,
    ("SDHB", "adrenal"): SDHX,
    ("SDHD", "head_and_neck"): SDHX,
    ("VHL", "metastatic"): SDHX,
}


@pytest.mark.parametrize(("genotype", "site"), list(PPGL_CASES))
def test_ppgl_by_genotype_and_site(genotype, site):
    row, first, second, third = PPGL_CASES[(genotype, site)]
    p = recommend("ppgl", genotype=genotype, site=site)
    assert [r.id for r in p.rows] == [row]
    assert p.rows[0].sources == ("EANM-PPGL-2019",) and p.rows[0].status == "verified"
    assert (line(p, 1), line(p, 2), line(p, 3)) == (first, second, third)


def test_ppgl_anatomical_and_therapy():
    """§2 anatomical column: adrenal CT/MRI (sporadic PHEO), MRI (H&N PGL); §5.4 Azedra."""
    pheo = recommend("phaeochromocytoma", genotype="sporadic")
    assert modality_keys(pheo.anatomical) == [("adrenal_ct_mri",)]
    hn = recommend("head and neck paraganglioma", genotype="sporadic")
    assert modality_keys(hn.anatomical) == [("mri",)]
    keys = therapy_keys(pheo)
    assert keys[0] == "surgery" and "mibg131_azedra" in keys
    azedra = pheo.therapy[keys.index("mibg131_azedra")]
    assert azedra.sources == ("Azedra-PI",) and "80 000" in azedra.note


def test_ppgl_therapy_selection_row():
    """§2: 'PPGL therapy selection | 123I-MIBG (for 131I-MIBG/Azedra) and/or SSTR PET (for
    PRRT) ✔ | | | Azedra requires "iobenguane scan positive" disease ✔'."""
    p = recommend("ppgl", genotype="SDHB", site="metastatic", question="therapy selection")
    assert [r.id for r in p.rows] == [
        "ppgl_therapy_selection",
        "ppgl_sympathetic_multifocal_metastatic_sdhx",
    ]
    assert modality_keys(p.first_line) == [("mibg123",), ("sstr_pet",)]
    assert any("iobenguane" in n for n in p.notes)


def test_ppgl_missing_genotype_warns_and_missing_site_raises():
    p = recommend("pheochromocytoma")
    assert p.rows[0].id == "pheo_sporadic" and p.assumed == ("genotype",)
    assert any(w.startswith("genotype not given: assumed genotype sporadic") for w in p.warnings)
    with pytest.raises(PathwayError) as info:
        recommend("paraganglioma", genotype="sporadic")
    assert info.value.field == "site" and "head_and_neck" in str(info.value)


@pytest.mark.parametrize(
    ("calcitonin", "row", "first"),
    [
        (20.0, "mtc_ct_150_or_less", []),
        (150.0, "mtc_ct_150_or_less", []),  # "Ct > 150": 150 itself is not above
        (150.01, "mtc_ct_150_to_1000", [("fdopa_pet",)]),
        (420.0, "mtc_ct_150_to_1000", [("fdopa_pet",)]),
        (1000.0, "mtc_ct_150_to_1000", [("fdopa_pet",)]),
        (1000.01, "mtc_ct_above_1000", [("fdopa_pet",)]),
        (5000.0, "mtc_ct_above_1000", [("fdopa_pet",)]),
    ],
)
def test_mtc_calcitonin_thresholds(calcitonin, row, first):
    """§2: 'MTC (recurrence, Ct > 150 pg/mL) | 18F-DOPA PET ✔ | FDG PET for aggressive disease
    (high Ct > 1000 pg/mL ...) ✔; SSTR PET for PRRT selection | neck US ✔, chest CT, liver MRI,
    bone MRI/scintigraphy ✔ | ATA: imaging beyond neck US when basal Ct > 150 pg/mL ✔
    [ATA-MTC]'."""
    p = recommend("medullary thyroid carcinoma", calcitonin_pg_ml=calcitonin)
    assert p.rows[0].id == row and "ATA-MTC" in p.rows[0].sources
    assert line(p, 1) == first
    anatomical = modality_keys(p.anatomical)
    if calcitonin <= 150.0:
        assert anatomical == [("neck_us",)] and p.imaging == ()
    else:
        assert anatomical == [
            ("neck_us",), ("chest_ct",), ("liver_mri",), ("bone_mri_or_scintigraphy",)
        ]  # fmt: skip
        assert line(p, 2) == [("fdg_pet",), ("sstr_pet",)]
        fdg = p.line(2)[0]
        if calcitonin > 1000.0:
            assert "aggressive" in fdg.note and "only" not in fdg.note
        else:
            assert fdg.note.startswith("only for aggressive disease")


def test_mtc_without_calcitonin_assumes_the_section_2_row():
    p = recommend("mtc")
    assert p.rows[0].id == "mtc_ct_150_to_1000" and p.assumed == ("calcitonin_pg_ml",)
    assert any("calcitonin_pg_ml not given: assumed" in w for w in p.warnings)


def test_neuroblastoma():
    """§2: 'Neuroblastoma | 123I-MIBG whole-body ± SPECT/CT ✔ | FDG PET if MIBG non-avid
    (~10 %) ✔; 18F-DOPA; 68Ga-DOTATATE for PRRT selection ✔ | CT/MRI' [EANM-NB-2018]."""
    p = recommend("neuroblastoma")
    assert p.rows[0].sources == ("EANM-NB-2018",)
    assert line(p, 1) == [("mibg123",)]
    assert line(p, 2) == [("fdg_pet",), ("fdopa_pet",), ("ga68_dotatate_pet",)]
    assert "non-avid" in p.line(2)[0].note
    assert modality_keys(p.anatomical) == [("ct_mri",)]
    assert therapy_keys(p)[0] == "mibg131_conventional"
    assert "mibg131_azedra" not in therapy_keys(p)  # Azedra is labelled for PPGL only (§5.4)


def test_carcinoid_mibg_therapy_selection_is_uncertain():
    """§2: 'Carcinoid/GEP-NET selection for 131I-MIBG therapy (historic, Kaltsas 2004) |
    123I-MIBG | | | only if SSTR PRRT not possible; MIBG uptake ~50-70 % [UNCERTAIN]'."""
    p = recommend("midgut", ki67_percent=2.0, question="mibg_therapy_selection")
    assert p.rows[0].id == "carcinoid_mibg_therapy_selection"
    assert modality_keys(p.first_line) == [("mibg123",)]
    assert p.status == "uncertain"
    assert any("[UNCERTAIN]" in w and "carcinoid_mibg" in w for w in p.warnings)


# ----------------------------------------------------------------------------------------
# availability (clinical.md §2 "Implementation": fall back to the next line)


def test_unavailable_sstr_pet_promotes_the_fallback_line():
    p = recommend("gep_net", ki67_percent=5.0, unavailable=["sstr_pet"])
    # 111In-SRS SPECT/CT or 99mTc-HYNIC-TOC "only if PET unavailable" now lead
    assert line(p, 1) == [("in111_srs",), ("tc99m_hynic_toc",), ("fdopa_pet",)]
    assert {i.listed_line for i in p.line(1)} == {2}
    assert any("nothing available" in w and "promoted" in w for w in p.warnings)
    assert "68Ga-DOTATATE" in p.unavailable


def test_one_unavailable_tracer_keeps_its_class():
    """SSTR PET stays first line while any of its tracers (64Cu-DOTATATE ...) is available."""
    p = recommend("gep_net", ki67_percent=5.0, unavailable=["Ga-68 DOTATATE", "68Ga-DOTATOC"])
    assert line(p, 1) == [("sstr_pet",)]
    assert p.unavailable == ("68Ga-DOTATATE", "68Ga-DOTATOC")


def test_unavailable_ppgl_tracers():
    pheo = recommend("pheo", genotype="sporadic", unavailable=["18F-DOPA"])
    assert line(pheo, 1) == [("mibg123",)]  # the alternative stays, no promotion
    pheo = recommend("pheo", genotype="sporadic", unavailable=["18F-DOPA", "123I-MIBG"])
    assert line(pheo, 1) == [("ga68_ssa_pet",)] and line(pheo, 2) == [("fdg_pet",)]
    sdhx = recommend("ppgl", genotype="SDHB", site="adrenal", unavailable=["FDG"])
    # every 2nd/3rd-line option combines FDG with another tracer
    assert line(sdhx, 1) == [("ga68_ssa_pet",)] and line(sdhx, 2) == []


def test_unavailable_anatomical_modality():
    p = recommend("gep_net", ki67_percent=5.0, unavailable=["MRI"])
    assert modality_keys(p.anatomical) == [("ce_ct_3phase_liver",)]
    assert any("liver MRI" in w for w in p.warnings)
    p = recommend("gastrinoma", ki67_percent=5.0, unavailable=["MRI"])
    assert modality_keys(p.anatomical) == [("ct_mri",)]  # CT still possible


# ----------------------------------------------------------------------------------------
# output


@pytest.mark.parametrize(
    "kwargs",
    [
        {"tumour": "gep_net", "ki67_percent": 12.5, "unavailable": ["sstr_pet"]},
        {"tumour": "ppgl", "genotype": "SDHB", "site": "metastatic", "question": "therapy"},
        {"tumour": "mtc", "calcitonin_pg_ml": 1200.0},
        {"tumour": "lung_carcinoid"},
    ],
)
def test_json_round_trip(kwargs):
    p = recommend(**kwargs)
    text = json.dumps(p.to_dict())
    back = Pathway.from_dict(json.loads(text))
    assert back == p
    assert back.to_dict() == p.to_dict()


def test_from_dict_rejects_garbage():
    with pytest.raises(PathwayError):
        Pathway.from_dict({"tumour": "gep_net"})


def test_format_text_shows_rows_lines_therapy_and_warnings():
    p = recommend("gastrinoma", genotype="sporadic")
    text = format_text(p)
    assert text == p.format_text()
    assert p.tumour_label in text and p.table_version in text
    assert "SSTR PET/CT" in text and "endoscopic ultrasound" in text
    assert "** UNCERTAIN **" in text and "warnings:" in text
    assert "therapy options" in text and "Surgery" in text


def test_warnings_for_ignored_numbers():
    p = recommend("ppgl", site="adrenal", genotype="sporadic", ki67_percent=3.0)
    assert any(w.startswith("ki67_percent = 3 ignored") for w in p.warnings)
    assert p.inputs["ki67_band"] is None


# ----------------------------------------------------------------------------------------
# bad input


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"tumour": "carcinoma of the unknown"}, "tumour"),
        ({"tumour": ""}, "tumour"),
        ({"tumour": "mtc", "genotype": "RET"}, "genotype"),
        ({"tumour": "gastrinoma", "genotype": "SDHB"}, "genotype"),
        ({"tumour": "ppgl", "site": "adrenal", "genotype": "TMEM127"}, "genotype"),
        ({"tumour": "gep_net", "site": "pancreas"}, "site"),
        ({"tumour": "gep_net", "grade": "atypical"}, "grade"),
        ({"tumour": "typical carcinoid", "grade": "atypical"}, "grade"),
        ({"tumour": "mtc", "question": "localisation"}, "question"),
        ({"tumour": "gep_net", "ki67_percent": -1.0}, "ki67_percent"),
        ({"tumour": "gep_net", "ki67_percent": 100.5}, "ki67_percent"),
        ({"tumour": "gep_net", "ki67_percent": math.nan}, "ki67_percent"),
        ({"tumour": "gep_net", "ki67_percent": math.inf}, "ki67_percent"),
        ({"tumour": "gep_net", "ki67_percent": True}, "ki67_percent"),
        ({"tumour": "gep_net", "ki67_percent": "high"}, "ki67_percent"),
        ({"tumour": "mtc", "calcitonin_pg_ml": -0.1}, "calcitonin_pg_ml"),
        ({"tumour": "mtc", "calcitonin_pg_ml": math.inf}, "calcitonin_pg_ml"),
        ({"tumour": "gep_net", "unavailable": ["unobtainium PET"]}, "unavailable"),
        ({"tumour": "ppgl", "genotype": "NF1", "site": "head_and_neck"}, "inputs"),
    ],
)
def test_bad_input_raises_typed_error(kwargs, field):
    with pytest.raises(PathwayError) as info:
        recommend(**kwargs)
    err = info.value
    assert isinstance(err, TheranetError) and isinstance(err, ValueError)
    assert err.field == field
    assert err.fix  # every error says how to fix it


def test_unknown_tumour_lists_accepted_names():
    with pytest.raises(PathwayError) as info:
        recommend("glioma")
    for name in TUMOUR_TYPES:
        assert name in str(info.value)


# ----------------------------------------------------------------------------------------
# site tables


SITE_ROW = """
version = "site-1"
date = "2026-12-01"

[[row]]
id = "lung_carcinoid_typical"
tumour = ["lung_carcinoid"]
label = "Lung carcinoid, typical (site protocol: add FDG)"
section = "clinical.md §2"
status = "uncertain"
sources = ["AUC-SSTR-2018"]
when = [{ grade = ["typical"] }]
first_line = ["sstr_pet"]
second_line = ["fdg_pet"]
anatomical = ["chest_ct"]
"""


def test_site_table_replaces_a_row(tmp_path):
    path = tmp_path / "site.toml"
    path.write_text(SITE_ROW, encoding="utf-8")
    table = load_table(path)
    assert table.version == f"{table_version()}+site-1" and table.date == "2026-12-01"
    p = recommend("lung carcinoid", grade="typical", table=table)
    assert line(p, 2) == [("fdg_pet",)]
    # the shipped table is untouched
    assert line(recommend("lung carcinoid", grade="typical"), 2) == []


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ('sources = ["AUC-SSTR-2018"]', 'sources = ["Someone-2031"]'),  # unknown source ID
        ('sources = ["AUC-SSTR-2018"]', "sources = []"),  # no source
        ('second_line = ["fdg_pet"]', 'second_line = ["tau_pet"]'),  # unknown modality
        ('status = "uncertain"', 'status = "probably"'),
        ('when = [{ grade = ["typical"] }]', 'when = [{ genotype = ["SDHx"] }]'),
    ],
)
def test_site_table_is_validated(tmp_path, old, new):
    path = tmp_path / "site.toml"
    assert old in SITE_ROW
    path.write_text(SITE_ROW.replace(old, new), encoding="utf-8")
    with pytest.raises(PathwayError):
        load_table(path)


def test_load_table_errors(tmp_path):
    with pytest.raises(PathwayError) as info:
        load_table(tmp_path / "missing.toml")
    assert info.value.field == "path"
    bad = tmp_path / "bad.toml"
    bad.write_text("version = [", encoding="utf-8")
    with pytest.raises(PathwayError):
        load_table(bad)
    undated = tmp_path / "undated.toml"
    undated.write_text('version = "x"\n', encoding="utf-8")
    with pytest.raises(PathwayError) as info:
        load_table(undated, merge=False)
    assert info.value.field == "date"
    extra = tmp_path / "extra.toml"
    extra.write_text('version = "x"\nfoo = 1\n', encoding="utf-8")
    with pytest.raises(PathwayError):
        load_table(extra)


def test_module_exports():
    for name in pw.__all__:
        assert hasattr(pw, name), name
