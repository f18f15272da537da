"""Copy every row of one database into another with the same schema (SQLite to PostgreSQL)."""

from __future__ import annotations

from flask import Flask
from sqlalchemy import create_engine, func, insert, select, text

from . import factory
from .extensions import db


def copy_database(app: Flask, target_url: str, batch: int = 1000) -> dict[str, int]:
    """Migrate ``target_url`` to the current schema, then copy all rows table by table in
    foreign-key order. Refuses a target that already holds rows. Returns rows per table."""
    source_url = app.config["SQLALCHEMY_DATABASE_URI"]
    if target_url == source_url:
        raise ValueError("the target is the database this app uses")
    target_app = factory.create_app({"SQLALCHEMY_DATABASE_URI": target_url,
                             "SECRET_KEY": app.config["SECRET_KEY"]})
    # Imported here, not at the top: served workers import this module (through the commands)
    # and Alembic would cost each of them 10 MB it never uses.
    from flask_migrate import upgrade  # noqa: PLC0415

    with target_app.app_context():
        upgrade()
    tables = db.metadata.sorted_tables
    target = create_engine(target_url)
    counts: dict[str, int] = {}
    try:
        with target.begin() as out:
            for table in tables:
                if out.execute(select(func.count()).select_from(table)).scalar():
                    raise ValueError(f"the target already has rows in {table.name}; "
                                     "copy into an empty database")
            for table in tables:
                counts[table.name] = 0
                # Every column goes as it is (a message's parent_id and selected too), by id:
                # a message's parent, made before it, is in the target before it.
                result = db.session.execute(select(table).order_by(*table.primary_key.columns))
                while rows := result.fetchmany(batch):
                    out.execute(insert(table), [dict(row._mapping) for row in rows])
                    counts[table.name] += len(rows)
            if out.dialect.name == "postgresql":
                # Rows came with their ids: move each id sequence past the largest one.
                for table in tables:
                    if "id" in table.c and table.c.id.autoincrement:
                        # Table names are our own metadata's, never input.
                        sql = ("SELECT setval(pg_get_serial_sequence('{t}', 'id'), "  # noqa: S608
                               "COALESCE((SELECT MAX(id) FROM {t}), 0) + 1, false)")
                        out.execute(text(sql.format(t=table.name)))
    finally:
        target.dispose()
        with target_app.app_context():
            db.engine.dispose()
    return counts
