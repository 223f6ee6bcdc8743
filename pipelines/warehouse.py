"""The reporting warehouse: a DuckDB file with a snapshot of the wallet tables.

Reports aggregate there instead of on the live database: DuckDB scans a column of ten million
orders in well under a second, where the same work over a live attach would pull every row
through the SQLite or PostgreSQL scanner on each report, competing for the machine's two cores
with the API and the flows.

A build reads the source with DuckDB's own scanners (loaded from the pip packages, never
downloaded) in two steps:

1. stage: copy each mutable table whole, normalised (money DECIMAL(14,2), times TIMESTAMPTZ in
   UTC, whatever the source backend), into `staged_*` tables, and the transition log rows above
   the last id the warehouse holds (the log is append-only);
2. publish: in one DuckDB transaction, swap the staged tables in, append the new log rows and
   record the build, so a reader sees the old snapshot or the new one, never half of each.
"""

import importlib.util
import logging
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import duckdb
import pandas as pd
from sqlalchemy import BigInteger, Boolean, DateTime, Integer, SmallInteger, String, Table
from sqlalchemy.engine import URL, make_url

from pipelines.vip_migration import LEGACY_TIMEZONE, QUARANTINE_REASONS
from wallet.errors import ConfigurationError, WalletError
from wallet.settings import Settings, get_settings
from wallet.statuses import EXPIRING_PLAN_STATUSES, OrderStatus, PlanStatus, RecordType
from wallet.tables import (
    item_record,
    legacy_user_vip,
    migration_quarantine,
    payment_record,
    plan,
    refund_settlement,
    transition_log,
)
from wallet.types import Money, UTCDateTime

log = logging.getLogger(__name__)

SQL_DIR = Path(__file__).resolve().parents[1] / "sql" / "warehouse"

# Copied whole on every build: any row of these may change.
SNAPSHOT_TABLES = (
    plan,
    item_record,
    payment_record,
    refund_settlement,
    migration_quarantine,
    legacy_user_vip,
)
# Append-only: a build copies only the rows above the highest id the warehouse holds.
APPENDED_TABLE = transition_log

# Macros the report queries share, one file each in sql/warehouse/.
MACROS = ("plans_as_of", "plan_stages_as_of")

# The pip package and extension name of each source backend's scanner.
SCANNERS = {
    "sqlite": ("duckdb_extension_sqlite_scanner", "sqlite_scanner"),
    "postgresql": ("duckdb_extension_postgres_scanner", "postgres_scanner"),
}
CONNECTION_CONFIG = {
    # DuckDB would otherwise try to download extensions, which fails without network.
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
    # A missing table must be an error, not a Python variable of the same name in scope.
    "python_enable_replacements": False,
}

# DuckDB lets one process write a file, or any number read it. A reader that arrives during a
# build (or a build during a report) waits this long for the other to finish.
LOCK_WAIT = timedelta(minutes=2)
LOCK_POLL_SECONDS = 0.2


class WarehouseNotBuilt(WalletError):
    """The warehouse file does not exist yet; the message says how to build it."""


@dataclass(frozen=True)
class Warehouse:
    """Where the warehouse file is, and the calendar its months and days are counted in."""

    path: Path
    timezone: str

    def __post_init__(self):
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigurationError(
                f"WALLET_TIMEZONE: {self.timezone!r} is not a known time zone"
            ) from None

    @classmethod
    def from_settings(
        cls, settings: Settings | None = None, path: str | Path | None = None
    ) -> "Warehouse":
        """The configured warehouse (WALLET_WAREHOUSE_PATH, WALLET_TIMEZONE), or one at `path`."""
        settings = settings or get_settings()
        return cls(Path(path or settings.warehouse_path), settings.timezone)

    @contextmanager
    def connect(self, *, read_only: bool = True) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection whose session time zone is the business calendar, closed on exit."""
        if read_only and not self.path.is_file():
            raise WarehouseNotBuilt(
                f"no warehouse at {self.path}; build it with the build-warehouse flow or "
                "`wallet report`"
            )
        self.path.parent.mkdir(parents=True, exist_ok=True)
        connection = _connect_waiting(self.path, read_only)
        try:
            # Months and days are truncated in the session time zone, not the machine's.
            connection.execute(f"set TimeZone = '{self.timezone}'")
            yield connection
        finally:
            connection.close()

    def query(self, name: str, **parameters) -> pd.DataFrame:
        """The result of `sql/warehouse/NAME.sql` with its `$parameters`, as a DataFrame."""
        with self.connect() as connection, warnings.catch_warnings():
            # NOTE: duckdb 1.5.5 converts TIMESTAMPTZ columns with DataFrame.drop(inplace=True),
            # which pandas 3.1 deprecates; the conversion is right, the warning is theirs.
            warnings.filterwarnings(
                "ignore",
                message="The inplace keyword in DataFrame.drop",
                category=DeprecationWarning,
            )
            return connection.execute(sql_text(name), parameters).df()


def _connect_waiting(path: Path, read_only: bool) -> duckdb.DuckDBPyConnection:
    deadline = time.monotonic() + LOCK_WAIT.total_seconds()
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only, config=CONNECTION_CONFIG)
        except duckdb.IOException as error:
            if "lock" not in str(error).lower() or time.monotonic() > deadline:
                raise
            time.sleep(LOCK_POLL_SECONDS)


def sql_text(name: str) -> str:
    path = SQL_DIR / f"{name}.sql"
    if not path.is_file():
        raise ConfigurationError(f"warehouse query {path} is missing; is the checkout whole?")
    return path.read_text(encoding="utf-8")


# --- reading the source --------------------------------------------------------------------


def scanner_path(backend: str) -> Path:
    """The scanner extension file shipped by its pip package, for `LOAD '<path>'`."""
    package, extension = SCANNERS[backend]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigurationError(f"the {package} package is not installed")
    folder = Path(next(iter(spec.submodule_search_locations)))
    path = folder / "extensions" / f"v{duckdb.__version__}" / f"{extension}.duckdb_extension"
    if not path.is_file():
        raise ConfigurationError(
            f"{path} is missing: {package} must have the version of duckdb ({duckdb.__version__})"
        )
    return path


def _libpq_value(value) -> str:
    text = str(value).replace("\\", "\\\\").replace("'", "\\'")
    return f"'{text}'"


def _postgres_dsn(url: URL) -> str:
    """A libpq keyword string for a SQLAlchemy PostgreSQL URL (socket hosts included)."""
    keywords = {
        "host": url.host,
        "port": url.port,
        "dbname": url.database,
        "user": url.username,
        "password": url.password,
        **{key: value for key, value in url.query.items() if isinstance(value, str)},
    }
    return " ".join(
        f"{key}={_libpq_value(value)}" for key, value in keywords.items() if value not in (None, "")
    )


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def attach_source(connection: duckdb.DuckDBPyConnection, database_url: str) -> str:
    """Attach the wallet database read-only as `source`; returns its backend name."""
    url = make_url(database_url)
    backend = url.get_backend_name()
    if backend not in SCANNERS:
        raise ConfigurationError(
            f"WALLET_DATABASE_URL: the warehouse reads sqlite or postgresql, not {backend}"
        )
    connection.execute(f"load {_literal(str(scanner_path(backend)))}")
    if backend == "sqlite":
        target, kind = str(Path(url.database or "").resolve()), "sqlite"
        if not Path(target).is_file():
            raise ConfigurationError(
                f"WALLET_DATABASE_URL: there is no SQLite database at {target} "
                "(`make demo` builds one)"
            )
    else:
        target, kind = _postgres_dsn(url), "postgres"
    connection.execute(f"attach {_literal(target)} as source (type {kind}, read_only)")
    return backend


def source_name(database_url: str) -> str:
    """The source as recorded in the warehouse: no password, SQLite paths made absolute."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite" and url.database:
        url = url.set(database=str(Path(url.database).resolve()))
    return url.render_as_string(hide_password=True)


def _warehouse_column(column, backend: str) -> str:
    """One source column as the warehouse keeps it, whatever the backend stored."""
    name = f'"{column.name}"'
    kind = column.type
    if isinstance(kind, Money):
        if backend == "sqlite":
            # Whole cents there; multiplying by 0.01 stays exact where dividing would not.
            return f"cast(cast({name} as decimal(18, 0)) * 0.01 as decimal(14, 2)) as {name}"
        return f"cast({name} as decimal(14, 2)) as {name}"
    if isinstance(kind, UTCDateTime):
        if backend == "sqlite":
            return f"timezone('UTC', {name}) as {name}"
        return f"cast({name} as timestamptz) as {name}"
    if isinstance(kind, DateTime):
        # Legacy columns hold naive Shanghai wall-clock times (see pipelines.vip_migration).
        return f"timezone('{LEGACY_TIMEZONE.key}', cast({name} as timestamp)) as {name}"
    for sql_type, duck_type in (
        (Boolean, "boolean"),
        (SmallInteger, "smallint"),
        (BigInteger, "bigint"),
        (Integer, "integer"),
        (String, "varchar"),
    ):
        if isinstance(kind, sql_type):
            return f"cast({name} as {duck_type}) as {name}"
    raise TypeError(f"{column.table.name}.{column.name}: no warehouse type for {kind!r}")


def snapshot_select(table: Table, backend: str) -> str:
    columns = ",\n    ".join(_warehouse_column(column, backend) for column in table.columns)
    return f"select\n    {columns}\nfrom source.{table.name}"


def _staged(table: Table) -> str:
    return f"staged_{table.name}"


# --- building --------------------------------------------------------------------------------


@dataclass
class StagedSnapshot:
    """What the stage step copied; the publish step swaps it in."""

    source: str
    rows: dict[str, int] = field(default_factory=dict)
    log_rows_added: int = 0
    log_reloaded: bool = False
    # When the copy began: the moment the snapshot stands for, and the start of the build.
    taken_at: datetime = field(default_factory=lambda: datetime.now(UTC))


@dataclass
class BuildReport:
    source: str
    path: str
    rows: dict[str, int]
    log_rows_added: int
    log_rows: int
    log_reloaded: bool
    seconds: float

    def as_dict(self) -> dict:
        return {
            "source": self.source,
            "warehouse": self.path,
            "rows": self.rows,
            "transition_log_rows_added": self.log_rows_added,
            "transition_log_rows": self.log_rows,
            "transition_log_reloaded": self.log_reloaded,
            "seconds": round(self.seconds, 2),
        }

    def to_markdown(self) -> str:
        reloaded = " (copied whole again: new or reset source)" if self.log_reloaded else ""
        lines = [
            "# Warehouse built",
            "",
            f"- source: `{self.source}`",
            f"- warehouse: `{self.path}`",
            f"- transition log: {self.log_rows_added} rows added, {self.log_rows} in all{reloaded}",
            f"- took {self.seconds:.1f} s",
            "",
            "| table | rows |",
            "| --- | ---: |",
            *(f"| {table} | {rows} |" for table, rows in self.rows.items()),
        ]
        return "\n".join(lines) + "\n"


def _table_exists(connection: duckdb.DuckDBPyConnection, name: str) -> bool:
    found = connection.execute(
        "select count(*) from duckdb_tables() where database_name = current_database() "
        "and schema_name = 'main' and table_name = $name",
        {"name": name},
    ).fetchone()
    return found[0] > 0


def _log_position(connection: duckdb.DuckDBPyConnection, source: str) -> tuple[int, bool]:
    """The id after which to copy the source's log, and whether to copy it again whole."""
    if not _table_exists(connection, "warehouse_build"):
        return 0, True
    last = connection.execute(
        "select source, last_log_id from warehouse_build order by built_at desc limit 1"
    ).fetchone()
    source_max = connection.execute(
        f"select coalesce(max(id), 0) from source.{APPENDED_TABLE.name}"
    ).fetchone()[0]
    if last is None or last[0] != source or source_max < last[1]:
        return 0, True
    return last[1], False


def _check_source_schema(connection: duckdb.DuckDBPyConnection) -> None:
    present = set(
        connection.execute(
            "select table_name, column_name from duckdb_columns() where database_name = 'source'"
        ).fetchall()
    )
    missing = [
        f"{table.name}.{column.name}"
        for table in (*SNAPSHOT_TABLES, APPENDED_TABLE)
        for column in table.columns
        if (table.name, column.name) not in present
    ]
    if missing:
        raise ConfigurationError(
            f"the database lacks {', '.join(missing[:5])}{' …' if len(missing) > 5 else ''}; "
            "run `wallet db upgrade` on it first"
        )


def stage_snapshot(warehouse: Warehouse, database_url: str) -> StagedSnapshot:
    """Copy the source into `staged_*` tables of the warehouse (nothing readers see yet)."""
    staged = StagedSnapshot(source=source_name(database_url))
    with warehouse.connect(read_only=False) as connection:
        backend = attach_source(connection, database_url)
        _check_source_schema(connection)
        after, staged.log_reloaded = _log_position(connection, staged.source)
        # One transaction, so that PostgreSQL serves every table from the same snapshot.
        connection.execute("begin")
        for table in SNAPSHOT_TABLES:
            connection.execute(
                f"create or replace table {_staged(table)} as {snapshot_select(table, backend)}"
            )
        connection.execute(
            f"create or replace table {_staged(APPENDED_TABLE)} as "
            f"{snapshot_select(APPENDED_TABLE, backend)} where id > $after order by id",
            {"after": after},
        )
        connection.execute("commit")
        for table in (*SNAPSHOT_TABLES, APPENDED_TABLE):
            staged.rows[table.name] = connection.execute(
                f"select count(*) from {_staged(table)}"
            ).fetchone()[0]
        connection.execute("detach source")
    staged.log_rows_added = staged.rows.pop(APPENDED_TABLE.name)
    log.info(
        "staged %s: %s, %d new transition log rows",
        staged.source,
        staged.rows,
        staged.log_rows_added,
    )
    return staged


def replace_vocabulary(connection: duckdb.DuckDBPyConnection) -> None:
    """Status codes, labels and order from wallet.statuses, so queries never copy them."""
    connection.execute(
        "create or replace table plan_statuses "
        "(status varchar, status_label varchar, sort_order integer, is_expiring boolean)"
    )
    connection.executemany(
        "insert into plan_statuses values (?, ?, ?, ?)",
        [
            (status.value, status.label, order, status in EXPIRING_PLAN_STATUSES)
            for order, status in enumerate(PlanStatus)
        ],
    )
    connection.execute(
        "create or replace table order_statuses "
        "(status varchar, status_label varchar, sort_order integer)"
    )
    connection.executemany(
        "insert into order_statuses values (?, ?, ?)",
        [(status.value, status.label, order) for order, status in enumerate(OrderStatus)],
    )
    connection.execute(
        "create or replace table record_types "
        "(record_type smallint, record_type_label varchar, sort_order integer)"
    )
    connection.executemany(
        "insert into record_types values (?, ?, ?)",
        [(int(kind), kind.label, order) for order, kind in enumerate(RecordType)],
    )
    connection.execute(
        "create or replace table quarantine_reasons (reason varchar, sort_order integer)"
    )
    connection.executemany(
        "insert into quarantine_reasons values (?, ?)",
        [(reason, order) for order, reason in enumerate(QUARANTINE_REASONS)],
    )


def publish_snapshot(warehouse: Warehouse, staged: StagedSnapshot) -> BuildReport:
    """Swap the staged tables in and append the new log rows, all in one transaction."""
    log_name = APPENDED_TABLE.name
    with warehouse.connect(read_only=False) as connection:
        for table in (*SNAPSHOT_TABLES, APPENDED_TABLE):
            if not _table_exists(connection, _staged(table)):
                raise WarehouseNotBuilt(f"{_staged(table)} is missing; stage a snapshot first")
        connection.execute("begin")
        for table in SNAPSHOT_TABLES:
            connection.execute(f"drop table if exists {table.name}")
            connection.execute(f"alter table {_staged(table)} rename to {table.name}")
        if staged.log_reloaded or not _table_exists(connection, log_name):
            connection.execute(
                f"create or replace table {log_name} as from {_staged(APPENDED_TABLE)} limit 0"
            )
        connection.execute(
            f"insert into {log_name} by name select * from {_staged(APPENDED_TABLE)}"
        )
        connection.execute(f"drop table {_staged(APPENDED_TABLE)}")
        replace_vocabulary(connection)
        for macro in MACROS:
            connection.execute(sql_text(macro))
        connection.execute(
            "create table if not exists warehouse_build "
            "(built_at timestamptz, source varchar, last_log_id bigint)"
        )
        connection.execute(
            f"insert into warehouse_build select $built_at, $source, coalesce(max(id), 0) "
            f"from {log_name}",
            {"built_at": staged.taken_at, "source": staged.source},
        )
        connection.execute("commit")
        log_rows = connection.execute(f"select count(*) from {log_name}").fetchone()[0]
    return BuildReport(
        source=staged.source,
        path=str(warehouse.path),
        rows=staged.rows,
        log_rows_added=staged.log_rows_added,
        log_rows=log_rows,
        log_reloaded=staged.log_reloaded,
        seconds=(datetime.now(UTC) - staged.taken_at).total_seconds(),
    )


def build_warehouse(warehouse: Warehouse, database_url: str) -> BuildReport:
    """Stage and publish a snapshot of `database_url`: the whole build, without Prefect."""
    report = publish_snapshot(warehouse, stage_snapshot(warehouse, database_url))
    log.info("warehouse %s built from %s in %.1f s", warehouse.path, report.source, report.seconds)
    return report
