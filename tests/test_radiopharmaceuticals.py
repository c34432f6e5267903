"""Tests of the radiopharmaceutical catalogue (theranet.radiopharmaceuticals).

Spot checks cite the reference section of /work/shared/reference/clinical.md (✔ = verified
there) so that a changed table value is traced back to its source.
"""

from __future__ import annotations

import importlib.util
import math
import pickle
import textwrap
from pathlib import Path

import pytest

from theranet import radiopharmaceuticals as rp
from theranet.errors import MissingFieldError, TheranetError, UnitError

REQUIRED = {
    "177Lu-DOTATATE": "Lu-177",
    "90Y-DOTATOC": "Y-90",
    "131I-MIBG": "I-131",
    "123I-MIBG": "I-123",
    "111In-pentetreotide": "In-111",
    "68Ga-DOTATATE": "Ga-68",
    "68Ga-DOTATOC": "Ga-68",
    "64Cu-DOTATATE": "Cu-64",
    "18F-FDG": "F-18",
    "18F-DOPA": "F-18",
}

ALIASES = {
    "177Lu-DOTATATE": [
        "Lutathera",
        "lu-177-dotatate",
        "DOTATATE Lu-177",
        "177lu dotatate",
        "Lu177DOTATATE",
        "lutetium-177 DOTATATE",
        "177Lu-oxodotreotide",
    ],
    "90Y-DOTATOC": ["Y-90 DOTATOC", "dotatoc y90", "90Y-edotreotide", "yttrium-90 dotatoc"],
    "131I-MIBG": ["Azedra", "I-131 MIBG", "iobenguane I-131", "mibg 131i"],
    "123I-MIBG": ["AdreView", "I-123-MIBG", "123i mibg", "iobenguane I 123"],
    "111In-pentetreotide": [
        "Octreoscan",
        "OCTREOSCAN",
        "In-111 pentetreotide",
        "111In-DTPA-octreotide",
    ],
    "68Ga-DOTATATE": ["NETSPOT", "netspot", "Ga-68 DOTATATE", "DOTATATE 68Ga", "68Ga-DOTA-TATE"],
    "68Ga-DOTATOC": ["Ga-68-DOTATOC", "68Ga-edotreotide", "gallium Ga 68 edotreotide"],
    "64Cu-DOTATATE": ["Detectnet", "Cu-64 DOTATATE", "copper-64 dotatate"],
    "18F-FDG": ["FDG", "fdg", "[18F]FDG", "F-18 FDG", "fluorodeoxyglucose"],
    "18F-DOPA": ["FDOPA", "F-DOPA", "18F-FDOPA", "F-18 DOPA", "[18F]FDOPA"],
}


@pytest.fixture(autouse=True)
def _reset_active_catalogue():
    yield
    rp.use_catalogue(None)


# ---------------------------------------------------------------------------------------
# presence and lookup


def test_every_required_tracer_present_with_canonical_nuclide():
    names = {e.name: e for e in rp.catalogue()}
    assert set(REQUIRED) <= set(names)
    for name, nuclide in REQUIRED.items():
        assert names[name].nuclide_name == nuclide
        assert rp.get(name) is names[name]


@pytest.mark.parametrize(("name", "alias"), [(n, a) for n, al in ALIASES.items() for a in al])
def test_aliases_resolve(name, alias):
    assert rp.get(alias).name == name


def test_lookup_is_case_spacing_and_hyphen_insensitive():
    assert rp.get("  lU - 177   dOtAtAtE ") is rp.get("177Lu-DOTATATE")
    assert rp.get(rp.get("NETSPOT")) is rp.get("68Ga-DOTATATE")
    assert "lutathera" in rp.active_catalogue()
    assert "Lu-177 PSMA" not in rp.active_catalogue()


def test_unknown_name_raises_with_name_and_accepted_names():
    with pytest.raises(rp.UnknownTracerError) as info:
        rp.get("Lu-177 PSMA-617")
    message = str(info.value)
    assert "Lu-177 PSMA-617" in message
    assert "177Lu-DOTATATE" in message and "18F-FDG" in message
    assert isinstance(info.value, ValueError) and isinstance(info.value, TheranetError)


def test_unknown_name_suggests_close_match():
    with pytest.raises(rp.UnknownTracerError, match="did you mean '68Ga-DOTATATE'"):
        rp.get("NETSPOTT")


def test_unknown_tracer_error_pickles():
    err = rp.UnknownTracerError("name", "unknown radiopharmaceutical", "x")
    assert str(pickle.loads(pickle.dumps(err))) == str(err)


def test_lookup_rejects_non_string():
    with pytest.raises(TypeError):
        rp.get(177)


def test_roles_modalities_targets():
    assert rp.get("Lutathera").role == "therapeutic"
    assert rp.get("90Y-DOTATOC").is_therapeutic and not rp.get("90Y-DOTATOC").is_diagnostic
    assert rp.get("131I-MIBG").role == "both"
    for name in ("68Ga-DOTATATE", "68Ga-DOTATOC", "64Cu-DOTATATE", "18F-FDG", "18F-DOPA"):
        assert rp.get(name).modalities == ("PET",)
        assert rp.get(name).photopeaks == ()
    assert set(rp.get("Octreoscan").modalities) == {"planar", "SPECT"}
    assert rp.get("68Ga-DOTATATE").target == "SSTR2"
    assert "norepinephrine" in rp.get("AdreView").target
    assert "GLUT" in rp.get("FDG").target
    assert "LAT1" in rp.get("FDOPA").target


# ---------------------------------------------------------------------------------------
# provenance of every value


def test_every_value_has_unit_source_section_and_allowed_status():
    count = 0
    for entry in rp.catalogue():
        for path, item in entry.iter_sourced():
            where = f"{entry.name}.{path}"
            assert isinstance(item, rp.Sourced), where
            assert item.unit.strip(), where
            assert item.source.strip(), where
            assert item.section.strip(), where
            assert item.status in rp.STATUSES, where
            if item.unit != "text":
                values = item.value if isinstance(item.value, tuple) else (item.value,)
                assert all(isinstance(v, float) and math.isfinite(v) for v in values), where
            count += 1
        for key, code in entry.codes.items():
            assert key in {"radionuclide", "radiopharmaceutical"}
            assert code.scheme and code.value and code.meaning and code.source and code.section
            assert code.status in rp.STATUSES
    assert count > 100


def test_internal_units():
    for entry in rp.catalogue():
        assert all(a.unit in ("MBq", "MBq/kg", "MBq/m^2") for a in entry.activities.values())
        assert all(t.unit == "h" for t in entry.imaging_times_h.values())
        for w in entry.photopeaks:
            assert w.centre.unit == "keV" and w.width.unit == "%"
        if entry.collimator is not None:
            assert entry.collimator.unit == "text"


def test_statuses_are_all_used_and_uncertain_values_flagged():
    statuses = {i.status for e in rp.catalogue() for _, i in e.iter_sourced()}
    assert statuses == set(rp.STATUSES)
    # the 15 % vs 20 % 111In window width is [UNCERTAIN] in clinical.md §1.2
    assert {w.width.status for w in rp.get("Octreoscan").photopeaks} == {"uncertain"}
    # 18F-DOPA 2-4 MBq/kg is [UNCERTAIN] in clinical.md §1.5
    assert rp.get("FDOPA").activities["per_kg_min"].status == "uncertain"


def test_table_has_version():
    assert rp.active_catalogue().version == "1.0.0"
    assert rp.active_catalogue().paths[0].endswith("radiopharmaceuticals.toml")


def test_lookup_keys_unique_across_catalogue():
    seen: dict[str, str] = {}
    for entry in rp.catalogue():
        for key in entry.lookup_keys():
            assert key not in seen, (key, entry.name, seen.get(key))
            seen[key] = entry.name


# ---------------------------------------------------------------------------------------
# spot checks against the reference text


def test_68ga_dotatate_activity():
    # clinical.md §1.4 ✔ [NETSPOT-PI]: 2 MBq/kg, max 200 MBq, within 10 %
    ga = rp.get("68Ga-DOTATATE")
    assert ga.activities["per_kg"].value == 2.0 and ga.activities["per_kg"].unit == "MBq/kg"
    assert ga.activities["max"].value == 200.0 and ga.activities["max"].unit == "MBq"
    assert ga.activities["per_kg"].is_verified and ga.activities["max"].is_verified
    assert ga.activities["per_kg"].source == "NETSPOT-PI"
    assert ga.parameters["activity_tolerance"].value == 10.0
    # §1.4 ✔: start acquisition 40-90 min p.i. (stored in h)
    assert ga.imaging_times_h["acquisition_start_earliest"].value == pytest.approx(40 / 60)
    assert ga.imaging_times_h["acquisition_start_latest"].value == 1.5


def test_111in_pentetreotide_activity_and_times():
    # clinical.md §1.2 ✔ [OctreoScan-PI]: 111 MBq planar, 222 MBq SPECT; 4 h + 24 h ✔
    oct_ = rp.get("Octreoscan")
    assert oct_.activities["planar"].value == 111.0
    assert oct_.activities["spect"].value == 222.0
    assert oct_.activities["planar"].is_verified and oct_.activities["spect"].is_verified
    assert oct_.imaging_times_h["standard"].value == (4.0, 24.0)
    # §1.2: two 20 % windows on 171 and 245 keV, medium-energy collimator
    assert oct_.photopeaks_kev == (171.0, 245.0)
    assert {w.width_percent for w in oct_.photopeaks} == {20.0}
    assert oct_.collimator.value == "medium-energy"


def test_131i_photopeak():
    # clinical.md §1.1 ✔ [131I SmPC]: gamma 364.5 keV (81.7 %)
    w = rp.get("131I-MIBG").photopeaks[0]
    assert w.centre_kev == 364.5 and w.centre.is_verified
    assert rp.get("131I-MIBG").collimator.value == "high-energy"


def test_177lu_window_and_regimen():
    # clinical.md §1.9: photopeak 208 keV, 20 % window (width [UNCERTAIN])
    lu = rp.get("Lutathera")
    w = lu.photopeaks[0]
    assert (w.centre_kev, w.width_percent) == (208.0, 20.0)
    assert w.width.status == "uncertain"
    assert 113.0 in lu.photopeaks_kev
    # clinical.md §5.2 ✔ [Lutathera-PI]: 7.4 GBq x 4 every 8 weeks; reduced 3.7 GBq
    assert lu.activities["per_cycle"].value == 7400.0 and lu.activities["per_cycle"].is_verified
    assert lu.activities["reduced_per_cycle"].value == 3700.0
    assert lu.parameters["cycles"].value == 4.0
    assert lu.parameters["cycle_interval"].value == 8 * 7 * 24.0
    assert lu.parameters["cycle_interval"].unit == "h"
    assert lu.parameters["amino_acid_start"].value == -0.5


def test_123i_mibg_activity():
    # clinical.md §1.3 ✔ [AdreView-PI]: adult 370 MBq; imaging 24 ± 6 h ✔
    mibg = rp.get("AdreView")
    assert mibg.activities["adult"].value == 370.0 and mibg.activities["adult"].is_verified
    # §1.3 ✔ [NA-Peds-consensus]: 5.2 MBq/kg, min 37, max 370 MBq
    assert mibg.activities["paediatric_per_kg"].value == 5.2
    assert mibg.activities["paediatric_min"].value == 37.0
    assert mibg.activities["paediatric_max"].value == 370.0
    assert mibg.imaging_times_h["label_window_earliest"].value == 18.0
    assert mibg.imaging_times_h["label_window_latest"].value == 30.0
    assert mibg.photopeaks_kev == (159.0,)


def test_other_spot_checks():
    # clinical.md §1.4 ✔ [Detectnet-PI]: 148 MBq, 45-90 min
    cu = rp.get("Detectnet")
    assert cu.activities["adult"].value == 148.0
    assert cu.imaging_times_h["acquisition_start_earliest"].value == 0.75
    # §1.4 ✔ [DOTATOC-PI]: 148 MBq (111-185), paediatric 1.59 MBq/kg (11.1-111)
    toc = rp.get("68Ga-DOTATOC")
    assert toc.activities["adult"].value == 148.0
    assert (toc.activities["adult_min"].value, toc.activities["adult_max"].value) == (111.0, 185.0)
    assert toc.activities["paediatric_per_kg"].value == 1.59
    # §5.3 ✔ [Menda-2018]: cycle 1 adults 4.4 GBq, children 1.85 GBq/m^2
    y = rp.get("90Y-DOTATOC")
    assert y.activities["cycle1_adult"].value == 4400.0
    assert y.activities["cycle1_paediatric_per_m2"].value == 1850.0
    assert y.activities["cycle1_paediatric_per_m2"].unit == "MBq/m^2"
    # §5.4 ✔ [Azedra-PI]: 18 500 MBq therapeutic (> 62.5 kg), 296 MBq/kg otherwise
    az = rp.get("Azedra")
    assert az.activities["azedra_therapeutic"].value == 18500.0
    assert az.activities["azedra_therapeutic_per_kg"].value == 296.0
    assert az.parameters["azedra_therapeutic_weight_threshold"].value == 62.5
    # §1.7 ✔: FDG uptake 60 min, acceptable 55-75 min; no activity in the reference
    fdg = rp.get("FDG")
    assert fdg.imaging_times_h["uptake_target"].value == 1.0
    assert fdg.activities == {}


def test_codes_from_reference_only():
    # ecosystem.md (a) "Radionuclide codes"
    lu = rp.get("177Lu-DOTATATE").codes
    assert (lu["radionuclide"].scheme, lu["radionuclide"].value) == ("SCT", "447553000")
    assert lu["radiopharmaceutical"].value == "781259000"
    assert rp.get("Octreoscan").codes["radiopharmaceutical"].value == "446800006"
    assert rp.get("NETSPOT").codes["radiopharmaceutical"].value == "724025002"
    assert rp.get("68Ga-DOTATOC").codes["radiopharmaceutical"].scheme == "UMLS"
    assert rp.get("18F-FDG").codes["radionuclide"].value == "77004003"
    assert rp.get("Y-90 DOTATOC").codes["radionuclide"].value == "14691008"
    assert rp.get("131I-MIBG").codes["radionuclide"].value == "1368003"
    assert rp.get("123I-MIBG").codes["radionuclide"].value == "21572004"
    # the reference gives no code for Cu-64 / 64Cu-DOTATATE: none invented
    assert rp.get("64Cu-DOTATATE").codes == {}
    assert "radiopharmaceutical" not in rp.get("18F-FDG").codes


def test_codes_match_pydicom_concepts():
    concepts = pytest.importorskip("pydicom.sr._concepts_dict").concepts
    known = {
        (scheme, code): meaning
        for scheme, by_keyword in concepts.items()
        for by_code in by_keyword.values()
        for code, (meaning, _cids) in by_code.items()
    }
    for entry in rp.catalogue():
        for code in entry.codes.values():
            assert known.get((code.scheme, code.value)) == code.meaning, (entry.name, code)


# ---------------------------------------------------------------------------------------
# energy windows


def test_energy_window_bounds():
    w = rp.EnergyWindow(208.0, 20.0)
    assert w.lower_kev == pytest.approx(187.2)
    assert w.upper_kev == pytest.approx(228.8)
    assert w.centre_mev == pytest.approx(0.208)
    assert w.lower_mev == pytest.approx(0.1872)
    assert w.contains_kev(208.4) and not w.contains_kev(230.0)
    w15 = rp.EnergyWindow(140.5, 15.0)
    assert (w15.lower_kev, w15.upper_kev) == pytest.approx((129.9625, 151.0375))


@pytest.mark.parametrize(
    ("centre", "width"), [(0.0, 20.0), (-1.0, 20.0), (208.0, 0.0), (208.0, 100.0), (math.nan, 20.0)]
)
def test_energy_window_rejects_bad_values(centre, width):
    with pytest.raises(rp.CatalogueError):
        rp.EnergyWindow(centre, width)


def test_sourced_rejects_bad_status():
    with pytest.raises(rp.CatalogueError, match="status"):
        rp.Sourced(1.0, "MBq", "x", "y", "probably")


def test_photopeaks_match_nuclide_gamma_lines():
    """Every photopeak lies within 2 keV of a gamma line (yield > 1 %) of its nuclide."""
    if importlib.util.find_spec("theranet.nuclides") is None:
        pytest.skip("theranet.nuclides not available")
    for entry in rp.catalogue():
        if not entry.photopeaks:
            continue
        gammas = entry.nuclide.emissions("gamma")
        lines_kev = [
            e * 1e3
            for e, y in zip(gammas.energy_mev, gammas.yield_per_decay, strict=True)
            if y > 0.01
        ]
        for w in entry.photopeaks:
            nearest = min(lines_kev, key=lambda e, c=w.centre_kev: abs(e - c))
            assert abs(nearest - w.centre_kev) <= 2.0, (entry.name, w.centre_kev, lines_kev)


def test_nuclide_property():
    if importlib.util.find_spec("theranet.nuclides") is None:
        pytest.skip("theranet.nuclides not available")
    for entry in rp.catalogue():
        assert entry.nuclide.name == entry.nuclide_name


# ---------------------------------------------------------------------------------------
# user tables


def _write(tmp_path: Path, text: str, name: str = "site.toml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


SITE_OVERRIDE = """
    version = "site-2025"

    [[radiopharmaceutical]]
    name = "NETSPOT"

    [radiopharmaceutical.activities]
    max = { value = 185, unit = "MBq", source = "site-12", section = "§3", status = "verified" }
"""


def test_user_toml_overrides_one_value(tmp_path):
    site = rp.load_catalogue(_write(tmp_path, SITE_OVERRIDE))
    ga = site.get("68Ga-DOTATATE")
    assert ga.name == "68Ga-DOTATATE"  # matched by alias, canonical name kept
    assert ga.activities["max"].value == 185.0
    assert ga.activities["max"].source == "site-12"
    # everything else is the shipped table
    assert ga.activities["per_kg"] == rp.get("68Ga-DOTATATE").activities["per_kg"]
    assert len(site) == len(rp.catalogue())
    assert site.version == "1.0.0+site-2025"
    # the default is untouched until use_catalogue()
    assert rp.get("68Ga-DOTATATE").activities["max"].value == 200.0
    rp.use_catalogue(site)
    assert rp.get("NETSPOT").activities["max"].value == 185.0
    rp.use_catalogue(None)
    assert rp.get("NETSPOT").activities["max"].value == 200.0


def test_use_catalogue_accepts_a_path(tmp_path):
    rp.use_catalogue(_write(tmp_path, SITE_OVERRIDE))
    assert rp.get("NETSPOT").activities["max"].value == 185.0


def test_user_toml_adds_entry_and_converts_units(tmp_path):
    path = _write(
        tmp_path,
        """
        version = "2"

        [[radiopharmaceutical]]
        name = "99mTc-HYNIC-TOC"
        compound = "HYNIC-TOC"
        nuclide = "Tc-99m"
        aliases = ["Tektrotyd"]
        target = "SSTR2"
        role = "diagnostic"
        modalities = ["SPECT"]

        [[radiopharmaceutical.photopeaks]]
        width_percent = { value = 15, unit = "%", source = "s", section = "x", status = "verified" }

        [radiopharmaceutical.photopeaks.centre_kev]
        value = 0.1405
        unit = "MeV"
        source = "s"
        section = "x"
        status = "uncertain"

        [radiopharmaceutical.activities]
        adult = { value = 0.74, unit = "GBq", source = "s", section = "x", status = "uncertain" }

        [radiopharmaceutical.imaging_times_h]
        early = { value = 120, unit = "min", source = "s", section = "x", status = "uncertain" }
        """,
    )
    site = rp.load_catalogue(path)
    tc = site.get("Tektrotyd")
    assert tc.activities["adult"].value == 740.0 and tc.activities["adult"].unit == "MBq"
    assert tc.imaging_times_h["early"].value == 2.0
    assert tc.photopeaks[0].centre_kev == 140.5
    assert len(site) == len(rp.catalogue()) + 1
    assert rp.get("Lutathera", catalogue=site).name == "177Lu-DOTATATE"


def test_replacing_table_without_merge(tmp_path):
    path = _write(
        tmp_path,
        """
        version = "only-one"

        [[radiopharmaceutical]]
        name = "18F-FDG"
        compound = "FDG"
        nuclide = "F-18"
        aliases = ["FDG"]
        target = "GLUT"
        role = "diagnostic"
        modalities = ["PET"]
        """,
    )
    site = rp.load_catalogue(path, merge=False)
    assert site.names() == ("18F-FDG",)
    with pytest.raises(rp.UnknownTracerError):
        site.get("Lutathera")


def test_missing_source_is_named(tmp_path):
    path = _write(
        tmp_path,
        """
        version = "x"

        [[radiopharmaceutical]]
        name = "68Ga-DOTATATE"

        [radiopharmaceutical.activities]
        max = { value = 185, unit = "MBq", section = "§3", status = "verified" }
        """,
    )
    with pytest.raises(MissingFieldError) as info:
        rp.load_catalogue(path)
    message = str(info.value)
    assert "68Ga-DOTATATE" in message and "activities.max.source" in message
    assert str(path) in message


@pytest.mark.parametrize("missing", ["unit", "status", "value", "section"])
def test_missing_parameter_fields_are_named(tmp_path, missing):
    fields = {
        "value": "1",
        "unit": '"h"',
        "source": '"s"',
        "section": '"x"',
        "status": '"verified"',
    }
    del fields[missing]
    inline = ", ".join(f"{k} = {v}" for k, v in fields.items())
    path = _write(
        tmp_path,
        f"""
        version = "x"
        [[radiopharmaceutical]]
        name = "FDG"
        [radiopharmaceutical.imaging_times_h]
        uptake_target = {{ {inline} }}
        """,
    )
    with pytest.raises(
        MissingFieldError, match=rf"18F-FDG.*imaging_times_h\.uptake_target\.{missing}"
    ):
        rp.load_catalogue(path)


@pytest.mark.parametrize(
    ("body", "error", "pattern"),
    [
        (
            '[[radiopharmaceutical]]\nname = "FDG"\n[radiopharmaceutical.activities]\n'
            'x = { value = 1, unit = "MBq", source = "s", section = "x", status = "maybe" }',
            rp.CatalogueError,
            r"activities\.x\.status.*maybe",
        ),
        (
            '[[radiopharmaceutical]]\nname = "FDG"\n[radiopharmaceutical.activities]\n'
            'x = { value = 1, unit = "h", source = "s", section = "x", status = "verified" }',
            UnitError,
            r"activities\.x\.unit",
        ),
        (
            '[[radiopharmaceutical]]\nname = "FDG"\n[radiopharmaceutical.activities]\n'
            'x = { value = -5, unit = "MBq", source = "s", section = "x", status = "verified" }',
            rp.CatalogueError,
            r"activities\.x\.value.*> 0",
        ),
        (
            '[[radiopharmaceutical]]\nname = "FDG"\n[radiopharmaceutical.activities]\n'
            'x = { value = "lots", unit = "MBq", source = "s", section = "x", '
            'status = "verified" }',
            rp.CatalogueError,
            r"must be a number",
        ),
        (
            '[[radiopharmaceutical]]\nname = "FDG"\nactivites = {}',
            rp.CatalogueError,
            r"unknown key.*activites",
        ),
        (
            '[[radiopharmaceutical]]\nname = "FDG"\nrole = "palliative"',
            rp.CatalogueError,
            r"18F-FDG.*role",
        ),
        (
            '[[radiopharmaceutical]]\nname = "FDG"\nnuclide = "lutetium"',
            rp.CatalogueError,
            r"nuclide.*lutetium",
        ),
        (
            '[[radiopharmaceutical]]\nname = "NETSPOT"\n[radiopharmaceutical.activities]\n'
            'eanm_min = { value = 300, unit = "MBq", source = "s", section = "x", '
            'status = "verified" }',
            rp.CatalogueError,
            r"eanm_min.*_max",
        ),
        (
            '[[radiopharmaceutical]]\nname = "New"\ncompound = "X"\nnuclide = "Ga-68"\n'
            'target = "t"\nrole = "diagnostic"\nmodalities = ["PET"]\naliases = ["NETSPOT"]',
            rp.CatalogueError,
            r"also used by '68Ga-DOTATATE'",
        ),
        (
            '[[radiopharmaceutical]]\nname = "New"\ncompound = "X"\nnuclide = "Ga-68"',
            MissingFieldError,
            r"'New'\.target",
        ),
        ('[[radiopharmaceutical]\nname = "x"', rp.CatalogueError, r"TOML"),
    ],
)
def test_malformed_tables_fail_clearly(tmp_path, body, error, pattern):
    path = _write(tmp_path, 'version = "bad"\n' + body)
    with pytest.raises(error, match=pattern):
        rp.load_catalogue(path)


def test_missing_version_and_file(tmp_path):
    path = _write(tmp_path, '[[radiopharmaceutical]]\nname = "FDG"\n')
    with pytest.raises(MissingFieldError, match="version"):
        rp.load_catalogue(path)
    with pytest.raises(rp.CatalogueError, match="cannot be read"):
        rp.load_catalogue(tmp_path / "absent.toml")


def test_entries_are_immutable():
    lu = rp.get("Lutathera")
    with pytest.raises(AttributeError):
        lu.name = "x"
    with pytest.raises(TypeError):
        lu.activities["per_cycle"] = None
    assert hash(lu) == hash(rp.get("177Lu-DOTATATE"))
