"""Tests of theranet._tables: the plumbing shared by the sourced TOML tables."""

from __future__ import annotations

from dataclasses import dataclass, replace

import pytest

from theranet import pathway, radiobiology, radiopharmaceuticals
from theranet._tables import SourcedTable, load_user_table, parse_toml, read_shipped
from theranet.errors import TheranetError
from theranet.therapy import eligibility, planning


class ToyError(TheranetError, ValueError):
    """Error of the toy table."""


@dataclass(frozen=True)
class Toy:
    name: str
    aliases: tuple[str, ...] = ()


class ToyTable(SourcedTable[Toy]):
    _entry_type = Toy

    def _clash_error(self, entry: Toy, other: Toy, key: str) -> ToyError:
        return ToyError(
            f"toy.{entry.name}",
            f"name or alias also used by '{other.name}'",
            key,
            source=" + ".join(self._paths) or None,
        )


def toys() -> ToyTable:
    entries = [Toy("red_marrow", ("marrow", "Bone Marrow")), Toy("kidney", ("kidneys",))]
    return ToyTable(entries, "1.0", ("shipped.toml", "site.toml"))


# ----------------------------------------------------------------------------------------
# SourcedTable


def test_version_paths_names_len_iter():
    table = toys()
    assert table.version == "1.0"
    assert table.paths == ("shipped.toml", "site.toml")
    assert table.names() == ("red_marrow", "kidney")
    assert len(table) == 2
    assert [t.name for t in table] == ["red_marrow", "kidney"]


def test_version_is_a_string_and_paths_a_tuple():
    table = ToyTable([Toy("a")], 2, ["x.toml"])  # type: ignore[arg-type]
    assert table.version == "2" and table.paths == ("x.toml",)


@pytest.mark.parametrize("name", ["red_marrow", "Red Marrow", "red-marrow", " RED  marrow "])
def test_lookup_ignores_case_spaces_and_hyphens(name):
    table = toys()
    assert table._lookup(name) is table._lookup("red_marrow") is next(iter(table))


def test_lookup_by_alias_and_unknown():
    table = toys()
    assert table._lookup("bone-marrow").name == "red_marrow"
    assert table._lookup("KIDNEYS").name == "kidney"
    assert table._lookup("liver") is None


def test_contains_names_aliases_and_entries():
    table = toys()
    assert "Bone Marrow" in table and "kidney" in table
    assert "liver" not in table
    assert Toy("kidney", ("kidneys",)) in table
    assert Toy("liver") not in table
    assert 3 not in table


def test_alias_clash_raises_subclass_error_naming_both_entries():
    with pytest.raises(ToyError) as info:
        ToyTable([Toy("kidney"), Toy("renal", ("Kidney",))], "1", ("a.toml", "b.toml"))
    err = info.value
    assert err.field == "toy.renal"
    assert err.problem == "name or alias also used by 'kidney'"
    assert err.value == "kidney"
    assert err.source == "a.toml + b.toml"


def test_repeated_key_within_one_entry_is_no_clash():
    table = ToyTable([Toy("kidney", ("Kidney", "kidney"))], "1")
    assert table.names() == ("kidney",) and table.paths == ()


def test_normalise_can_be_replaced():
    class Exact(ToyTable):
        _normalise = staticmethod(str.casefold)

    table = Exact([Toy("red marrow")], "1")
    assert "RED MARROW" in table
    assert "red_marrow" not in table


def test_base_without_clash_hook_is_not_usable():
    class Bare(SourcedTable[Toy]):
        _entry_type = Toy

    assert Bare([Toy("a")], "1").names() == ("a",)
    with pytest.raises(NotImplementedError):
        Bare([Toy("a"), Toy("b", ("a",))], "1")


# ----------------------------------------------------------------------------------------
# module tables keep their own errors and messages


def test_tissue_clash_keeps_radiobiology_error():
    kidney = radiobiology.tissue("kidney")
    clash = replace(kidney, name="renal", aliases=("Kidney",))
    with pytest.raises(radiobiology.RadiobiologyError) as info:
        radiobiology.TissueTable([kidney, clash], "1", ("a.toml", "b.toml"))
    err = info.value
    assert err.field == "tissue.renal" and err.problem == "name or alias also used by 'kidney'"
    assert err.fix == "make tissue names and aliases unique" and err.source == "a.toml + b.toml"


def test_catalogue_clash_keeps_catalogue_error():
    entry = radiopharmaceuticals.get("Lutathera")
    with pytest.raises(radiopharmaceuticals.CatalogueError) as info:
        radiopharmaceuticals.Catalogue([entry, replace(entry)], "1", ("a.toml", "b.toml"))
    err = info.value
    assert err.field == f"radiopharmaceutical '{entry.name}'"
    assert err.problem == f"name or alias also used by '{entry.name}'"
    assert err.fix == "make names and aliases unique" and err.source == "a.toml, b.toml"


def test_catalogue_lookup_keeps_its_own_key():
    table = radiopharmaceuticals.active_catalogue()
    assert table.get("(Lu-177) DOTA.TATE") is table.get("lu177dotatate")
    assert "DOTATATE 177Lu" in table and "nothing" not in table
    assert table.names()[0] == next(iter(table)).name and len(table) == len(table.entries)


# ----------------------------------------------------------------------------------------
# TOML helpers


def test_parse_toml_raises_the_given_error():
    assert parse_toml(ToyError, "a = 1", "x.toml") == {"a": 1}
    with pytest.raises(ToyError) as info:
        parse_toml(ToyError, "a = ", "x.toml")
    err = info.value
    assert err.field == "TOML" and err.problem.startswith("cannot be parsed: ")
    assert err.fix == "fix the TOML syntax" and err.source == "x.toml"
    assert err.__cause__ is None and err.__suppress_context__


@pytest.mark.parametrize(
    ("module", "data_file"),
    [
        (radiobiology, "data/radiobiology.toml"),
        (radiopharmaceuticals, "data/radiopharmaceuticals.toml"),
        (planning, "data/planning_limits.toml"),
        (pathway, "data/pathway.toml"),
        (eligibility, "data/eligibility.toml"),
    ],
)
def test_read_shipped_names_the_package_file(module, data_file):
    doc, source = read_shipped(data_file, lambda text, src: (text, src))
    assert source == f"theranet/{data_file}"
    assert doc[1] == source and "version" in doc[0]
    assert module._DATA_FILE == data_file


def test_shipped_tables_are_parsed_once():
    for module in (radiobiology, radiopharmaceuticals, planning, pathway):
        assert module._shipped_doc() is module._shipped_doc()
        assert module._shipped() is module._shipped()
    assert eligibility._shipped() is eligibility._shipped()


def _build(doc, version, paths):
    return doc, version, paths


def _merge(base, override):
    return {**base, **override}


def test_load_user_table_merged_and_alone(tmp_path):
    site = tmp_path / "site.toml"
    site.write_text('version = "s1"\nb = 2\n', encoding="utf-8")
    shipped = ({"version": "1.0", "a": 1}, "theranet/data/x.toml")
    kwargs = {"shipped": shipped, "read_toml": lambda t, s: parse_toml(ToyError, t, s)}
    doc, version, paths = load_user_table(
        ToyError, site, merge=True, merge_docs=_merge, build=_build, **kwargs
    )
    assert doc == {"version": "s1", "a": 1, "b": 2}
    assert version == "1.0+s1" and paths == ("theranet/data/x.toml", str(site))
    doc, version, paths = load_user_table(
        ToyError, str(site), merge=False, merge_docs=_merge, build=_build, **kwargs
    )
    assert doc == {"version": "s1", "b": 2} and version == "s1" and paths == (str(site),)


def test_load_user_table_without_version_and_unreadable(tmp_path):
    site = tmp_path / "site.toml"
    site.write_text("b = 2\n", encoding="utf-8")
    shipped = ({"a": 1}, "shipped.toml")
    kwargs = {"shipped": shipped, "read_toml": lambda t, s: parse_toml(ToyError, t, s)}
    _, version, _ = load_user_table(
        ToyError, site, merge=True, merge_docs=_merge, build=_build, **kwargs
    )
    assert version == "+user"
    with pytest.raises(ToyError, match="cannot be read"):
        load_user_table(
            ToyError,
            tmp_path / "missing.toml",
            merge=True,
            merge_docs=_merge,
            build=_build,
            **kwargs,
        )
