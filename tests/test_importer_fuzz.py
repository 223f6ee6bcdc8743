"""The three importers under hostile files (hypothesis), on SQLite and PostgreSQL.

Two properties per importer. Files of good lines mixed with lines broken in one known way
(a column too few or too many, thousands separators, dates in other formats, …), in any
column order, encoding, BOM and line ending: exactly the broken lines are rejected, each with
its number and reason, and the database holds exactly what the good lines say. Files of
anything at all (random text, lines cut short, good lines in between): the import either
refuses the whole file before writing or accounts for every line, and every row it wrote is
what an accepted line says, field by field. A few cases run the real `wallet import` command.
"""

import csv
import io
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, func, select

from pipelines.importers import (
    ORDER_COLUMNS,
    REFUND_COLUMNS,
    USER_VIP_COLUMNS,
    import_legacy,
    import_orders,
    import_refunds,
)
from tests.support import run_wallet
from wallet.errors import InputFileError
from wallet.tables import (
    legacy_user_vip,
    legacy_vip_role,
    payment_record,
    plan,
    refund_settlement,
)

ROLES_FILE = "id,vip_name,price,service_month,is_active\n1,标准版,1999.00,12,1\n2,体验版,0.00,1,0\n"
TABLES = (payment_record, refund_settlement, legacy_user_vip, plan, legacy_vip_role)
# How the file is written: text encoding, the --encoding to read it with, BOM, line ending.
ENCODINGS = [("utf-8", "utf-8", ""), ("utf-8", "utf-8", "\ufeff"), ("gb18030", "gb18030", "")]
NEWLINES = ["\n", "\r\n"]
LEGACY_TIME = "%Y-%m-%d %H:%M:%S"

# NOTE: Prefect's background threads, left by flow tests earlier in the session, draw from the
# global `random` module; hypothesis sees its state move during a draw and blames the strategy.
# No strategy here uses `random`.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Do not use the `random` module inside strategies"
    ":hypothesis.errors.HypothesisDeprecationWarning"
)

FUZZ = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
# `make soak`: the same properties, many more files.
SOAK_FUZZ = settings(FUZZ, max_examples=400)


def clear(engine) -> None:
    with engine.begin() as connection:
        for table in TABLES:
            connection.execute(delete(table))


def stored(engine, table) -> list[dict]:
    with engine.connect() as connection:
        return [dict(row._mapping) for row in connection.execute(select(table))]


def count(engine, table) -> int:
    with engine.connect() as connection:
        return connection.execute(select(func.count()).select_from(table)).scalar_one()


def csv_line(values: list[str]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="").writerow(values)
    return out.getvalue()


def write_file(path: Path, header: list[str], lines: list[str], layout) -> Path:
    file_encoding, _, bom = layout["encoding"]
    text = layout["newline"].join([bom + ",".join(header), *lines]) + layout["newline"]
    path.write_bytes(text.encode(file_encoding))
    return path


# --- values, as the exports write them ---------------------------------------------------------

safe_text = st.text(
    alphabet=st.sampled_from("abcXYZ019 -_.:;/会员订单退款标准版"), min_size=1, max_size=12
)
identifiers = st.text(alphabet="ABCPV0123456789-_", min_size=1, max_size=20)
offsets = st.sampled_from([timedelta(0), timedelta(hours=8), timedelta(hours=-5, minutes=-30)])
moments = st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2090, 1, 1))
cents = st.integers(min_value=0, max_value=10**12).map(lambda n: Decimal(n) / 100)


@st.composite
def instants(draw) -> tuple[datetime, str]:
    """(aware UTC value, ISO 8601 text with an offset, in one of the ways exports write it)."""
    local = draw(moments).replace(microsecond=0)
    offset = draw(offsets)
    aware = local.replace(tzinfo=timezone(offset))
    text = aware.isoformat()
    if offset == timedelta(0) and draw(st.booleans()):
        text = local.isoformat() + "Z"
    return aware.astimezone(UTC), text


def money_text(amount: Decimal, draw) -> str:
    return draw(st.sampled_from([f"{amount:.2f}", f" {amount:.2f} ", f"{amount.normalize():f}"]))


# Broken values, each with the one reason a line carrying it is rejected for.
thousands = st.integers(min_value=1_000, max_value=10**9).map(lambda n: f"{n:,}.00")
other_date_formats = st.sampled_from(
    [
        "2024/01/31 10:00:00",
        "31/01/2024",
        "01-31-2024 10:00",
        "2024年1月31日",
        "2024-02-30T00:00:00Z",
        "Jan 31, 2024",
        "20240131",
    ]
)
# Past 64 bits, and past the 4300 digits Python's int() refuses to read.
huge_numbers = st.sampled_from([20, 4_400, 10_000]).map(lambda n: "9" * n)
layouts = st.fixed_dictionaries(
    {"encoding": st.sampled_from(ENCODINGS), "newline": st.sampled_from(NEWLINES)}
)


# --- orders ------------------------------------------------------------------------------------


@st.composite
def good_orders(draw, order_id: str) -> tuple[dict, list[str]]:
    """(the row it must become, the line's values in ORDER_COLUMNS order)."""
    user_id = draw(st.integers(min_value=1, max_value=2**63 - 1))
    record_type = draw(st.sampled_from([1, 2, 3, 4]))
    price = draw(cents)
    status = draw(st.sampled_from(["unpay", "paid", "refund", "refunded", "closed", "deleted"]))
    create_time, create_text = draw(instants())
    pay_time, pay_text = draw(st.one_of(st.just((None, "")), instants()))
    row = {
        "order_id": order_id,
        "user_id": user_id,
        "record_type": record_type,
        "actual_price": price,
        "order_status": status,
        "create_time": create_time,
        "pay_time": pay_time,
    }
    values = [
        order_id,
        str(user_id),
        str(record_type),
        money_text(price, draw),
        status,
        create_text,
        pay_text,
    ]
    return row, values


ORDER_BREAKS = {
    "missing_field": st.sampled_from(["drop_last", "empty:user_id", "empty:create_time"]),
    "extra_field": st.sampled_from(["append", "unquoted_thousands:actual_price"]),
    "bad_user_id": st.one_of(
        st.sampled_from(["u1001", "0", "-7", "1.5", "1,001"]), huge_numbers
    ).map(lambda value: f"set:user_id:{value}"),
    "bad_order_id": st.integers(min_value=65, max_value=200).map(
        lambda n: f"set:order_id:{'X' * n}"
    ),
    "unknown_record_type": st.sampled_from(["0", "5", "expense"]).map(
        lambda value: f"set:record_type:{value}"
    ),
    "unknown_order_status": st.sampled_from(["PAID", "pending", "已支付"]).map(
        lambda value: f"set:order_status:{value}"
    ),
    "bad_price": st.one_of(
        thousands, st.sampled_from(["12.345", "-1.00", "¥100", "1e3", "1 000.00", "12.3.4"])
    ).map(lambda value: f"set:actual_price:{value}"),
    "bad_time": st.one_of(
        other_date_formats, st.just("2024-01-31 10:00:00"), st.just("2024-01-31T10:00:00")
    ).map(lambda value: f"set:create_time:{value}"),
    "bad_character": st.just("set:order_status:pa\x00id"),
}


def broken(values: list[str], columns: tuple[str, ...], how: str) -> list[str]:
    """`values` broken the way `how` says (see the *_BREAKS tables)."""
    values = list(values)
    action, _, rest = how.partition(":")
    if action == "drop_last":
        return values[:-1]
    if action == "append":
        return [*values, "extra"]
    name, _, value = rest.partition(":")
    position = columns.index(name)
    if action == "empty":
        values[position] = ""
    elif action == "set":
        values[position] = value
    elif action == "unquoted_thousands":
        # "1,234.00" written without quotes: the comma splits the field in two.
        values[position : position + 1] = ["1", "234.00"]
    return values


# --- refund settlements ------------------------------------------------------------------------


@st.composite
def good_refunds(draw, order_id: str) -> tuple[dict, list[str]]:
    amount = draw(cents)
    settled_at, settled_text = draw(instants())
    row = {"order_id": order_id, "refund_amount": amount, "settled_at": settled_at}
    return row, [order_id, money_text(amount, draw), settled_text]


REFUND_BREAKS = {
    "missing_field": st.sampled_from(["drop_last", "empty:order_id", "empty:refund_amount"]),
    "extra_field": st.sampled_from(["append", "unquoted_thousands:refund_amount"]),
    "bad_order_id": st.integers(min_value=65, max_value=200).map(
        lambda n: f"set:order_id:{'X' * n}"
    ),
    "bad_amount": st.one_of(
        thousands, st.sampled_from(["-5.00", "0.001", "¥5", "5元", "1e2", "five"])
    ).map(lambda value: f"set:refund_amount:{value}"),
    "bad_time": st.one_of(other_date_formats, st.just("2024-09-12 04:04:06")).map(
        lambda value: f"set:settled_at:{value}"
    ),
    "bad_character": st.just("set:order_id:A\x001"),
}


# --- legacy memberships (user_vip.csv) ---------------------------------------------------------


@st.composite
def legacy_times(draw, required: bool) -> tuple[datetime | None, str]:
    if not required and draw(st.booleans()):
        return None, ""
    moment = draw(moments).replace(microsecond=0)
    return moment, moment.strftime(LEGACY_TIME)


@st.composite
def good_memberships(draw, legacy_id: int) -> tuple[dict, list[str]]:
    user_id = draw(st.one_of(st.none(), st.integers(min_value=1, max_value=2**63 - 1)))
    role_id = draw(st.sampled_from([1, 2, 404]))
    total_price = draw(st.sampled_from(["", "1998.9999999999998", "0.005", "-99.00", "699"]))
    status = draw(st.sampled_from(["", "success", " Success ", "refunding", "frozen", "退款中"]))
    is_active = draw(st.sampled_from(["", "0", "1"]))
    create_time, create_text = draw(legacy_times(True))
    active_time, active_text = draw(legacy_times(False))
    expire_time, expire_text = draw(legacy_times(False))
    order_no = draw(st.one_of(st.just(""), identifiers))
    row = {
        "id": legacy_id,
        "user_id": user_id,
        "vip_role_id": role_id,
        "total_price": total_price or None,
        "status": status or None,
        "is_active": None if is_active == "" else is_active == "1",
        "create_time": create_time,
        "active_time": active_time,
        "expire_time": expire_time,
        "order_no": order_no or None,
    }
    values = [
        str(legacy_id),
        "" if user_id is None else str(user_id),
        str(role_id),
        total_price,
        status,
        is_active,
        create_text,
        active_text,
        expire_text,
        order_no,
    ]
    return row, values


MEMBERSHIP_BREAKS = {
    "missing_field": st.sampled_from(
        ["drop_last", "empty:id", "empty:vip_role_id", "empty:create_time"]
    ),
    "extra_field": st.sampled_from(["append", "unquoted_thousands:total_price"]),
    "bad_integer": st.one_of(
        st.sampled_from(["user_id:1,001", "user_id:u1", "is_active:2", "vip_role_id:x"]),
        huge_numbers.map(lambda value: f"user_id:{value}"),
    ).map(lambda change: f"set:{change}"),
    "bad_price": st.one_of(thousands, st.sampled_from(["¥5", "1e3", "12.3.4"])).map(
        lambda value: f"set:total_price:{value}"
    ),
    "bad_time": st.one_of(
        other_date_formats,
        st.sampled_from(["2024-01-31T10:00:00", "2024-01-31 10:00", "0001-01-01 00:00:00"]),
    ).map(lambda value: f"set:create_time:{value}"),
    "bad_character": st.just("set:status:succ\x00ess"),
}


# --- what each importer is, for the properties -------------------------------------------------


def _orders_stored(engine) -> dict:
    return {
        row["order_id"]: {name: row[name] for name in ORDER_COLUMNS}
        for row in stored(engine, payment_record)
    }


def _refunds_stored(engine) -> dict:
    return {
        (row["order_id"], row["refund_amount"], row["settled_at"]): {
            name: row[name] for name in (*REFUND_COLUMNS, "source_line", "status")
        }
        for row in stored(engine, refund_settlement)
    }


def _memberships_stored(engine) -> dict:
    return {row["id"]: row for row in stored(engine, legacy_user_vip)}


def _import_memberships(engine, path: Path, encoding: str):
    (path.parent / "vip_role.csv").write_bytes(ROLES_FILE.encode(encoding))
    roles, memberships = import_legacy(engine, path.parent, encoding=encoding)
    assert (roles.inserted, roles.rejected) == (2, [])
    return memberships


IMPORTERS = {
    "orders": {
        "file": "orders.csv",
        "columns": ORDER_COLUMNS,
        "keys": st.lists(
            st.text(alphabet="ABCPV0123456789-_订单", min_size=1, max_size=20),
            max_size=12,
            unique=True,
        ),
        "good": good_orders,
        "breaks": ORDER_BREAKS,
        "key": lambda row: row["order_id"],
        "duplicate_reason": "duplicate_order_id",
        "run": lambda engine, path, encoding: import_orders(engine, path, encoding=encoding),
        "stored": _orders_stored,
        "as_stored": lambda row, line: row,
    },
    "refunds": {
        "file": "refunds.csv",
        "columns": REFUND_COLUMNS,
        # Settlements have no key of their own: the whole line is the key.
        "keys": st.lists(identifiers, max_size=12),
        "good": good_refunds,
        "breaks": REFUND_BREAKS,
        "key": lambda row: (row["order_id"], row["refund_amount"], row["settled_at"]),
        "duplicate_reason": None,
        "run": lambda engine, path, encoding: import_refunds(engine, path, encoding=encoding),
        "stored": _refunds_stored,
        "as_stored": lambda row, line: row | {"source_line": line, "status": "pending"},
    },
    "memberships": {
        "file": "user_vip.csv",
        "columns": USER_VIP_COLUMNS,
        "keys": st.lists(
            st.integers(min_value=-(2**63) + 1, max_value=2**63 - 1), max_size=12, unique=True
        ),
        "good": good_memberships,
        "breaks": MEMBERSHIP_BREAKS,
        "key": lambda row: row["id"],
        "duplicate_reason": "duplicate_id",
        "run": _import_memberships,
        "stored": _memberships_stored,
        "as_stored": lambda row, line: row,
    },
}


@st.composite
def planned_files(draw, importer: dict):
    """A file of good, repeated, clashing and broken lines, and what importing it must give.

    Returns (header, lines, rejections {line: reason}, the rows the table must hold by key).
    """
    columns, good = importer["columns"], importer["good"]
    entries = []
    for key in draw(importer["keys"]):
        row, values = draw(good(key))
        entries.append(("good", row, values))
        if draw(st.integers(0, 4)) == 0:
            entries.append(("good", row, values))  # the same line again
        if importer["duplicate_reason"] and draw(st.integers(0, 4)) == 0:
            entries.append(("good", *draw(good(key))))  # the same key, maybe other content
    for number, reason in enumerate(
        draw(st.lists(st.sampled_from(sorted(importer["breaks"])), max_size=6))
    ):
        key = 10**15 + number if importer is IMPORTERS["memberships"] else f"BROKEN{number}"
        _, values = draw(good(key))
        entries.append((reason, None, broken(values, columns, draw(importer["breaks"][reason]))))
    entries = draw(st.permutations(entries))

    header = draw(st.permutations(list(columns)))
    lines, rejected, kept = [], {}, {}
    for kind, row, values in entries:
        if draw(st.integers(0, 9)) == 0:
            lines.append("")  # a blank line is skipped but keeps its number
        if len(values) == len(columns):
            values = [values[columns.index(name)] for name in header]
        lines.append(csv_line(values))
        number = len(lines) + 1
        if kind != "good":
            rejected[number] = kind
            continue
        key = importer["key"](row)
        if key not in kept:
            kept[key] = importer["as_stored"](row, number)
        elif {name: kept[key][name] for name in row} != row:
            rejected[number] = importer["duplicate_reason"]
    return header, lines, rejected, kept


def check_planned_file(importer: dict, engine, directory: Path, planned, layout) -> None:
    header, lines, rejected, kept = planned
    clear(engine)
    path = write_file(directory / importer["file"], header, lines, layout)

    report = importer["run"](engine, path, layout["encoding"][1])

    assert report.rejected_reasons == rejected
    summary = report.summary()
    assert all(f"  line {line}: {reason} (" in summary for line, reason in rejected.items())
    assert report.lines == sum(1 for line in lines if line)
    assert report.inserted == len(kept)
    assert report.inserted + report.unchanged + len(report.rejected) == report.lines
    assert importer["stored"](engine) == kept


@pytest.mark.parametrize("name", list(IMPORTERS))
@FUZZ
@given(data=st.data())
def test_import_rejects_exactly_the_broken_lines_and_stores_exactly_the_good_ones(
    engine, tmp_path_factory, name, data
):
    importer = IMPORTERS[name]
    planned = data.draw(planned_files(importer), label="file")
    layout = data.draw(layouts, label="layout")
    check_planned_file(importer, engine, tmp_path_factory.mktemp(name), planned, layout)


@pytest.mark.soak
@pytest.mark.parametrize("name", list(IMPORTERS))
@SOAK_FUZZ
@given(data=st.data())
def test_import_rejects_exactly_the_broken_lines_over_many_files(
    engine, tmp_path_factory, name, data
):
    importer = IMPORTERS[name]
    planned = data.draw(planned_files(importer), label="file")
    layout = data.draw(layouts, label="layout")
    check_planned_file(importer, engine, tmp_path_factory.mktemp(name), planned, layout)


# --- anything at all ---------------------------------------------------------------------------

# Field text for random lines: separators, digits, signs, dates, CJK, a BOM, a NUL; no quote
# and no line break (a quote left open is its own test below).
FIELD_CHARACTERS = "0123456789 .-+:TZ/年月日订单¥\ufeff\x00\tabcxyz"
LINE_CHARACTERS = st.sampled_from(list(",,," + FIELD_CHARACTERS))


@st.composite
def chaos_lines(draw, importer: dict) -> str:
    kind = draw(st.sampled_from(["good", "cut", "text", "fields", "blank"]))
    if kind in ("good", "cut"):
        key = draw(importer["keys"].filter(bool).map(lambda keys: keys[0]))
        line = csv_line(draw(importer["good"](key))[1])
        if kind == "cut":
            line = line[: draw(st.integers(min_value=0, max_value=len(line)))]
        return line
    if kind == "text":
        return draw(st.text(alphabet=LINE_CHARACTERS, max_size=80))
    if kind == "fields":
        fields = st.text(alphabet=FIELD_CHARACTERS, max_size=20)
        return csv_line(draw(st.lists(fields, max_size=len(importer["columns"]) + 2)))
    return ""


def _instant_or_none(text: str) -> datetime | None:
    return datetime.fromisoformat(text.strip()).astimezone(UTC) if text.strip() else None


def _legacy_or_none(text: str) -> datetime | None:
    return datetime.strptime(text.strip(), LEGACY_TIME) if text.strip() else None


def _int_or_none(text: str) -> int | None:
    return int(text.strip()) if text.strip() else None


# An accepted line read the plain way, with no checks: (key, the row it must have left).
READ_BACK = {
    "orders": lambda f: (
        f["order_id"].strip(),
        {
            "order_id": f["order_id"].strip(),
            "user_id": int(f["user_id"]),
            "record_type": int(f["record_type"]),
            "actual_price": Decimal(f["actual_price"].strip()),
            "order_status": f["order_status"].strip(),
            "create_time": _instant_or_none(f["create_time"]),
            "pay_time": _instant_or_none(f["pay_time"]),
        },
    ),
    "refunds": lambda f: (
        key := (
            f["order_id"].strip(),
            Decimal(f["refund_amount"].strip()),
            _instant_or_none(f["settled_at"]),
        ),
        dict(zip(REFUND_COLUMNS, key, strict=True)),
    ),
    "memberships": lambda f: (
        int(f["id"]),
        {
            "id": int(f["id"]),
            "user_id": _int_or_none(f["user_id"]),
            "vip_role_id": int(f["vip_role_id"]),
            "total_price": f["total_price"] or None,
            "status": f["status"] or None,
            "is_active": None if not f["is_active"].strip() else f["is_active"].strip() == "1",
            "create_time": _legacy_or_none(f["create_time"]),
            "active_time": _legacy_or_none(f["active_time"]),
            "expire_time": _legacy_or_none(f["expire_time"]),
            "order_no": f["order_no"] or None,
        },
    ),
}
REASONS = {
    "orders": {
        "missing_field",
        "extra_field",
        "bad_character",
        "bad_user_id",
        "bad_order_id",
        "unknown_record_type",
        "unknown_order_status",
        "bad_price",
        "bad_time",
        "duplicate_order_id",
    },
    "refunds": {
        "missing_field",
        "extra_field",
        "bad_character",
        "bad_order_id",
        "bad_amount",
        "bad_time",
    },
    "memberships": {
        "missing_field",
        "extra_field",
        "bad_character",
        "bad_integer",
        "bad_price",
        "bad_time",
        "duplicate_id",
    },
}


def check_any_file(name: str, engine, directory: Path, header, lines, layout) -> None:
    importer = IMPORTERS[name]
    clear(engine)
    path = write_file(directory / importer["file"], header, lines, layout)

    try:
        report = importer["run"](engine, path, layout["encoding"][1])
    except InputFileError as refused:
        event("file refused")
        # Refused as a whole: said why, about this file, and wrote nothing.
        assert importer["file"] in str(refused)
        assert all(count(engine, table) == 0 for table in (payment_record, refund_settlement))
        assert count(engine, legacy_user_vip) == 0
        return

    data_lines = {
        number: values
        for number, line in enumerate(lines, start=2)
        if (values := next(csv.reader([line]), []))
    }
    assert report.lines == len(data_lines)
    rejected = report.rejected_reasons
    assert len(rejected) == len(report.rejected), "a line was rejected twice"
    assert set(rejected) <= set(data_lines)
    assert set(rejected.values()) <= REASONS[name]
    assert report.inserted + report.unchanged + len(rejected) == report.lines
    assert report.updated == 0
    event(f"imported, {'some' if rejected else 'no'} lines rejected")

    names = [column.strip().removeprefix("\ufeff") for column in header]
    kept: dict = {}
    for number, values in data_lines.items():
        if number in rejected:
            continue
        key, row = READ_BACK[name](dict(zip(names, values, strict=True)))
        kept.setdefault(key, (number, row))
        assert kept[key][1] == row, f"line {number} was taken but differs from line {kept[key][0]}"
    stored_rows = importer["stored"](engine)
    assert set(stored_rows) == set(kept)
    for key, (number, row) in kept.items():
        assert {column: stored_rows[key][column] for column in row} == row, f"line {number}"


@st.composite
def any_files(draw, name: str):
    importer = IMPORTERS[name]
    header = list(draw(st.permutations(list(importer["columns"]))))
    lines = draw(st.lists(chaos_lines(importer), max_size=15))
    return header, lines


@pytest.mark.parametrize("name", list(IMPORTERS))
@FUZZ
@given(data=st.data())
def test_import_of_any_file_accounts_for_every_line_and_writes_only_whole_lines(
    engine, tmp_path_factory, name, data
):
    header, lines = data.draw(any_files(name), label="file")
    layout = data.draw(layouts, label="layout")
    check_any_file(name, engine, tmp_path_factory.mktemp(name), header, lines, layout)


@pytest.mark.soak
@pytest.mark.parametrize("name", list(IMPORTERS))
@SOAK_FUZZ
@given(data=st.data())
def test_import_of_any_file_over_many_files(engine, tmp_path_factory, name, data):
    header, lines = data.draw(any_files(name), label="file")
    layout = data.draw(layouts, label="layout")
    check_any_file(name, engine, tmp_path_factory.mktemp(name), header, lines, layout)


# --- files refused as a whole, and the real command --------------------------------------------

HEADERS = {name: ",".join(importer["columns"]) for name, importer in IMPORTERS.items()}
GB18030_FILES = {
    "orders": ("orders.csv", ["订单1,1001,3,1999.00,paid,2024-01-01T08:00:00+08:00,"]),
    "refunds": ("refunds.csv", ["订单1,19.99,2024-01-02T08:00:00+08:00"]),
    "memberships": (
        "user_vip.csv",
        ["1,1001,1,,已退款,1,2024-01-01 08:00:00,,,订单1"],
    ),
}


def import_args(name: str, path: Path) -> list[str]:
    if name == "memberships":
        return ["import", "legacy", str(path.parent)]
    return ["import", name, str(path)]


@pytest.mark.parametrize("name", list(IMPORTERS))
@pytest.mark.parametrize(
    ("content", "said"),
    [
        (b"", "is empty"),
        (b"\xef\xbb\xbf", "is empty"),
        (b"\r\n\r\n", "is empty"),
        (b"order_id;user_id\n1;2\n", "wrong header"),
    ],
    ids=["empty", "only-a-bom", "only-line-ends", "semicolons"],
)
def test_import_of_a_file_without_a_header_is_refused_naming_the_file(
    engine, tmp_path, name, content, said
):
    importer = IMPORTERS[name]
    path = tmp_path / importer["file"]
    path.write_bytes(content)

    with pytest.raises(InputFileError, match=said) as refused:
        importer["run"](engine, path, "utf-8")

    assert importer["file"] in str(refused.value)
    assert importer["stored"](engine) == {}


@pytest.mark.parametrize("name", list(IMPORTERS))
def test_import_of_a_file_cut_inside_a_character_is_refused_naming_the_line(engine, tmp_path, name):
    importer = IMPORTERS[name]
    _, lines = GB18030_FILES[name]
    text = "\r\n".join([HEADERS[name], *lines, *lines]).encode()
    path = tmp_path / importer["file"]
    # A download cut off half way through the last 订 (three bytes in UTF-8).
    path.write_bytes(text[: text.rindex("订".encode()) + 2])

    with pytest.raises(InputFileError, match="line 3 is not valid utf-8"):
        importer["run"](engine, path, "utf-8")

    assert importer["stored"](engine) == {}


@pytest.mark.parametrize("name", list(IMPORTERS))
def test_wallet_import_of_a_gb18030_export_needs_the_encoding_named(
    engine, cli_env, tmp_path, name
):
    importer = IMPORTERS[name]
    file_name, lines = GB18030_FILES[name]
    path = tmp_path / "export" / file_name
    path.parent.mkdir()
    path.write_bytes("\r\n".join([HEADERS[name], *lines, ""]).encode("gb18030"))
    if name == "memberships":
        (path.parent / "vip_role.csv").write_bytes(ROLES_FILE.encode("gb18030"))

    refused = run_wallet(cli_env, *import_args(name, path))

    assert refused.returncode == 2, refused.stderr
    assert "is not valid utf-8" in refused.stderr
    assert "--encoding gb18030" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert importer["stored"](engine) == {}

    taken = run_wallet(cli_env, *import_args(name, path), "--encoding", "gb18030")

    assert taken.returncode == 0, taken.stdout + taken.stderr
    assert "1 inserted" in taken.stdout
    assert any("订单1" in str(row) for row in importer["stored"](engine).values())


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_wallet_import_lists_each_rejected_line_and_exits_1(engine, cli_env, tmp_path):
    path = tmp_path / "orders.csv"
    lines = [
        HEADERS["orders"],
        "A1,1001,3,1999.00,paid,2024-01-01T08:00:00+08:00,",
        f"A2,{'9' * 5_000},3,1.00,paid,2024-01-01T08:00:00+08:00,",
        'A3,1001,3,"1,999.00",paid,2024-01-01T08:00:00+08:00,',
        "A4,1001,3,1,999.00,paid,2024-01-01T08:00:00+08:00,",
        "A5,1001,3,1999.00,paid,2024/01/01 08:00:00,",
        "A6,1001,3,1999.00,paid",
        "A1,1001,3,1999.00,paid,2024-01-01T00:00:00Z,",
    ]
    path.write_text("\r\n".join(lines), encoding="utf-8-sig")

    result = run_wallet(cli_env, "import", "orders", str(path))

    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert "7 lines read, 1 inserted, 0 updated, 1 unchanged, 5 rejected" in result.stdout
    for line, reason in [
        (3, "bad_user_id"),
        (4, "bad_price"),
        (5, "extra_field"),
        (6, "bad_time"),
        (7, "missing_field"),
    ]:
        assert f"  line {line}: {reason} (" in result.stdout
    assert set(_orders_stored(engine)) == {"A1"}
