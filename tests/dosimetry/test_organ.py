"""Tests of the S-table reader and MIRD arithmetic.

All S-values and masses in these tables are INVENTED for the tests (round numbers
chosen for hand arithmetic); they are not physics data.
"""

from __future__ import annotations

import math

import pytest

from theranet.dosimetry import organ
from theranet.dosimetry.organ import (
    DosimetryInputError,
    STableError,
    load_s_table,
    mird_dose,
    sphere_dose,
)
from theranet.errors import UnitError

# Invented values, mGy/(MBq s).
SPLIT_TABLE = """\
# theranet S-value table (INVENTED VALUES FOR TESTS)
# nuclide: 177Lu
# phantom: test phantom
target,source,s_np_mgy_per_mbq_s,s_p_mgy_per_mbq_s,phantom_target_mass_g,phantom_source_mass_g
kidneys,kidneys,1.0e-4,2.0e-5,300,300
kidneys,liver,0,1.0e-6,300,1800
liver,kidneys,0,1.0e-6,1800,300
liver,liver,2.0e-5,4.0e-6,1800,1800
"""


def _write(tmp_path, text, name="s.csv"):
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


@pytest.fixture
def split_table(tmp_path):
    return load_s_table(_write(tmp_path, SPLIT_TABLE))


def test_load_split_table(split_table):
    t = split_table
    assert t.nuclide == "Lu-177"
    assert t.phantom == "test phantom"
    assert t.targets == ("kidneys", "liver")
    assert t.sources == ("kidneys", "liver")
    e = t.entry("kidneys", "kidneys")
    assert e.s_mgy_per_mbq_s == pytest.approx(1.2e-4)
    assert e.has_split
    assert e.phantom_target_mass_g == 300


def test_unit_conversion_gy_per_mbq_s(tmp_path):
    text = "# nuclide: Lu-177\n# phantom: p\ntarget,source,s_gy_per_mbq_s\na,a,2e-7\n"
    t = load_s_table(_write(tmp_path, text))
    assert t.entry("a", "a").s_mgy_per_mbq_s == pytest.approx(2e-4)
    text = "# nuclide: Lu-177\n# phantom: p\ntarget,source,s_gy_per_bq_s\na,a,2e-13\n"
    t = load_s_table(_write(tmp_path, text))
    assert t.entry("a", "a").s_mgy_per_mbq_s == pytest.approx(2e-4)


def test_mird_dose_hand_arithmetic(split_table):
    # kidneys: 100 MBq h * 1.2e-4 + 1000 MBq h * 1e-6 = 0.012 + 0.001 = 0.013 mGy s/h...
    # D = 0.013 mGy/(MBq s) * MBq h * 3600 s/h / 1000 = 0.0468 Gy
    doses = mird_dose({"kidneys": 100.0, "liver": 1000.0}, split_table)
    k = doses["kidneys"]
    assert k.contributions_gy["kidneys"] == pytest.approx(100 * 1.2e-4 * 3.6)
    assert k.contributions_gy["liver"] == pytest.approx(1000 * 1e-6 * 3.6)
    assert k.dose_gy == pytest.approx(0.0468)
    # liver: 100 * 1e-6 + 1000 * 2.4e-5 = 0.0241 -> 0.08676 Gy
    assert doses["liver"].dose_gy == pytest.approx(0.08676)


def test_mass_scaling_with_split(split_table):
    # kidneys patient 150 g: ratio 2 -> 1e-4 * 2 + 2e-5 * 2**(2/3)
    doses = mird_dose({"kidneys": 100.0}, split_table, masses_g={"kidneys": 150.0})
    s = 1e-4 * 2 + 2e-5 * 2 ** (2 / 3)
    assert doses["kidneys"].s_self_mgy_per_mbq_s == pytest.approx(s)
    assert doses["kidneys"].dose_gy == pytest.approx(100 * s * 3.6)
    assert doses["kidneys"].mass_g == 150.0
    # cross-dose unscaled
    assert doses["liver"].dose_gy == pytest.approx(100 * 1e-6 * 3.6)
    # configurable exponent
    d1 = mird_dose(
        {"kidneys": 100.0},
        split_table,
        masses_g={"kidneys": 150.0},
        scaling_exponent_penetrating=1.0,
    )
    assert d1["kidneys"].s_self_mgy_per_mbq_s == pytest.approx(1.2e-4 * 2)


def test_mass_scaling_without_split_warns(tmp_path):
    text = (
        "# nuclide: Lu-177\n# phantom: p\n"
        "target,source,s_mgy_per_mbq_s,phantom_target_mass_g\n"
        "a,a,1e-4,200\n"
    )
    t = load_s_table(_write(tmp_path, text))
    with pytest.warns(UserWarning, match="non-penetrating"):
        d = mird_dose({"a": 10.0}, t, masses_g={"a": 400.0})
    assert d["a"].s_self_mgy_per_mbq_s == pytest.approx(0.5e-4)
    assert d["a"].dose_gy == pytest.approx(10 * 0.5e-4 * 3.6)
    assert any("non-penetrating" in n for n in d["a"].notes)


def test_mass_without_phantom_mass_refused(tmp_path):
    text = "# nuclide: Lu-177\n# phantom: p\ntarget,source,s_mgy_per_mbq_s\na,a,1e-4\n"
    t = load_s_table(_write(tmp_path, text))
    with pytest.raises(DosimetryInputError, match="phantom mass"):
        mird_dose({"a": 1.0}, t, masses_g={"a": 100.0})


def test_missing_pairs_and_unknown_source(tmp_path, split_table):
    text = "# nuclide: Lu-177\n# phantom: p\ntarget,source,s_mgy_per_mbq_s\na,a,1e-4\nb,b,1e-4\n"
    t = load_s_table(_write(tmp_path, text))
    with pytest.raises(DosimetryInputError, match=r"S\(a <- b\)"):
        mird_dose({"a": 1.0, "b": 1.0}, t)
    d = mird_dose({"a": 1.0, "b": 1.0}, t, missing_pairs="zero")
    assert d["a"].dose_gy == pytest.approx(1e-4 * 3.6)
    with pytest.raises(DosimetryInputError, match="spleen"):
        mird_dose({"spleen": 1.0}, split_table)
    with pytest.raises(DosimetryInputError, match="tia_mbq_h"):
        mird_dose({"kidneys": -1.0}, split_table)


def test_mass_of_unknown_target_refused(split_table):
    # "kidney" vs the table's "kidneys": must not be silently ignored (dose unscaled)
    with pytest.raises(DosimetryInputError, match="target not in the S table") as exc:
        mird_dose({"kidneys": 100.0}, split_table, masses_g={"kidney": 150.0})
    assert exc.value.field == "masses_g['kidney']"
    assert "'kidneys'" in exc.value.fix and "'liver'" in exc.value.fix
    # a table target that is not a source is still accepted (noted, nothing scaled)
    d = mird_dose({"kidneys": 100.0}, split_table, masses_g={"liver": 1500.0})
    assert any("not a source" in n for n in d["liver"].notes)


HEAD = "# nuclide: Lu-177\n# phantom: p\n"


@pytest.mark.parametrize(
    ("body", "exc", "match"),
    [
        ("target,source,s_mgy_per_mbq_s\na,a,abc\n", STableError, r"line 4.*s_mgy_per_mbq_s"),
        ("target,source,s_mgy_per_mbq_s\na,a,1e-4\nb,b,-1e-4\n", STableError, r"line 5.*non-neg"),
        ("target,source,s\na,a,1e-4\n", UnitError, r"line 3, column 's'.*unit"),
        ("target,source,s_mgy_per_kg\na,a,1e-4\n", UnitError, "unit"),
        ("target,source,s_mgy_per_mbq_s\na,a,\n", STableError, r"line 4.*no S value"),
        ("target,source,s_mgy_per_mbq_s\na,a,1e-4,5\n", STableError, r"line 4.*cells"),
        ("target,source,s_mgy_per_mbq_s\na,a,1\na,a,2\n", STableError, r"line 5.*duplicate"),
        ("source,s_mgy_per_mbq_s\na,1\n", STableError, "'target'"),
        (
            "target,source,s_np_mgy_per_mbq_s,s_p_mgy_per_mbq_s\na,a,1e-4,\n",
            STableError,
            r"line 4.*in part",
        ),
        (
            "target,source,s_mgy_per_mbq_s,s_np_mgy_per_mbq_s,s_p_mgy_per_mbq_s\na,a,1,0.5,0.4\n",
            STableError,
            r"line 4.*differs",
        ),
        (
            "target,source,s_mgy_per_mbq_s,s_np_gy_per_mbq_s,s_p_gy_per_mbq_s\na,a,1,0.5,0.5\n",
            UnitError,
            "different units",
        ),
        (
            "target,source,s_mgy_per_mbq_s,phantom_target_mass_g\na,a,1e-4,0\n",
            STableError,
            r"line 4.*phantom_target_mass_g.*positive",
        ),
    ],
)
def test_bad_rows(tmp_path, body, exc, match):
    with pytest.raises(exc, match=match) as info:
        load_s_table(_write(tmp_path, HEAD + body))
    assert "s.csv" in str(info.value)


def test_missing_header_keys(tmp_path):
    with pytest.raises(STableError, match="nuclide"):
        load_s_table(_write(tmp_path, "# phantom: p\ntarget,source,s_mgy_per_mbq_s\na,a,1\n"))
    with pytest.raises(STableError, match="phantom"):
        load_s_table(_write(tmp_path, "# nuclide: Lu-177\ntarget,source,s_mgy_per_mbq_s\na,a,1\n"))


def test_sphere_dose_arithmetic(monkeypatch):
    calls = {}

    def fake(nuclide, mass_g, *, material, emissions):
        calls.update(nuclide=nuclide, mass_g=mass_g, material=material)
        return 2.0e-3  # invented, mGy/(MBq s)

    monkeypatch.setattr(organ, "sphere_s_value", fake)
    d = sphere_dose(500.0, 20.0, "Lu-177")
    assert d.dose_gy == pytest.approx(500 * 2e-3 * 3.6)
    assert calls == {"nuclide": "Lu-177", "mass_g": 20.0, "material": "soft_tissue"}
    with pytest.raises(DosimetryInputError):
        sphere_dose(1.0, 0.0, "Lu-177")


@pytest.mark.slow
def test_sphere_dose_large_sphere_close_to_local_deposition():
    # 177Lu electrons in a 100 g sphere: nearly all electron energy absorbed,
    # local deposition ~ 0.0853 Gy per GBq h per kg (clinical.md §6.1).
    d = sphere_dose(1000.0, 100.0, "Lu-177", emissions=["beta", "ce", "auger"])
    expected = 0.0853 / 0.1
    assert math.isclose(d.dose_gy, expected, rel_tol=0.03)
