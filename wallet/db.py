"""Engines and transactions for the configured database (SQLite file or PostgreSQL)."""

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

from sqlalchemy import Connection, Engine, Insert, Table, create_engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError

from wallet.errors import ConfigurationError
from wallet.settings import Settings, get_settings

log = logging.getLogger(__name__)


def make_engine(url: str | None = None, settings: Settings | None = None) -> Engine:
    """An engine for `url` (default: WALLET_DATABASE_URL), SQLite set up for concurrent use.

    A URL that names no usable database is a ConfigurationError that says what is wrong.
    """
    settings = settings or get_settings()
    try:
        parsed = make_url(url or settings.database_url)
    except ArgumentError:
        raise ConfigurationError(
            "WALLET_DATABASE_URL is not a database URL; use sqlite:///path/to/wallet.db or "
            "postgresql+psycopg2://user:password@host/dbname"
        ) from None
    backend = parsed.get_backend_name()
    if backend not in SUPPORTED_BACKENDS:
        raise ConfigurationError(
            f"WALLET_DATABASE_URL names a {backend!r} database; the wallet runs on sqlite "
            "or postgresql (postgresql+psycopg2://…)"
        )
    try:
        if backend == "sqlite":
            return _sqlite_engine(parsed, settings.sqlite_busy_timeout_ms)
        return create_engine(
            parsed,
            pool_size=settings.db_pool_size,
            max_overflow=settings.db_max_overflow,
            pool_pre_ping=True,
        )
    except (ImportError, NoSuchModuleError) as error:
        raise ConfigurationError(f"WALLET_DATABASE_URL: no driver for it ({error})") from None


SUPPORTED_BACKENDS = ("sqlite", "postgresql")


def _sqlite_engine(url, busy_timeout_ms: int) -> Engine:
    if not url.database or url.database == ":memory:":
        raise ConfigurationError(
            "WALLET_DATABASE_URL names an in-memory SQLite database, which is gone when the "
            "command ends; give a file: sqlite:///var/wallet.db"
        )
    try:
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ConfigurationError(
            f"WALLET_DATABASE_URL: cannot create the folder of {url.database}: {error.strerror}"
        ) from None
    engine = create_engine(url, connect_args={"timeout": busy_timeout_ms / 1000})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        # Let SQLAlchemy, not pysqlite, decide when a transaction begins, so that writers can
        # take the write lock up front with BEGIN IMMEDIATE.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("pragma journal_mode = wal")
        cursor.execute(f"pragma busy_timeout = {int(busy_timeout_ms)}")
        cursor.execute("pragma foreign_keys = on")
        cursor.execute("pragma synchronous = normal")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection):
        mode = connection.get_execution_options().get("sqlite_begin", "deferred")
        connection.exec_driver_sql(f"begin {mode}")

    return engine


@lru_cache
def get_engine() -> Engine:
    return make_engine()


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """One short write transaction; on SQLite it takes the write lock at BEGIN."""
    with engine.connect() as connection:
        connection = connection.execution_options(sqlite_begin="immediate")
        with connection.begin():
            yield connection


def insert_or_skip(connection: Connection, table: Table) -> Insert:
    """`insert into table … on conflict do nothing`, in the connection's own dialect."""
    if connection.dialect.name == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing()
    if connection.dialect.name == "sqlite":
        return sqlite.insert(table).on_conflict_do_nothing()
    raise NotImplementedError(f"no insert-or-skip for {connection.dialect.name}")


# Driver messages of failures that a retry a moment later may not meet again.
TRANSIENT_FAILURES = (
    "database is locked",
    "could not connect",
    "connection refused",
    "server closed the connection",
    "terminating connection",
    "connection reset",
    "timeout expired",
)


def is_transient(error: BaseException) -> bool:
    """Whether a database error is a lost connection or a lock, rather than a bug or bad data."""
    if not isinstance(error, DBAPIError):
        return False
    if error.connection_invalidated:
        return True
    message = str(error.orig).lower()
    return any(failure in message for failure in TRANSIENT_FAILURES)
