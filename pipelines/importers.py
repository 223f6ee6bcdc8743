"""Loading CSV exports: the legacy plan catalogue and VIP memberships, payment records, and
the refund settlements the payment gateway confirms.

A file is first read through once without writing anything: it must open, decode, parse as
CSV and carry exactly the expected columns, or `InputFileError` is raised. It is then read
again as a stream, in batches. Each batch is validated in Python, compared with what the
database holds in one lookup, and written in one transaction: new rows inserted, rows that a
corrected export changed updated, identical rows left alone. Importing a file twice therefore
changes nothing. A bad line is rejected with its line number (the header is line 1) and the
first reason that applies; the good lines around it are kept.
"""

import codecs
import csv
import logging
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import islice
from pathlib import Path

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Table,
    and_,
    bindparam,
    insert,
    select,
    tuple_,
    update,
)

from wallet.db import write_transaction
from wallet.errors import InputFileError
from wallet.statuses import OrderStatus, RecordType
from wallet.tables import (
    legacy_user_vip,
    legacy_vip_role,
    payment_record,
    plan,
    refund_settlement,
)

log = logging.getLogger(__name__)

BATCH_SIZE = 5_000
# Keys per lookup query: even for a key of three columns, far below SQLite's limit on bound
# parameters (32766).
KEYS_PER_QUERY = 1_000

VIP_ROLE_COLUMNS = ("id", "vip_name", "price", "service_month", "is_active")
USER_VIP_COLUMNS = (
    "id",
    "user_id",
    "vip_role_id",
    "total_price",
    "status",
    "is_active",
    "create_time",
    "active_time",
    "expire_time",
    "order_no",
)
ORDER_COLUMNS = (
    "order_id",
    "user_id",
    "record_type",
    "actual_price",
    "order_status",
    "create_time",
    "pay_time",
)
REFUND_COLUMNS = ("order_id", "refund_amount", "settled_at")

LEGACY_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
LEGACY_TIME_RANGE = (datetime.min + timedelta(days=1), datetime.max - timedelta(days=1))
MAX_INTEGER = 2**31 - 1
MAX_BIGINT = 2**63 - 1
# Money is NUMERIC(14, 2): at most twelve digits before the point.
MAX_AMOUNT = Decimal("999999999999.99")
CENT = Decimal("0.01")
ORDER_ID_LENGTH = payment_record.c.order_id.type.length
RECORD_TYPES = {str(int(record_type)): int(record_type) for record_type in RecordType}
ORDER_STATUSES = tuple(status.value for status in OrderStatus)

_INTEGER = re.compile(r"[+-]?[0-9]+")
_DECIMAL = re.compile(r"[+-]?[0-9]+(\.[0-9]+)?")
_LEGACY_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}")


@dataclass(frozen=True)
class RejectedLine:
    line: int
    reason: str
    detail: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason} ({self.detail})"


@dataclass
class ImportReport:
    """What importing one file did; each data line counts once, in exactly one bucket."""

    source: str
    lines: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: list[RejectedLine] = field(default_factory=list)
    # Anything else the import wrote, in a few words (the plan catalogue, for vip_role.csv).
    notes: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """0 when every line was taken, 1 when some were rejected."""
        return 1 if self.rejected else 0

    @property
    def rejected_reasons(self) -> dict[int, str]:
        return {rejected.line: rejected.reason for rejected in self.rejected}

    def summary(self) -> str:
        counts = (
            f"{self.source}: {self.lines} lines read, {self.inserted} inserted, "
            f"{self.updated} updated, {self.unchanged} unchanged, {len(self.rejected)} rejected"
        )
        details = [f"  {note}" for note in self.notes]
        details += [f"  {rejected}" for rejected in self.rejected]
        return "\n".join([counts, *details])


class _Rejection(Exception):
    """A line cannot be taken; raised by the parsers with the reason and the field's value."""

    def __init__(self, reason: str, detail: str):
        super().__init__(reason, detail)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class _Target:
    """How the lines of one CSV file become rows of one table."""

    table: Table
    columns: tuple[str, ...]
    # The columns that tell one row from another, in the order of the table's index on them.
    key: tuple[str, ...]
    parse: Callable[[dict[str, str]], dict]
    # None when the key is every column: a key seen again can only be the same row again.
    duplicate_reason: str | None
    # True: a stored row with other content was loaded from an older export and is updated.
    # False: it is a clash, and the line is rejected with `duplicate_reason`.
    takes_corrections: bool
    # True: inserted rows also get source_file, source_line and imported_at.
    records_source: bool = False

    def __post_init__(self) -> None:
        if self.duplicate_reason is None and set(self.key) != set(self.columns):
            raise ValueError(f"{self.table.name}: a partial key needs a duplicate_reason")


# --- the public entry points -------------------------------------------------------------------


def import_legacy(
    engine: Engine,
    directory: Path,
    *,
    encoding: str = "utf-8",
    batch_size: int = BATCH_SIZE,
) -> list[ImportReport]:
    """Load `vip_role.csv`, then `user_vip.csv`, from a legacy export; one report per file.

    The plan catalogue is then made to match the legacy roles, sold or not.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise InputFileError(f"{directory} is not a directory with vip_role.csv and user_vip.csv")
    roles_path = directory / "vip_role.csv"
    memberships_path = directory / "user_vip.csv"
    _check_file(roles_path, VIP_ROLES.columns, encoding)
    _check_file(memberships_path, USER_VIPS.columns, encoding)

    roles = _load(engine, roles_path, VIP_ROLES, encoding, batch_size)
    if roles.lines == 0:
        # Without a catalogue every membership would be quarantined as unknown_role.
        raise InputFileError(f"{roles_path} has a header but no roles; the export is incomplete")
    added, changed = _sync_plan_catalogue(engine)
    roles.notes.append(f"plan catalogue: {added} added, {changed} updated")
    log.info("plan catalogue: %d added, %d updated", added, changed)

    memberships = _load(engine, memberships_path, USER_VIPS, encoding, batch_size)
    return [roles, memberships]


def import_orders(
    engine: Engine,
    path: Path,
    *,
    encoding: str = "utf-8",
    batch_size: int = BATCH_SIZE,
) -> ImportReport:
    """Load payment records as the payment back office exports them."""
    path = Path(path)
    _check_file(path, ORDERS.columns, encoding)
    return _load(engine, path, ORDERS, encoding, batch_size)


def import_refunds(
    engine: Engine,
    path: Path,
    *,
    encoding: str = "utf-8",
    batch_size: int = BATCH_SIZE,
) -> ImportReport:
    """Load refund settlements from the payment gateway, each stored as pending.

    The gateway resends files: a settlement already loaded, from this file or an earlier one,
    is counted unchanged and keeps the line and status it has.
    """
    path = Path(path)
    _check_file(path, REFUNDS.columns, encoding)
    return _load(engine, path, REFUNDS, encoding, batch_size)


# --- parsing one line --------------------------------------------------------------------------


def _require(fields: dict[str, str], names: Iterable[str]) -> None:
    for name in names:
        if not fields[name].strip():
            raise _Rejection("missing_field", f"{name} is empty")


def _integer(
    fields: dict[str, str], name: str, *, low: int, high: int, reason: str = "bad_integer"
) -> int | None:
    text = fields[name].strip()
    if not text:
        return None
    if not _INTEGER.fullmatch(text):
        raise _Rejection(reason, f"{name} {text!r} is not an integer")
    # int() refuses more than 4300 digits, and no key here needs more than 19.
    if len(text.lstrip("+-").lstrip("0")) > len(str(MAX_BIGINT)):
        raise _Rejection(reason, f"{name} {text[:24]!r}… has {len(text)} digits; too large")
    value = int(text)
    if value < low:
        raise _Rejection(reason, f"{name} {text!r} is below {low}")
    if value > high:
        raise _Rejection(reason, f"{name} {text!r} is too large")
    return value


def _flag(fields: dict[str, str], name: str) -> bool | None:
    text = fields[name].strip()
    if not text:
        return None
    if text not in ("0", "1"):
        raise _Rejection("bad_integer", f"{name} {text!r} is not 0 or 1")
    return text == "1"


def _amount(
    fields: dict[str, str], name: str, *, exact_cents: bool, reason: str = "bad_price"
) -> Decimal | None:
    """A decimal amount; with `exact_cents`, a non-negative one of at most two places."""
    text = fields[name].strip()
    if not text:
        return None
    if not _DECIMAL.fullmatch(text):
        raise _Rejection(reason, f"{name} {text!r} is not a plain decimal")
    value = Decimal(text)
    if abs(value) > MAX_AMOUNT:
        raise _Rejection(reason, f"{name} {text!r} is too large")
    if exact_cents and value < 0:
        raise _Rejection(reason, f"{name} {text!r} is negative")
    if exact_cents and value != value.quantize(CENT):
        raise _Rejection(reason, f"{name} {text!r} has more than two decimal places")
    return value


def _legacy_time(fields: dict[str, str], name: str) -> datetime | None:
    """A naive local time as the old system wrote it."""
    text = fields[name].strip()
    if not text:
        return None
    if _LEGACY_TIME.fullmatch(text):
        try:
            value = datetime.strptime(text, LEGACY_TIME_FORMAT)
        except ValueError:
            pass
        else:
            # The migration reads it in Shanghai time; a day's margin keeps that in range.
            if not LEGACY_TIME_RANGE[0] <= value <= LEGACY_TIME_RANGE[1]:
                raise _Rejection("bad_time", f"{name} {text!r} is out of range")
            return value
    raise _Rejection("bad_time", f"{name} {text!r} is not a YYYY-MM-DD HH:MM:SS time")


def _instant(fields: dict[str, str], name: str) -> datetime | None:
    """An ISO 8601 time with an explicit offset, as an aware UTC datetime."""
    text = fields[name].strip()
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise _Rejection("bad_time", f"{name} {text!r} is not an ISO 8601 time") from None
    if value.tzinfo is None:
        raise _Rejection("bad_time", f"{name} {text!r} has no offset such as +08:00 or Z")
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise _Rejection("bad_time", f"{name} {text!r} is out of range") from None


def _order_id(fields: dict[str, str]) -> str:
    order_id = fields["order_id"].strip()
    if len(order_id) > ORDER_ID_LENGTH:
        raise _Rejection(
            "bad_order_id", f"order_id {order_id!r} is longer than {ORDER_ID_LENGTH} characters"
        )
    return order_id


def _text(fields: dict[str, str], name: str) -> str | None:
    """The field exactly as exported; empty means NULL."""
    return fields[name] or None


def _parse_vip_role(fields: dict[str, str]) -> dict:
    _require(fields, VIP_ROLE_COLUMNS)
    role = {
        "id": _integer(fields, "id", low=-MAX_INTEGER, high=MAX_INTEGER),
        "vip_name": fields["vip_name"],
        "service_month": _integer(fields, "service_month", low=1, high=MAX_INTEGER),
        "is_active": _flag(fields, "is_active"),
    }
    role["price"] = _amount(fields, "price", exact_cents=True)
    return role


def _parse_user_vip(fields: dict[str, str]) -> dict:
    _require(fields, ("id", "vip_role_id", "create_time"))
    membership = {
        "id": _integer(fields, "id", low=-MAX_BIGINT, high=MAX_BIGINT),
        "user_id": _integer(fields, "user_id", low=-MAX_BIGINT, high=MAX_BIGINT),
        "vip_role_id": _integer(fields, "vip_role_id", low=-MAX_INTEGER, high=MAX_INTEGER),
        "is_active": _flag(fields, "is_active"),
    }
    # Checked only: the migration parses it, and quarantines negative prices.
    _amount(fields, "total_price", exact_cents=False)
    membership |= {
        "total_price": _text(fields, "total_price"),
        "status": _text(fields, "status"),
        "create_time": _legacy_time(fields, "create_time"),
        "active_time": _legacy_time(fields, "active_time"),
        "expire_time": _legacy_time(fields, "expire_time"),
        "order_no": _text(fields, "order_no"),
    }
    return membership


def _parse_order(fields: dict[str, str]) -> dict:
    _require(fields, ORDER_COLUMNS[:-1])
    user_id = _integer(fields, "user_id", low=1, high=MAX_BIGINT, reason="bad_user_id")
    order_id = _order_id(fields)
    record_type = fields["record_type"].strip()
    if record_type not in RECORD_TYPES:
        raise _Rejection(
            "unknown_record_type",
            f"record_type {record_type!r} is not one of {', '.join(RECORD_TYPES)}",
        )
    order_status = fields["order_status"].strip()
    if order_status not in ORDER_STATUSES:
        raise _Rejection(
            "unknown_order_status",
            f"order_status {order_status!r} is not one of {', '.join(ORDER_STATUSES)}",
        )
    return {
        "order_id": order_id,
        "user_id": user_id,
        "record_type": RECORD_TYPES[record_type],
        "actual_price": _amount(fields, "actual_price", exact_cents=True),
        "order_status": order_status,
        "create_time": _instant(fields, "create_time"),
        "pay_time": _instant(fields, "pay_time"),
    }


def _parse_refund(fields: dict[str, str]) -> dict:
    # Zero, or more than the order's amount, is for the settle-refunds flow to judge.
    _require(fields, REFUND_COLUMNS)
    return {
        "order_id": _order_id(fields),
        "refund_amount": _amount(fields, "refund_amount", exact_cents=True, reason="bad_amount"),
        "settled_at": _instant(fields, "settled_at"),
    }


VIP_ROLES = _Target(
    table=legacy_vip_role,
    columns=VIP_ROLE_COLUMNS,
    key=("id",),
    parse=_parse_vip_role,
    duplicate_reason="duplicate_id",
    takes_corrections=True,
)
USER_VIPS = _Target(
    table=legacy_user_vip,
    columns=USER_VIP_COLUMNS,
    key=("id",),
    parse=_parse_user_vip,
    duplicate_reason="duplicate_id",
    takes_corrections=True,
)
ORDERS = _Target(
    table=payment_record,
    columns=ORDER_COLUMNS,
    key=("order_id",),
    parse=_parse_order,
    duplicate_reason="duplicate_order_id",
    takes_corrections=False,
)
REFUNDS = _Target(
    table=refund_settlement,
    columns=REFUND_COLUMNS,
    key=REFUND_COLUMNS,
    parse=_parse_refund,
    duplicate_reason=None,
    takes_corrections=False,
    records_source=True,
)


# --- reading the file --------------------------------------------------------------------------


def _check_file(path: Path, columns: tuple[str, ...], encoding: str) -> None:
    """Read the whole file once, writing nothing, so a file that cannot be read fails first."""
    for _ in _read_lines(path, columns, encoding):
        pass


def _read_lines(
    path: Path, columns: tuple[str, ...], encoding: str
) -> Iterator[tuple[int, list[str], list[int]]]:
    """(line number, values, where each expected column is among them), for each data line."""
    try:
        file = path.open(encoding=encoding, newline="")
    except LookupError:
        raise InputFileError(f"{path}: unknown encoding {encoding!r}") from None
    except OSError as error:
        raise InputFileError(f"{path} cannot be read: {error.strerror}") from None
    with file:
        reader = csv.reader(file)
        try:
            header = next(reader, None)
            positions = _header_positions(path, header, columns)
            previous_line = reader.line_num
            for values in reader:
                line, previous_line = previous_line + 1, reader.line_num
                # No export here has line breaks inside a field: this is a quote left open,
                # and the lines it swallowed would otherwise vanish without a word. On the last
                # line it swallows only the line end.
                if reader.line_num > line or any("\n" in value for value in values):
                    runs_to = f"line {reader.line_num}" if reader.line_num > line else "the end"
                    raise InputFileError(
                        f"{path}: line {line} opens a quoted field that runs on to {runs_to}; "
                        "is a closing quote missing?"
                    )
                # A blank line is not a record; it is skipped and not counted.
                if values:
                    yield line, values, positions
        except UnicodeDecodeError as error:
            raise InputFileError(_decode_error_message(path, encoding, error)) from None
        except UnicodeError as error:
            raise InputFileError(f"{path} is not valid {encoding}: {error}") from None
        except csv.Error as error:
            raise InputFileError(f"{path}: line {reader.line_num} is not CSV: {error}") from None


def _header_positions(path: Path, header: list[str] | None, columns: tuple[str, ...]) -> list[int]:
    expected = f"expected the columns {','.join(columns)}"
    names = [name.strip() for name in header or [""]]
    names[0] = names[0].removeprefix("\ufeff").strip()
    # Nothing, or only a BOM (Excel saving an empty sheet).
    if names == [""]:
        raise InputFileError(f"{path} is empty; {expected}")
    missing = [name for name in columns if name not in names]
    unexpected = [name for name in names if name not in columns]
    repeated = sorted({name for name in names if names.count(name) > 1})
    problems = []
    if missing:
        problems.append(f"missing column(s) {', '.join(missing)}")
    if unexpected:
        problems.append(f"unexpected column(s) {', '.join(repr(name) for name in unexpected)}")
    if repeated:
        problems.append(f"repeated column(s) {', '.join(repeated)}")
    if problems:
        raise InputFileError(f"{path}: wrong header: {'; '.join(problems)} ({expected})")
    return [names.index(name) for name in columns]


def _decode_error_message(path: Path, encoding: str, error: UnicodeDecodeError) -> str:
    hint = "check the file's encoding"
    if codecs.lookup(encoding).name != "gb18030":
        hint = "if it was saved on a Chinese Windows system, try --encoding gb18030"
    return (
        f"{path}: line {_undecodable_line(path, encoding)} is not valid {encoding} "
        f"({error.reason}); {hint}"
    )


def _undecodable_line(path: Path, encoding: str) -> int:
    """The line at which decoding fails (text-mode reading only knows the chunk)."""
    decoder = codecs.getincrementaldecoder(encoding)()
    number = 0
    with path.open("rb") as file:
        for number, raw in enumerate(file, start=1):
            try:
                decoder.decode(raw)
            except UnicodeDecodeError:
                return number
    return number


def _fields(values: list[str], positions: list[int], columns: tuple[str, ...]) -> dict[str, str]:
    if len(values) < len(columns):
        raise _Rejection(
            "missing_field", f"the line has {len(values)} of the {len(columns)} columns"
        )
    if len(values) > len(columns):
        raise _Rejection(
            "extra_field", f"the line has {len(values)} columns; the header has {len(columns)}"
        )
    fields = {name: values[position] for name, position in zip(columns, positions, strict=True)}
    for name, value in fields.items():
        if "\x00" in value:
            # PostgreSQL text cannot hold NUL; no export has a reason to contain one.
            raise _Rejection("bad_character", f"{name} contains a NUL character")
    return fields


def _batches(lines: Iterator, size: int) -> Iterator[list]:
    while batch := list(islice(lines, size)):
        yield batch


# --- loading batches ---------------------------------------------------------------------------


def _load(
    engine: Engine, path: Path, target: _Target, encoding: str, batch_size: int
) -> ImportReport:
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, not {batch_size}")
    report = ImportReport(source=path.name)
    log.info("importing %s into %s", path, target.table.name)
    # Keys of earlier batches tell a key repeated in this file (rejected) from a correction of
    # an older import (updated); orders and settlements take no corrections and leave it
    # empty.
    # NOTE: it grows with the file (~120 bytes a key); the database cannot tell the two apart.
    earlier_keys: set[tuple] = set()
    # Every row this import inserts shares one imported_at.
    source = (
        {"source_file": path.name, "imported_at": datetime.now(UTC)}
        if target.records_source
        else None
    )

    for batch in _batches(_read_lines(path, target.columns, encoding), batch_size):
        report.lines += len(batch)
        rows = _parse_batch(batch, target, report)
        if rows:
            with write_transaction(engine) as connection:
                _write_batch(connection, target, rows, report, earlier_keys, source)
        if target.takes_corrections:
            earlier_keys.update(rows)

    report.rejected.sort(key=lambda rejected: rejected.line)
    reasons = Counter(rejected.reason for rejected in report.rejected)
    log.info(
        "imported %s: %d lines, %d inserted, %d updated, %d unchanged, %d rejected%s",
        path.name,
        report.lines,
        report.inserted,
        report.updated,
        report.unchanged,
        len(report.rejected),
        "".join(f"; {reason} {count}" for reason, count in sorted(reasons.items())),
    )
    return report


def _parse_batch(
    batch: list[tuple[int, list[str], list[int]]], target: _Target, report: ImportReport
) -> dict[tuple, tuple[int, dict]]:
    """Each key's first good line in the batch, as (line number, row); counts the others."""
    rows: dict[tuple, tuple[int, dict]] = {}
    for line, values, positions in batch:
        try:
            row = target.parse(_fields(values, positions, target.columns))
        except _Rejection as rejection:
            report.rejected.append(RejectedLine(line, rejection.reason, rejection.detail))
            continue
        key = _key_of(row, target.key)
        if key not in rows:
            rows[key] = (line, row)
            continue
        first_line, first_row = rows[key]
        if first_row == row:
            report.unchanged += 1
        else:
            detail = (
                f"{_described(target.key, key)} is also on line {first_line}, "
                f"with another {_differences(first_row, row, target.columns)}"
            )
            report.rejected.append(RejectedLine(line, target.duplicate_reason, detail))
    return rows


def _write_batch(
    connection: Connection,
    target: _Target,
    rows: dict[tuple, tuple[int, dict]],
    report: ImportReport,
    earlier_keys: set[tuple],
    source: dict | None,
) -> None:
    stored = _stored_rows(connection, target.table, target.key, list(rows))
    new, corrected = [], []
    for key, (line, row) in rows.items():
        before = stored.get(key)
        if before is None:
            new.append(row if source is None else row | source | {"source_line": line})
        # Only the file's columns count: the table may hold more (an order's refund, or where
        # a settlement came from and whether it was applied).
        elif not _changed(before, row, target.columns):
            report.unchanged += 1
        elif target.takes_corrections and key not in earlier_keys:
            corrected.append(row)
        else:
            where = "earlier in this file" if key in earlier_keys else "in the database"
            changed = _differences(before, row, target.columns)
            detail = f"{_described(target.key, key)} is {where} with another {changed}"
            report.rejected.append(RejectedLine(line, target.duplicate_reason, detail))
    _insert_and_update(connection, target.table, target.key, new, corrected)
    report.inserted += len(new)
    report.updated += len(corrected)


def _key_of(row: Mapping[str, object], key: tuple[str, ...]) -> tuple:
    return tuple(row[name] for name in key)


def _stored_rows(
    connection: Connection, table: Table, key: tuple[str, ...], keys: list[tuple]
) -> dict[tuple, dict]:
    stored = {}
    for start in range(0, len(keys), KEYS_PER_QUERY):
        query = select(table).where(_key_in(table, key, keys[start : start + KEYS_PER_QUERY]))
        for row in connection.execute(query):
            stored[_key_of(row._mapping, key)] = dict(row._mapping)
    return stored


def _key_in(table: Table, key: tuple[str, ...], keys: list[tuple]) -> ColumnElement[bool]:
    """`key in keys`, written so that both databases search the index on the key."""
    first_column = table.c[key[0]].in_(list({values[0] for values in keys}))
    if len(key) == 1:
        return first_column
    # SQLite 3.40 scans the whole table for `(a, b) in (values ...)`; the condition on the
    # first column lets it search the index instead.
    return and_(first_column, tuple_(*(table.c[name] for name in key)).in_(keys))


def _insert_and_update(
    connection: Connection,
    table: Table,
    key: tuple[str, ...],
    new: list[dict],
    corrected: list[dict],
) -> None:
    if new:
        connection.execute(insert(table), new)
    if corrected:
        # The key's values are bound under other names: SQLAlchemy keeps column names for SET.
        statement = update(table).where(
            and_(*(table.c[name] == bindparam(f"stored_{name}") for name in key))
        )
        changes = [
            {name: value for name, value in row.items() if name not in key}
            | {f"stored_{name}": row[name] for name in key}
            for row in corrected
        ]
        connection.execute(statement, changes)


def _changed(before: dict, after: dict, columns: tuple[str, ...]) -> list[str]:
    """The columns two versions of a row disagree on."""
    return [name for name in columns if before.get(name) != after[name]]


def _differences(before: dict, after: dict, columns: tuple[str, ...]) -> str:
    """The columns two versions of a row disagree on, with this line's values."""
    return ", ".join(f"{name} {_shown(after[name])}" for name in _changed(before, after, columns))


def _described(key: tuple[str, ...], values: tuple) -> str:
    return ", ".join(f"{name} {_shown(value)}" for name, value in zip(key, values, strict=True))


def _shown(value) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    return repr(value) if isinstance(value, str) else str(value)


def _sync_plan_catalogue(engine: Engine) -> tuple[int, int]:
    """Make `plan` mirror every legacy role; returns (added, updated).

    The catalogue is a few dozen rows, so it is read whole.
    """
    with write_transaction(engine) as connection:
        wanted = [
            {
                "id": role.id,
                "name": role.vip_name.strip(" \t"),
                "list_price": role.price,
                "service_month": role.service_month,
                "is_on_sale": role.is_active,
            }
            for role in connection.execute(select(legacy_vip_role).order_by(legacy_vip_role.c.id))
        ]
        stored = {row.id: dict(row._mapping) for row in connection.execute(select(plan))}
        new = [entry for entry in wanted if entry["id"] not in stored]
        changed = [
            entry for entry in wanted if entry["id"] in stored and stored[entry["id"]] != entry
        ]
        _insert_and_update(connection, plan, ("id",), new, changed)
    return len(new), len(changed)
