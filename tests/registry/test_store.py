"""The treatment registry on each backend (theranet.registry.store).

Floats are compared exactly: SQLite REAL and PostgreSQL DOUBLE PRECISION hold
IEEE doubles, and the exports write the shortest repr, so nothing may round.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import math
import os
import select
import signal
import subprocess
import sys
import textwrap

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text

from tests.registry.conftest import cycle_kwargs, region_rows, table_counts
from theranet.pipeline import RegionDose
from theranet.registry import CycleRecord, Registry, RegistryError, _migrate, default_path, store
from theranet.registry.models import Base

T1 = dt.datetime(2024, 1, 8, 10, 30)
T2 = dt.datetime(2024, 3, 4, 9, 15)
T3 = dt.datetime(2024, 4, 29, 9, 0)


def _expected_region(row: dict) -> dict:
    out = {"bed_gy": None, "eqd2_gy": None, "method": "", **row}
    for key in ("tia_sd_mbq_h", "dose_sd_gy"):
        if out[key] is not None and math.isnan(out[key]):
            out[key] = None  # NaN SD = unknown = None
    return out


def _assert_cycle(rec: CycleRecord, kwargs: dict, number: int) -> None:
    assert rec.patient_id == "NET-0001"
    assert (rec.treatment, rec.number) == (1, number)
    assert rec.tracer == kwargs["tracer"]
    assert rec.nuclide == kwargs["nuclide"]
    assert rec.administered_activity_mbq == kwargs["administered_activity_mbq"]
    assert rec.administration == kwargs["administration"]
    assert rec.times_h == tuple(kwargs["times_h"])
    assert rec.methods == tuple(kwargs["methods"])
    assert rec.software_version == kwargs["software_version"]
    assert list(rec.regions) == [r["region"] for r in kwargs["regions"]]
    for row in kwargs["regions"]:
        got = rec.regions[row["region"]].__dict__
        assert got == _expected_region(row)
    assert rec.created_at is not None and rec.created_at.tzinfo is dt.UTC


def test_record_two_cycles_and_read_back(registry, tmp_path):
    first = cycle_kwargs(T1)
    second = cycle_kwargs(
        T2, administered_activity_mbq=7350.25, regions=region_rows(3, 0.9), times_h=[24.0]
    )
    rec1 = registry.record_cycle("NET-0001", **first)
    rec2 = registry.record_cycle("NET-0001", **second)
    _assert_cycle(rec1, first, 1)
    _assert_cycle(rec2, second, 2)

    assert registry.patients() == ["NET-0001"]
    assert registry.cycles("NET-0001") == [rec1, rec2]
    assert registry.cycle("NET-0001", 2) == rec2
    assert registry.cycle("NET-0001", 1, treatment=1) == rec1

    # CSV: one row per region per cycle, floats exact
    path = registry.export("NET-0001", tmp_path / "out" / "net.csv")
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(first["regions"]) + len(second["regions"])
    assert [int(r["cycle"]) for r in rows] == [1] * 4 + [2] * 5
    assert float(rows[0]["mean_dose_gy"]) == first["regions"][0]["mean_dose_gy"]
    assert float(rows[4]["administered_activity_mbq"]) == 7350.25
    assert rows[4]["times_h"] == "24.0"
    assert rows[1]["dose_sd_gy"] == "" and rows[0]["bed_gy"] == ""
    assert dt.datetime.fromisoformat(rows[0]["administration"]) == T1

    # JSON: every field, methods included
    path = registry.export(None, tmp_path / "all.json")
    doc = json.loads(path.read_text())
    assert doc["format"] == "theranet.registry/1"
    assert [c["number"] for c in doc["cycles"]] == [1, 2]
    assert doc["cycles"][1] == rec2.as_dict()
    assert doc["cycles"][0]["methods"] == [list(m) for m in first["methods"]]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_pipeline_region_doses_and_mapping_accepted(registry):
    doses = {
        r["region"]: RegionDose(**{k: v for k, v in r.items() if k != "region"}, region=r["region"])
        for r in region_rows()
    }
    rec = registry.record_cycle("NET-0002", **cycle_kwargs(T1, regions=doses))
    assert list(rec.regions) == list(doses)
    assert rec.regions["kidneys"].mean_dose_gy == doses["kidneys"].mean_dose_gy


def test_timezone_aware_administration_round_trips(registry):
    cet = dt.timezone(dt.timedelta(hours=1))
    rec = registry.record_cycle("NET-0003", **cycle_kwargs(T1.replace(tzinfo=cet)))
    assert rec.administration == T1.replace(tzinfo=cet)
    assert rec.administration.utcoffset() == dt.timedelta(hours=1)
    with pytest.raises(RegistryError, match="timezone"):
        registry.record_cycle("NET-0003", **cycle_kwargs(T2))


def test_set_bed(registry):
    registry.record_cycle("NET-0001", **cycle_kwargs(T1))
    row = registry.set_bed("NET-0001", 1, "kidneys", 4.25, 3.5)
    assert (row.bed_gy, row.eqd2_gy) == (4.25, 3.5)
    assert registry.cycle("NET-0001", 1).regions["kidneys"].bed_gy == 4.25
    with pytest.raises(RegistryError) as err:
        registry.set_bed("NET-0001", 1, "liver", 1.0)
    assert err.value.field == "region" and "kidneys" in err.value.fix
    with pytest.raises(RegistryError) as err:
        registry.set_bed("NET-0001", 3, "kidneys", 1.0)
    assert err.value.field == "cycle_number" and err.value.value == 3


def _refusal(registry, db_url, patient_id, kwargs) -> RegistryError:
    before = table_counts(db_url)
    with pytest.raises(RegistryError) as err:
        registry.record_cycle(patient_id, **kwargs)
    assert table_counts(db_url) == before  # nothing recorded
    assert err.value.fix
    assert isinstance(err.value, ValueError)
    return err.value


def test_refusals_record_nothing(registry, db_url):
    registry.record_cycle("NET-0001", **cycle_kwargs(T2))

    err = _refusal(registry, db_url, "NET-0001", cycle_kwargs(T1))
    assert err.field == "administration" and err.value == T1
    assert "before" in err.problem and "new_treatment" in err.fix

    err = _refusal(registry, db_url, "NET-0001", cycle_kwargs(T2))
    assert err.field == "administration" and "already recorded" in err.problem

    for bad in (0.0, -7400.0, float("nan"), float("inf"), "7.4 GBq"):
        kwargs = cycle_kwargs(T3, administered_activity_mbq=bad)
        err = _refusal(registry, db_url, "NET-0001", kwargs)
        assert err.field == "administered_activity_mbq" and "MBq" in err.fix

    rows = region_rows()
    rows.append(dict(rows[0]))
    err = _refusal(registry, db_url, "NET-0001", cycle_kwargs(T3, regions=rows))
    assert err.field == "regions[4].region" and err.value == "kidneys"
    assert "unique" in err.fix

    rows = region_rows()
    rows[0]["kind"] = "lesion"  # kidneys were an organ in cycle 1
    err = _refusal(registry, db_url, "NET-0001", cycle_kwargs(T3, regions=rows))
    assert err.field == "regions[0].kind"

    rows = region_rows()
    rows[2]["mass_g"] = 0.0
    err = _refusal(registry, db_url, "NET-0001", cycle_kwargs(T3, regions=rows))
    assert err.field == "regions[2].mass_g"

    kwargs = cycle_kwargs(T3, tracer="90Y-DOTATOC", nuclide="Y-90")
    err = _refusal(registry, db_url, "NET-0001", kwargs)
    assert err.field == "tracer" and "new_treatment=True" in err.fix

    err = _refusal(registry, db_url, "Doe^John", cycle_kwargs(T1))
    assert err.field == "patient_id" and "never a name" in err.fix

    # still consistent: the next valid cycle is number 2
    assert registry.record_cycle("NET-0001", **cycle_kwargs(T3)).number == 2
    rec = registry.record_cycle(
        "NET-0001",
        **cycle_kwargs(T1, tracer="90Y-DOTATOC", nuclide="Y-90"),
        new_treatment=True,
    )
    assert (rec.treatment, rec.number) == (2, 1)


def test_unknown_patient(registry, tmp_path):
    registry.record_cycle("NET-0001", **cycle_kwargs(T1))
    for call in (
        lambda: registry.cycles("NET-9999"),
        lambda: registry.cycle("NET-9999", 1),
        lambda: registry.export("NET-9999", tmp_path / "x.csv"),
        lambda: registry.set_bed("NET-9999", 1, "kidneys", 1.0),
    ):
        with pytest.raises(RegistryError) as err:
            call()
        assert err.value.field == "patient_id" and err.value.value == "NET-9999"
        assert "patients()" in err.value.fix
    assert not (tmp_path / "x.csv").exists()
    with pytest.raises(RegistryError) as err:
        registry.export(None, tmp_path / "x.xlsx")
    assert err.value.field == "format"


def test_export_replaces_atomically(registry, tmp_path, monkeypatch):
    registry.record_cycle("NET-0001", **cycle_kwargs(T1))
    path = tmp_path / "exports" / "net.json"
    path.parent.mkdir()
    path.write_text("old")

    def fail(*args):
        raise OSError("disk full")

    monkeypatch.setattr("theranet.registry._export.os.replace", fail)
    with pytest.raises(OSError, match="disk full"):
        registry.export("NET-0001", path)
    assert path.read_text() == "old"  # untouched, and no temporary file left behind
    assert sorted(p.name for p in path.parent.iterdir()) == ["net.json"]


KILL_SCRIPT = textwrap.dedent(
    """
    import datetime as dt, sys, time
    from theranet.registry import store

    def hook():
        print("inside", flush=True)
        time.sleep(300)

    store._before_commit = hook
    reg = store.Registry(url=sys.argv[1])
    rows = [
        dict(region=f"lesion_{i}", kind="lesion", volume_ml=1.0, mass_g=1.0, tia_mbq_h=10.0,
             tia_sd_mbq_h=1.0, mean_dose_gy=2.0, dose_sd_gy=0.1, model="m", method="x" * 200)
        for i in range(int(sys.argv[2]))
    ]
    reg.record_cycle(
        "NET-0001", tracer="177Lu-DOTATATE", nuclide="Lu-177", administered_activity_mbq=7400.0,
        administration=dt.datetime(2024, 3, 4, 9, 15), times_h=[4.0, 24.0], regions=rows,
    )
    print("committed", flush=True)
    """
)


def test_killed_mid_transaction_leaves_no_half_cycle(registry, db_url):
    rec1 = registry.record_cycle("NET-0001", **cycle_kwargs(T1))
    before = table_counts(db_url)
    sqlite_file = db_url.removeprefix("sqlite:///") if db_url.startswith("sqlite") else None
    size_before = os.path.getsize(sqlite_file) if sqlite_file else 0
    # 20000 rows of ~300 bytes overflow SQLite's page cache, so the killed
    # transaction has written into the database file itself, not only memory.
    proc = subprocess.Popen(
        [sys.executable, "-c", KILL_SCRIPT, db_url, "20000"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 180)
        line = proc.stdout.readline() if ready else ""
        assert line.strip() == "inside", f"child did not reach the hook: {line!r}"
        if sqlite_file:  # the open transaction has a journal and has written to the file
            assert os.path.getsize(sqlite_file + "-journal") > 0
            assert os.path.getsize(sqlite_file) > size_before
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=60) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()

    with Registry(url=db_url) as reopened:
        assert table_counts(db_url) == before
        assert reopened.cycles("NET-0001") == [rec1]
        rec2 = reopened.record_cycle("NET-0001", **cycle_kwargs(T2))
        assert rec2.number == 2
        assert reopened.cycles("NET-0001") == [rec1, rec2]


def test_fresh_database_is_at_head_and_matches_models(registry, db_url):
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            assert _migrate.current_revision(conn) == _migrate.head_revision() == "0001"
            diff = compare_metadata(
                MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata
            )
            assert diff == []
            tables = set(inspect(conn).get_table_names())
        assert tables == set(Base.metadata.tables) | {"alembic_version"}
    finally:
        engine.dispose()
    # opening again is a no-op at head
    Registry(url=db_url).close()


def test_old_database_is_upgraded_and_newer_one_refused(registry, db_url):
    engine = create_engine(db_url)
    try:
        with engine.begin() as conn:  # back to an empty schema, as before 0001
            command.downgrade(_migrate.alembic_config(conn), "base")
        with engine.connect() as conn:
            assert _migrate.current_revision(conn) is None
        with Registry(url=db_url) as reg:
            assert reg.patients() == []
        with engine.connect() as conn:
            assert _migrate.current_revision(conn) == _migrate.head_revision()
        with engine.begin() as conn:  # as if a newer theranet had written it
            conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
        with pytest.raises(RegistryError) as err:
            Registry(url=db_url)
        assert err.value.field == "url" and "upgrade theranet" in err.value.fix
    finally:
        engine.dispose()


def test_sqlite_enforces_foreign_keys(registry, db_url):
    if not db_url.startswith("sqlite"):
        pytest.skip("SQLite only")
    with registry._engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar_one() == 1


def test_default_path_and_options(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert default_path() == tmp_path / "data" / "theranet" / "registry.sqlite"
    monkeypatch.setenv("XDG_DATA_HOME", "relative/ignored")
    assert default_path().parts[-3:] == ("share", "theranet", "registry.sqlite")

    reg = Registry(path=tmp_path / "new" / "reg.sqlite")
    assert (tmp_path / "new" / "reg.sqlite").exists() and reg.patients() == []
    reg.close()
    with pytest.raises(RegistryError) as err:
        Registry(url="sqlite://", path=tmp_path / "x.sqlite")
    assert err.value.field == "url"
    with pytest.raises(RegistryError) as err:
        Registry(url="not a url")
    assert err.value.field == "url"


def test_missing_postgres_driver_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "psycopg", None)  # as if not installed
    with pytest.raises(RegistryError) as err:
        Registry(url="postgresql://user:secret@localhost/theranet")
    assert "theranet[postgres]" in err.value.fix
    assert "secret" not in str(err.value)


def test_hook_is_unset():
    assert store._before_commit is None
