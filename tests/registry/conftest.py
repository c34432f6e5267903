"""Registry fixtures, run on every backend: SQLite always, PostgreSQL when one is reachable.

PostgreSQL: ``THERANET_TEST_POSTGRES_URL`` (e.g.
``postgresql+psycopg://theranet:theranet@localhost/theranet_test``, as ``.ci/run``
creates it); when unset, a local server is looked for at the URLs of
:data:`LOCAL_URLS`. Each test gets a fresh schema, dropped afterwards.
"""

from __future__ import annotations

import datetime as dt
import functools
import importlib.util
import os
import shutil
import uuid

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from theranet.registry import Registry

ENV = "THERANET_TEST_POSTGRES_URL"
LOCAL_URLS = (
    "postgresql+psycopg://theranet:theranet@localhost/theranet_test",
    "postgresql+psycopg://postgres@localhost/postgres",
)
SKIP_PG = (
    "PostgreSQL not available: set THERANET_TEST_POSTGRES_URL or install and start "
    "postgresql (.ci/run does)"
)


def _psycopg_url(url: str) -> str:
    parsed = make_url(url)
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


@functools.cache
def postgres_base_url() -> str | None:
    """The PostgreSQL URL to test against, or None."""
    if os.environ.get(ENV):
        return _psycopg_url(os.environ[ENV])  # given: a failure to connect fails the test
    if importlib.util.find_spec("psycopg") is None or shutil.which("pg_isready") is None:
        return None
    for url in LOCAL_URLS:
        engine = create_engine(url, connect_args={"connect_timeout": 2})
        try:
            with engine.connect():
                return url
        except Exception:  # any failure: not this one
            continue
        finally:
            engine.dispose()
    return None


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    """A URL of an empty database: a SQLite file, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'registry.sqlite'}"
        return
    base = postgres_base_url()
    if base is None:
        pytest.skip(SKIP_PG)
    schema = f"theranet_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(base).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def registry(db_url):
    """An open, empty registry on each backend."""
    reg = Registry(url=db_url)
    yield reg
    reg.close()


def region_rows(n_lesions: int = 2, scale: float = 1.0) -> list[dict]:
    """Region rows as the pipeline produces them (RegionDose attributes), doses x scale."""
    rows = [
        dict(
            region="kidneys",
            kind="organ",
            volume_ml=310.5,
            mass_g=325.9,
            tia_mbq_h=9123.456789 * scale,
            tia_sd_mbq_h=611.1,
            mean_dose_gy=3.2109876543 * scale,
            dose_sd_gy=0.31,
            bed_gy=None,
            model="biexponential",
            method="fit + analytic",
        ),
        dict(
            region="red_marrow",
            kind="marrow",
            volume_ml=1170.0,
            mass_g=1170.0,
            tia_mbq_h=812.0 * scale,
            tia_sd_mbq_h=None,
            mean_dose_gy=0.1 * scale,
            dose_sd_gy=float("nan"),
            model="monoexponential",
            method="blood-based",
        ),
    ]
    rows += [
        dict(
            region=f"lesion_{i + 1}",
            kind="lesion",
            volume_ml=20.0 + i,
            mass_g=21.0 + i,
            tia_mbq_h=5000.0 / 3 * scale,
            tia_sd_mbq_h=400.0,
            mean_dose_gy=(15.0 + i / 7) * scale,
            dose_sd_gy=2.5,
            bed_gy=17.25,
            model="trapezoid",
            method="",
        )
        for i in range(n_lesions)
    ]
    return rows


def cycle_kwargs(when: dt.datetime, **overrides) -> dict:
    """Keyword arguments of one 177Lu-DOTATATE cycle administered at ``when``."""
    kwargs = dict(
        tracer="177Lu-DOTATATE",
        nuclide="Lu-177",
        administered_activity_mbq=7400.0,
        administration=when,
        times_h=(4.0, 24.0, 96.5, 168.0),
        regions=region_rows(),
        methods=(("time integration", "fit + tail"), ("S-values", "voxel kernel")),
        software_version="0.1.0",
    )
    kwargs.update(overrides)
    return kwargs


def table_counts(url: str) -> dict[str, int]:
    """Rows per registry table, read with a connection of its own."""
    engine = create_engine(url)
    tables = ("patients", "treatments", "cycles", "time_points", "regions", "region_doses")
    try:
        with engine.connect() as conn:
            return {t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one() for t in tables}
    finally:
        engine.dispose()
