"""The history databases the tests run against: a SQLite file, and a PostgreSQL server when one is given
($COMPRESSION_LAB_TEST_DB_URL; `.ci/with-postgres` starts a throwaway one, and CI always does). Each PostgreSQL test
gets a schema of its own in that database, dropped afterwards."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from urllib.parse import quote

import pytest
from conftest import require

TEST_DB_ENV = "COMPRESSION_LAB_TEST_DB_URL"
DIALECTS = ("sqlite", "postgresql")


def postgres_url() -> str:
    """The test server's URL; skips (fails in CI) without one."""
    url = os.environ.get(TEST_DB_ENV, "")
    require(bool(url), f"no PostgreSQL server for the tests: ${TEST_DB_ENV} is not set (`.ci/with-postgres "
                       "pytest ...` starts a throwaway one)")
    return url


@contextlib.contextmanager
def fresh_schema(base_url: str) -> Iterator[str]:
    """A URL whose connections see only a new, empty schema of the test database; the schema is dropped after."""
    from sqlalchemy import create_engine, text

    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base_url.replace("postgresql://", "postgresql+psycopg://", 1))
    with admin.begin() as db:
        db.execute(text(f"CREATE SCHEMA {name}"))
    sep = "&" if "?" in base_url else "?"
    url = f"{base_url}{sep}options={quote(f'-c search_path={name}')}"
    try:
        yield url
    finally:
        from compression.history.database import dispose, locate

        dispose(locate(url))  # the test's pooled connections close before their schema goes
        with admin.begin() as db:
            db.execute(text(f"DROP SCHEMA {name} CASCADE"))
        admin.dispose()


@contextlib.contextmanager
def database(dialect: str, tmp_path) -> Iterator[str]:
    """Where a test's history lives: a file path (SQLite) or a URL (PostgreSQL, a schema of its own)."""
    if dialect == "sqlite":
        yield str(tmp_path / "runs.sqlite")
        return
    with fresh_schema(postgres_url()) as url:
        yield url


@pytest.fixture(params=DIALECTS)
def history_db(request, tmp_path) -> Iterator[str]:
    """Each test that takes it runs twice: on a SQLite file and on the PostgreSQL test server."""
    with database(request.param, tmp_path) as where:
        yield where
