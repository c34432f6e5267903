"""Bring a registry database to the current schema with the shipped Alembic revisions.

The migrations live in ``theranet/registry/migrations`` (package data). They run
in one transaction that the caller's engine opens with a write lock (SQLite:
``BEGIN IMMEDIATE``; PostgreSQL: a transaction-level advisory lock), so two
processes opening a new registry at once do not both create it, and a process
killed mid-upgrade leaves the previous schema.
"""

from __future__ import annotations

import logging
from importlib.resources import files

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, text

__all__ = ["alembic_config", "current_revision", "head_revision", "upgrade"]

logger = logging.getLogger(__name__)

# Any constant, shared by every theranet process (pg_advisory_xact_lock key).
_PG_LOCK_KEY = 0x7468_6E65_7452


def script_location() -> str:
    """Folder of the shipped migration environment."""
    return str(files("theranet.registry").joinpath("migrations"))


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic configuration built in code, bound to ``connection`` if given."""
    config = Config()
    config.set_main_option("script_location", script_location())
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The newest revision shipped with this version of theranet."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None  # the package ships at least 0001_initial
    return head


def current_revision(connection: Connection) -> str | None:
    """The database's revision (``None`` for an empty database)."""
    return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine) -> str | None:
    """Upgrade the database of ``engine`` to the head revision.

    Returns
    -------
    str or None
        The revision the database had before (``None`` when it was new), or the
        head when nothing had to be done.

    Raises
    ------
    alembic.util.CommandError
        When the database has a revision this version does not know (a newer
        theranet wrote it).
    """
    head = head_revision()
    with engine.connect() as conn:
        before = current_revision(conn)
        conn.rollback()
    if before == head:
        return head
    writer = engine.execution_options(theranet_write=True)
    with writer.connect() as conn, conn.begin():
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
        before = current_revision(conn)  # again, under the lock
        if before != head:
            logger.info("upgrading registry schema from %s to %s", before, head)
            command.upgrade(alembic_config(conn), "head")
    return before
