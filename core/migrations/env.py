"""Alembic's environment for the store: it runs on the connection ``core.migrations`` hands it.

Only Kefu's own tables are compared and migrated; others in the same database (LangGraph's
checkpoint tables on PostgreSQL) are left alone.
"""

from __future__ import annotations

from typing import Any

from alembic import context

from core.db import Base

_VERSION_TABLE = "alembic_version"


def _ours(name: str | None, kind: str, _parents: Any) -> bool:
    """Whether autogenerate should look at this object: only tables the store declares."""
    return kind != "table" or name in Base.metadata.tables or name == _VERSION_TABLE


def _run() -> None:
    connection = context.config.attributes.get("connection")
    if connection is None or context.is_offline_mode():
        raise RuntimeError("run Kefu's migrations through core.migrations (kefu db upgrade), which passes a connection")
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        version_table=_VERSION_TABLE,
        include_name=_ours,
        compare_type=True,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copying them
    )
    with context.begin_transaction():
        context.run_migrations()


_run()
