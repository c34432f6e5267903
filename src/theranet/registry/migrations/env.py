"""Alembic environment of the theranet registry.

:class:`theranet.registry.Registry` runs the migrations in code and passes its
open connection in ``config.attributes["connection"]``. To write a revision
after changing :mod:`theranet.registry.models`, autogenerate it against a
scratch database at head, then review and format the generated file::

    from alembic import command
    from sqlalchemy import create_engine
    from theranet.registry._migrate import alembic_config

    with create_engine("sqlite://").connect() as conn, conn.begin():
        config = alembic_config(conn)
        command.upgrade(config, "head")
        command.revision(config, message="what changed", autogenerate=True, rev_id="0002")

Without a connection (the ``alembic`` command line, ``-x url=...``), the
environment connects to that URL itself.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from theranet.registry.models import Base

target_metadata = Base.metadata


def _configure(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things: later revisions use batch mode there.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )


def run_migrations_online() -> None:
    """Run the revisions on the given connection, or on ``-x url=...``."""
    config = context.config
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option(
        "sqlalchemy.url"
    )
    engine = create_engine(url)
    with engine.connect() as conn:
        _configure(conn)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


# Alembic runs this file with its context installed; a plain import (doctest
# collection, an IDE) does nothing.
if hasattr(context, "config"):
    if context.is_offline_mode():
        raise RuntimeError("theranet registry migrations run online only (no --sql)")
    run_migrations_online()
