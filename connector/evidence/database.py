"""The evidence database: one SQLAlchemy engine per process, transactions for reading and
writing, and the schema's version (Alembic).

SQLite (the default, a file under DATA_DIR) runs in WAL mode, so readers never wait for the
writer, with ``synchronous=FULL`` (a committed entry survives a power cut) and a busy timeout;
a writing transaction starts with ``BEGIN IMMEDIATE``, so two processes never both read a
person's last entry and then both append after it. On PostgreSQL a writer takes a
transaction-scoped advisory lock per person for the same reason (``lock_person``).
"""

import fcntl
import os
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Connection, create_engine, event, inspect, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import OperationalError

from connector import defaults
from connector.evidence.schema import SCHEMA_REVISION
from connector.exceptions import SchemaBehindError

MIGRATIONS = "connector.evidence:migrations"
"""Where Alembic finds the migrations (a package resource, so an installed copy has them)."""

PERSON_LOCK_CLASS = 0x1ED6
"""First key of PostgreSQL's two-key advisory locks: the connector's "person" locks."""


class Database:
    """The evidence database of one process. Its errors never show the values of a statement
    (``hide_parameters``): they may be a person's proof.

    Args:
        url: a SQLAlchemy URL: ``sqlite:///path/consent.db`` or
            ``postgresql+psycopg://user:password@host/db``.
    """

    def __init__(self, url: str):
        self.url = make_url(url)
        self.is_sqlite = self.url.get_backend_name() == "sqlite"
        if self.is_sqlite:
            if self.url.database:
                Path(self.url.database).parent.mkdir(parents=True, exist_ok=True)
            self.engine = create_engine(self.url, hide_parameters=True, connect_args={
                "timeout": defaults.DATABASE_BUSY_TIMEOUT, "check_same_thread": False})
            event.listen(self.engine, "connect", _configure_sqlite)
            event.listen(self.engine, "begin", _begin_sqlite)
        else:
            self.engine = create_engine(self.url, pool_pre_ping=True, hide_parameters=True,
                                        pool_size=defaults.DATABASE_POOL_SIZE)
        _dispose_in_forked_children(self.engine)

    def __repr__(self) -> str:
        return f"Database({self.url.render_as_string(hide_password=True)!r})"

    @property
    def where(self) -> str:
        """The database in words, without its password (for logs and ``status``)."""
        return self.url.render_as_string(hide_password=True)

    @contextmanager
    def writing(self) -> Iterator[Connection]:
        """One transaction that writes: committed when the block ends, rolled back on error."""
        with self.engine.connect().execution_options(immediate=True) as connection:
            with connection.begin():
                yield connection

    @contextmanager
    def reading(self) -> Iterator[Connection]:
        """One transaction that only reads (a consistent snapshot)."""
        with self.engine.connect() as connection:
            with connection.begin():
                yield connection

    def lock_person(self, connection: Connection, person_id: int) -> None:
        """Make the writing transaction the only one appending for the person until it ends
        (SQLite's BEGIN IMMEDIATE already makes it the only writer)."""
        if not self.is_sqlite:
            connection.execute(text("SELECT pg_advisory_xact_lock(:kind, :person)"),
                               {"kind": PERSON_LOCK_CLASS, "person": person_id})

    def ping(self) -> None:
        """Raise sqlalchemy.exc.SQLAlchemyError unless the database answers."""
        with self.reading() as connection:
            connection.execute(text("SELECT 1"))

    # -- the schema --------------------------------------------------------------------------

    def revisions(self) -> tuple[str | None, str]:
        """(the database's schema revision or None when it has none, the code's:
        ``SCHEMA_REVISION``), read from Alembic's ``alembic_version`` table with plain SQL."""
        with self.reading() as connection:
            if not inspect(connection).has_table("alembic_version"):
                return None, SCHEMA_REVISION
            current = connection.execute(text("SELECT version_num FROM alembic_version")
                                         ).scalar()
        return current, SCHEMA_REVISION

    def require_current_schema(self) -> None:
        """Refuse to work on a schema older (or newer) than the code's.

        Raises:
            SchemaBehindError: naming ``consent-connector db upgrade``.
        """
        current, head = self.revisions()
        if current != head:
            raise SchemaBehindError(self.where, current, head)

    def upgrade(self) -> tuple[str | None, str]:
        """Bring the schema to the code's newest revision; return (before, after).

        For SQLite a file lock next to the database makes processes starting together run
        the migrations once."""
        if self.is_sqlite and self.url.database:
            path = Path(self.url.database)
            with open(path.with_name(path.name + ".migrate-lock"), "w") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                return self._upgrade()
        return self._upgrade()

    def _upgrade(self) -> tuple[str | None, str]:
        before, head = self.revisions()
        if before == head:  # the embedded database at every start: nothing to migrate
            return before, head
        # Alembic takes a quarter of a second to import: only a schema change needs it.
        from alembic import command
        from alembic.config import Config

        with self.engine.begin() as connection:
            config = Config()
            config.set_main_option("script_location", MIGRATIONS)
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
        return before, self.revisions()[0]

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()


def unreachable_reason(error: OperationalError) -> str:
    """Why the evidence database could not be used, naming DATABASE_URL (never its value,
    which may hold a password)."""
    reason = str(error.orig).strip().splitlines()[0] if error.orig else type(error).__name__
    return f"DATABASE_URL: the evidence database cannot be reached or opened: {reason}"


def _configure_sqlite(dbapi_connection, _record) -> None:
    dbapi_connection.isolation_level = None  # the "begin" listener starts transactions
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _begin_sqlite(connection: Connection) -> None:
    immediate = connection.get_execution_options().get("immediate")
    connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def _dispose_in_forked_children(engine: Engine) -> None:
    """A forked child (RQ's work horse) must not use its parent's pooled connections: it
    forgets them (without closing the parent's) and opens its own."""
    reference = weakref.ref(engine)

    def forget_parents_connections() -> None:
        forked = reference()
        if forked is not None:
            forked.dispose(close=False)

    os.register_at_fork(after_in_child=forget_parents_connections)
