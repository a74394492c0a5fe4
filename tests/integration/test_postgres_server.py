"""The session's throwaway PostgreSQL server (fixture ``postgres_url``) is a real server."""

import pytest
import sqlalchemy
from sqlalchemy import text
from sqlalchemy.pool import NullPool

pytestmark = pytest.mark.integration


def test_the_throwaway_postgresql_server_accepts_connections_and_keeps_what_is_written(
        postgres_url):
    # NullPool: each connect() is a new server connection, not the first one handed back.
    engine = sqlalchemy.create_engine(postgres_url, poolclass=NullPool)
    try:
        with engine.begin() as first:
            writer_pid = first.execute(text("SELECT pg_backend_pid()")).scalar()
            first.execute(text("CREATE TABLE fixture_check (id integer PRIMARY KEY, note text)"))
            first.execute(text("INSERT INTO fixture_check VALUES (1, 'kept')"))
        with engine.begin() as second:
            reader_pid = second.execute(text("SELECT pg_backend_pid()")).scalar()
            rows = second.execute(text("SELECT id, note FROM fixture_check")).all()
            fsync = second.execute(text("SHOW fsync")).scalar()
            second.execute(text("DROP TABLE fixture_check"))
    finally:
        engine.dispose()
    assert reader_pid != writer_pid
    assert rows == [(1, "kept")]
    assert fsync == "off"
