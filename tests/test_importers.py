"""The CSV importers, against the legacy-wallet fixture and small hand-made files."""

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import event, func, select, update

from pipelines.importers import import_legacy, import_orders, import_refunds
from wallet.errors import InputFileError
from wallet.tables import (
    legacy_user_vip,
    legacy_vip_role,
    payment_record,
    plan,
    refund_settlement,
)

ORDER_HEADER = "order_id,user_id,record_type,actual_price,order_status,create_time,pay_time"
USER_VIP_HEADER = (
    "id,user_id,vip_role_id,total_price,status,is_active,create_time,active_time,expire_time,"
    "order_no"
)
VIP_ROLE_HEADER = "id,vip_name,price,service_month,is_active"
REFUND_HEADER = "order_id,refund_amount,settled_at"
# Line 2 of refund_settlement.csv, sent again on line 41.
RESENT_SETTLEMENT = (
    "PB20240825120406000629",
    Decimal("50.00"),
    datetime(2024, 9, 12, 4, 4, 6, tzinfo=UTC),
)
FIXTURE_REJECTED = {
    47: "bad_price",
    152: "unknown_record_type",
    618: "unknown_order_status",
    853: "duplicate_order_id",
}
PLAN_NAMES = {
    1: "体验版",
    2: "标准版",
    3: "高级版",
    4: "企业版",
    5: "自助套餐",
    6: "自助套餐（季度）",
    7: "老会员（已下架）",
}


def _write(path: Path, *lines: str, newline: str = "\n", encoding: str = "utf-8") -> Path:
    path.write_bytes((newline.join(lines) + newline).encode(encoding))
    return path


def _count(engine, table) -> int:
    with engine.connect() as connection:
        return connection.execute(select(func.count()).select_from(table)).scalar_one()


def _rows(engine, table, key) -> dict:
    with engine.connect() as connection:
        return {row._mapping[key]: dict(row._mapping) for row in connection.execute(select(table))}


def _legacy_copy(source: Path, target: Path, *, roles=None, memberships=None) -> Path:
    """The fixture's two legacy files in `target`, with some lines replaced (by line number)."""
    target.mkdir(exist_ok=True)
    for name, replaced in (("vip_role.csv", roles), ("user_vip.csv", memberships)):
        lines = (source / name).read_text(encoding="utf-8").splitlines()
        for number, line in (replaced or {}).items():
            lines[number - 1] = line
        _write(target / name, *lines, newline="\r\n")
    return target


@pytest.fixture(scope="module")
def expected(legacy_fixture_dir) -> dict:
    return json.loads((legacy_fixture_dir / "expected.json").read_text(encoding="utf-8"))


# --- orders ------------------------------------------------------------------------------------


def test_import_orders_loads_fixture_and_rejects_the_four_broken_lines(
    engine, legacy_fixture_dir, expected
):
    report = import_orders(engine, legacy_fixture_dir / "payment_record.csv")

    assert report.source == "payment_record.csv"
    assert report.lines == expected["orders_lines"] == 852
    assert report.inserted == expected["orders_imported"] == 848
    assert (report.updated, report.unchanged) == (0, 0)
    assert report.rejected_reasons == FIXTURE_REJECTED
    assert {str(line): reason for line, reason in report.rejected_reasons.items()} == expected[
        "orders_rejected"
    ]
    assert report.exit_code == 1
    assert _count(engine, payment_record) == 848


def test_import_orders_twice_changes_nothing(engine, legacy_fixture_dir):
    path = legacy_fixture_dir / "payment_record.csv"
    first = import_orders(engine, path)
    stored_before = _rows(engine, payment_record, "order_id")

    second = import_orders(engine, path)

    assert (second.lines, second.inserted, second.updated, second.unchanged) == (852, 0, 0, 848)
    assert second.rejected == first.rejected
    assert _rows(engine, payment_record, "order_id") == stored_before


def test_import_orders_keeps_money_and_instants_exact(engine, legacy_fixture_dir):
    import_orders(engine, legacy_fixture_dir / "payment_record.csv")

    stored = _rows(engine, payment_record, "order_id")
    assert stored["PB20180104225334000003"] == {
        "order_id": "PB20180104225334000003",
        "user_id": 1001,
        "record_type": 4,
        "actual_price": Decimal("599.25"),
        "order_status": "refund",
        "create_time": datetime(2018, 1, 4, 14, 53, 34, tzinfo=UTC),
        "pay_time": datetime(2018, 1, 4, 15, 25, 39, tzinfo=UTC),
        # Set only when the settle-refunds flow applies a settlement.
        "refunded_amount": None,
        "settled_at": None,
    }
    assert stored["VIP2021062500240"]["actual_price"] == Decimal("0.01")
    assert stored["PB20180928075653000002"]["pay_time"] is None
    lines = (legacy_fixture_dir / "payment_record.csv").read_text(encoding="utf-8").splitlines()
    taken = [
        line for number, line in enumerate(lines[1:], start=2) if number not in FIXTURE_REJECTED
    ]
    assert sum(row["actual_price"] for row in stored.values()) == sum(
        Decimal(line.split(",")[3]) for line in taken
    )


def test_import_orders_in_tiny_batches_finds_duplicates_across_batches(engine, legacy_fixture_dir):
    report = import_orders(engine, legacy_fixture_dir / "payment_record.csv", batch_size=10)

    assert (report.lines, report.inserted, report.unchanged) == (852, 848, 0)
    assert report.rejected_reasons[853] == "duplicate_order_id"
    assert report.rejected[-1].detail.startswith(
        "order_id 'PB20220808162200000354' is in the database with another actual_price 1.00"
    )


def test_import_orders_counts_the_same_instant_in_another_offset_as_unchanged(engine, tmp_path):
    local = "A1,7,1,10.00,paid,2024-01-01T08:00:00+08:00,2024-01-01T08:05:00+08:00"
    utc = "A1,7,1,10.0,paid,2024-01-01T00:00:00Z,2024-01-01T00:05:00Z"
    first = import_orders(engine, _write(tmp_path / "a.csv", ORDER_HEADER, local, utc))
    second = import_orders(engine, _write(tmp_path / "b.csv", ORDER_HEADER, utc))

    assert (first.inserted, first.unchanged, first.rejected) == (1, 1, [])
    assert (second.inserted, second.unchanged, second.rejected) == (0, 1, [])


def test_import_orders_rejects_each_line_for_the_first_reason_that_applies(engine, tmp_path):
    path = _write(
        tmp_path / "orders.csv",
        ORDER_HEADER,
        "A1,7,1,10.00,paid,2024-01-01T08:00:00+08:00,2024-01-01T00:05:00Z",
        "A2,,1,10.00,paid,2024-01-01T08:00:00+08:00,",
        "A3,7,1,10.00,paid",
        "A4,x7,9,10.00,paid,2024-01-01T08:00:00+08:00,",
        "A5,7,9,abc,paid,2024-01-01T08:00:00+08:00,",
        "A6,7,1,abc,pending,2024-01-01T08:00:00+08:00,",
        "A7,7,1,-1.00,paid,2024-01-01T08:00:00+08:00,",
        "A8,7,1,1.005,paid,yesterday,",
        "A9,7,1,1.00,paid,2024-01-01 08:00:00,",
        "A10,7,1,1.00,unpay,2024-01-01T08:00:00+08:00,",
        "A1,7,1,10.50,paid,2024-01-01T08:00:00+08:00,2024-01-01T00:05:00Z",
        "A1,7,1,10.00,paid,2024-01-01T00:00:00Z,2024-01-01T08:05:00+08:00",
        "A11,7,1,1.00,unpay,2024-01-01T08:00:00+08:00,,surplus",
    )

    report = import_orders(engine, path)

    assert report.rejected_reasons == {
        3: "missing_field",
        4: "missing_field",
        5: "bad_user_id",
        6: "unknown_record_type",
        7: "unknown_order_status",
        8: "bad_price",
        9: "bad_price",
        10: "bad_time",
        12: "duplicate_order_id",
        14: "extra_field",
    }
    assert [str(rejected) for rejected in report.rejected[:2]] == [
        "line 3: missing_field (user_id is empty)",
        "line 4: missing_field (the line has 5 of the 7 columns)",
    ]
    assert report.rejected[6].detail == "actual_price '1.005' has more than two decimal places"
    assert report.rejected[7].detail == (
        "create_time '2024-01-01 08:00:00' has no offset such as +08:00 or Z"
    )
    assert (report.lines, report.inserted, report.unchanged) == (13, 2, 1)
    assert sorted(_rows(engine, payment_record, "order_id")) == ["A1", "A10"]


def test_import_orders_with_a_wrong_header_raises_and_writes_nothing(engine, tmp_path):
    path = _write(
        tmp_path / "orders.csv",
        "order_id,user_id,record_type,actual_price,order_status,create_time,paid_at",
        "A1,7,1,10.00,paid,2024-01-01T08:00:00+08:00,",
    )

    with pytest.raises(InputFileError) as raised:
        import_orders(engine, path)

    message = str(raised.value)
    assert str(path) in message
    assert "missing column(s) pay_time" in message
    assert "unexpected column(s) 'paid_at'" in message
    assert _count(engine, payment_record) == 0


def test_import_orders_of_a_missing_file_raises(engine, tmp_path):
    with pytest.raises(InputFileError, match=r"nothing\.csv cannot be read"):
        import_orders(engine, tmp_path / "nothing.csv")


@pytest.mark.parametrize(("bom", "newline"), [("\ufeff", "\r\n"), ("\ufeff", "\n"), ("", "\n")])
def test_import_orders_accepts_a_bom_and_any_line_ending(
    engine, legacy_fixture_dir, tmp_path, bom, newline
):
    lines = (legacy_fixture_dir / "payment_record.csv").read_text(encoding="utf-8").splitlines()
    path = _write(tmp_path / "orders.csv", bom + lines[0], *lines[1:], newline=newline)

    report = import_orders(engine, path)

    assert (report.lines, report.inserted, len(report.rejected)) == (852, 848, 4)


def test_import_orders_in_another_encoding_names_the_line_and_suggests_gb18030(engine, tmp_path):
    path = _write(
        tmp_path / "orders.csv",
        ORDER_HEADER,
        "A1,7,1,10.00,paid,2024-01-01T08:00:00+08:00,",
        "订单2,7,1,10.00,paid,2024-01-01T08:00:00+08:00,",
        encoding="gb18030",
    )

    with pytest.raises(InputFileError) as raised:
        import_orders(engine, path)
    assert "line 3 is not valid utf-8" in str(raised.value)
    assert "--encoding gb18030" in str(raised.value)
    assert _count(engine, payment_record) == 0

    report = import_orders(engine, path, encoding="gb18030")
    assert (report.inserted, report.rejected) == (2, [])
    assert "订单2" in _rows(engine, payment_record, "order_id")


def test_import_report_summary_lists_counts_then_rejected_lines(engine, tmp_path):
    good = "A1,7,1,10.00,paid,2024-01-01T08:00:00+08:00,"
    path = _write(
        tmp_path / "orders.csv",
        ORDER_HEADER,
        good,
        good,
        "A2,7,1,12.3.4,paid,2024-01-01T08:00:00+08:00,",
    )

    report = import_orders(engine, path)

    assert report.summary() == (
        "orders.csv: 3 lines read, 1 inserted, 0 updated, 1 unchanged, 1 rejected\n"
        "  line 4: bad_price (actual_price '12.3.4' is not a plain decimal)"
    )
    assert report.exit_code == 1
    assert import_orders(engine, _write(tmp_path / "again.csv", ORDER_HEADER, good)).exit_code == 0


# --- legacy ------------------------------------------------------------------------------------


def test_import_legacy_loads_fixture_roles_plans_and_memberships(
    engine, legacy_fixture_dir, expected
):
    roles, memberships = import_legacy(engine, legacy_fixture_dir)

    assert (roles.source, roles.lines, roles.inserted, roles.rejected) == ("vip_role.csv", 7, 7, [])
    assert roles.notes == ["plan catalogue: 7 added, 0 updated"]
    assert (memberships.source, memberships.lines, memberships.inserted) == (
        "user_vip.csv",
        244,
        244,
    )
    assert memberships.rejected == []
    assert _count(engine, legacy_user_vip) == expected["legacy_rows"] == 244
    plans = _rows(engine, plan, "id")
    assert {plan_id: row["name"] for plan_id, row in plans.items()} == PLAN_NAMES
    assert plans[2] == {
        "id": 2,
        "name": "标准版",
        "list_price": Decimal("1999.00"),
        "service_month": 3,
        "is_on_sale": True,
    }
    assert plans[7]["is_on_sale"] is False
    stored_roles = _rows(engine, legacy_vip_role, "id")
    assert stored_roles[2]["vip_name"] == " 标准版 "
    assert stored_roles[7]["vip_name"] == "老会员（已下架）\t"


def test_import_legacy_keeps_memberships_as_exported(engine, legacy_fixture_dir):
    import_legacy(engine, legacy_fixture_dir)

    stored = _rows(engine, legacy_user_vip, "id")
    assert stored[84] == {
        "id": 84,
        "user_id": 1015,
        "vip_role_id": 4,
        "total_price": "0.005",
        "status": " success",
        "is_active": False,
        "create_time": datetime(2024, 8, 14, 6, 59, 9),
        "active_time": datetime(2024, 8, 14, 8, 23, 9),
        "expire_time": datetime(2025, 8, 14, 8, 23, 9),
        "order_no": "VIP2024081400084",
    }
    assert stored[225]["total_price"] == "1998.9999999999998"
    assert stored[241]["total_price"] == "-299.00"
    assert stored[233]["user_id"] is None
    assert stored[244]["status"] == "canceled"
    assert (stored[244]["total_price"], stored[244]["active_time"], stored[244]["order_no"]) == (
        None,
        None,
        None,
    )
    assert stored[121]["status"] is None


def test_import_legacy_twice_changes_nothing(engine, legacy_fixture_dir):
    import_legacy(engine, legacy_fixture_dir)
    before = _rows(engine, legacy_user_vip, "id")

    roles, memberships = import_legacy(engine, legacy_fixture_dir)

    assert (roles.inserted, roles.updated, roles.unchanged) == (0, 0, 7)
    assert roles.notes == ["plan catalogue: 0 added, 0 updated"]
    assert (memberships.inserted, memberships.updated, memberships.unchanged) == (0, 0, 244)
    assert _rows(engine, legacy_user_vip, "id") == before


def test_import_legacy_updates_rows_a_corrected_export_changed(
    engine, legacy_fixture_dir, tmp_path
):
    import_legacy(engine, legacy_fixture_dir)
    corrected = _legacy_copy(
        legacy_fixture_dir,
        tmp_path / "corrected",
        roles={6: "5,自助套餐,399.00,1,1"},
        memberships={
            9: "84,1015,4,0.005,refunded,0,2024-08-14 06:59:09,2024-08-14 08:23:09,"
            "2025-08-14 08:23:09,VIP2024081400084"
        },
    )

    roles, memberships = import_legacy(engine, corrected)

    assert (roles.inserted, roles.updated, roles.unchanged) == (0, 1, 6)
    assert roles.notes == ["plan catalogue: 0 added, 1 updated"]
    assert (memberships.inserted, memberships.updated, memberships.unchanged) == (0, 1, 243)
    assert _rows(engine, legacy_user_vip, "id")[84]["status"] == "refunded"
    assert _rows(engine, plan, "id")[5]["list_price"] == Decimal("399.00")
    assert _rows(engine, legacy_vip_role, "id")[5]["vip_name"] == "自助套餐"


def test_import_legacy_rejects_bad_lines_and_keeps_the_good_ones(engine, tmp_path):
    directory = tmp_path / "export"
    directory.mkdir()
    _write(
        directory / "vip_role.csv",
        VIP_ROLE_HEADER,
        "1,体验版,0.00,1,1",
        "2,,1999.00,3,1",
        "3,高级版,5999.00,twelve,1",
        "4,企业版,-1.00,12,1",
        "5,自助套餐,299.001,1,1",
        "6,季度版,799.00,3,yes",
    )
    _write(
        directory / "user_vip.csv",
        USER_VIP_HEADER,
        "1,5,1,,success,1,2024-01-01 10:00:00,2024-01-01 11:00:00,2024-02-01 11:00:00,VIP1",
        "2,5,,,success,1,2024-01-01 10:00:00,,,",
        "3,5,x,,success,1,2024-01-01 10:00:00,,,",
        "4,5,1,12.3.4,success,1,2024-01-01 10:00:00,,,",
        "5,5,1,-299.00,success,1,2024-01-01 10:00:00,,,",
        "6,5,1,,success,1,2024-01-01T10:00:00,,,",
        "7,,1,,,,2024-01-01 10:00:00,,,",
        "8,5,1,,success,1,2024-01-01 10:00:00,2024-02-30 10:00:00,,",
        "1,5,1,,refunded,0,2024-01-01 10:00:00,2024-01-01 11:00:00,2024-02-01 11:00:00,VIP1",
    )

    roles, memberships = import_legacy(engine, directory)

    assert roles.rejected_reasons == {
        3: "missing_field",
        4: "bad_integer",
        5: "bad_price",
        6: "bad_price",
        7: "bad_integer",
    }
    assert [rejected.detail for rejected in roles.rejected] == [
        "vip_name is empty",
        "service_month 'twelve' is not an integer",
        "price '-1.00' is negative",
        "price '299.001' has more than two decimal places",
        "is_active 'yes' is not 0 or 1",
    ]
    assert memberships.rejected_reasons == {
        3: "missing_field",
        4: "bad_integer",
        5: "bad_price",
        7: "bad_time",
        9: "bad_time",
        10: "duplicate_id",
    }
    assert memberships.rejected[-1].detail == (
        "id 1 is also on line 2, with another status 'refunded', is_active False"
    )
    assert (memberships.lines, memberships.inserted) == (9, 3)
    stored = _rows(engine, legacy_user_vip, "id")
    assert sorted(stored) == [1, 5, 7]
    assert stored[7]["user_id"] is None
    assert stored[7]["is_active"] is None
    assert stored[1]["status"] == "success"
    assert sorted(_rows(engine, plan, "id")) == [1]


def test_import_legacy_finds_a_repeated_id_across_batches_yet_takes_corrections(engine, tmp_path):
    first_export = tmp_path / "first"
    first_export.mkdir()
    _write(first_export / "vip_role.csv", VIP_ROLE_HEADER, "1,体验版,0.00,1,1")
    line = "{id},5,1,,{status},1,2024-01-01 10:00:00,,,"
    _write(first_export / "user_vip.csv", USER_VIP_HEADER, line.format(id=1, status="applying"))
    import_legacy(engine, first_export)
    second_export = tmp_path / "second"
    second_export.mkdir()
    _write(second_export / "vip_role.csv", VIP_ROLE_HEADER, "1,体验版,0.00,1,1")
    _write(
        second_export / "user_vip.csv",
        USER_VIP_HEADER,
        line.format(id=1, status="success"),
        line.format(id=2, status="success"),
        line.format(id=3, status="success"),
        line.format(id=1, status="closed"),
        line.format(id=1, status="success"),
    )

    _, memberships = import_legacy(engine, second_export, batch_size=2)

    assert (memberships.inserted, memberships.updated, memberships.unchanged) == (2, 1, 1)
    assert memberships.rejected_reasons == {5: "duplicate_id"}
    assert memberships.rejected[0].detail == (
        "id 1 is earlier in this file with another status 'closed'"
    )
    assert _rows(engine, legacy_user_vip, "id")[1]["status"] == "success"


def test_import_legacy_with_a_wrong_second_header_writes_nothing(
    engine, legacy_fixture_dir, tmp_path
):
    directory = _legacy_copy(
        legacy_fixture_dir, tmp_path / "export", memberships={1: "id,user_id,vip_role_id"}
    )

    with pytest.raises(InputFileError) as raised:
        import_legacy(engine, directory)

    assert "user_vip.csv: wrong header: missing column(s) total_price, status" in str(raised.value)
    assert (_count(engine, legacy_vip_role), _count(engine, plan)) == (0, 0)


def test_import_legacy_in_gb18030_needs_the_encoding_named(engine, legacy_fixture_dir, tmp_path):
    directory = tmp_path / "export"
    directory.mkdir()
    for name in ("vip_role.csv", "user_vip.csv"):
        text = (legacy_fixture_dir / name).read_text(encoding="utf-8")
        (directory / name).write_bytes(text.encode("gb18030"))

    with pytest.raises(InputFileError, match=r"vip_role\.csv: line 2 is not valid utf-8"):
        import_legacy(engine, directory)
    assert _count(engine, legacy_vip_role) == 0

    roles, memberships = import_legacy(engine, directory, encoding="gb18030")
    assert (roles.inserted, memberships.inserted) == (7, 244)
    assert {plan_id: row["name"] for plan_id, row in _rows(engine, plan, "id").items()} == (
        PLAN_NAMES
    )


def test_import_legacy_from_a_missing_directory_raises(engine, tmp_path):
    with pytest.raises(InputFileError, match="is not a directory"):
        import_legacy(engine, tmp_path / "nowhere")


# --- refund settlements ------------------------------------------------------------------------


def _settlements(engine) -> dict[tuple, dict]:
    """Stored settlements by what identifies them: (order_id, refund_amount, settled_at)."""
    with engine.connect() as connection:
        return {
            (row.order_id, row.refund_amount, row.settled_at): dict(row._mapping)
            for row in connection.execute(select(refund_settlement))
        }


def _by_line(engine) -> dict[int, dict]:
    return {row["source_line"]: row for row in _settlements(engine).values()}


def test_import_refunds_loads_fixture_and_counts_the_resent_line_unchanged(
    engine, legacy_fixture_dir
):
    started = datetime.now(UTC)
    report = import_refunds(engine, legacy_fixture_dir / "refund_settlement.csv")
    finished = datetime.now(UTC)

    assert report.source == "refund_settlement.csv"
    assert (report.lines, report.inserted, report.updated, report.unchanged) == (40, 39, 0, 1)
    assert (report.rejected, report.exit_code) == ([], 0)
    stored = _settlements(engine)
    assert sorted(row["source_line"] for row in stored.values()) == list(range(2, 41))
    assert stored[RESENT_SETTLEMENT]["source_line"] == 2
    assert {row["source_file"] for row in stored.values()} == {"refund_settlement.csv"}
    assert {(row["status"], row["reason"], row["processed_at"]) for row in stored.values()} == {
        ("pending", None, None)
    }
    (imported_at,) = {row["imported_at"] for row in stored.values()}
    assert started <= imported_at <= finished


def test_import_refunds_stores_each_line_where_the_file_has_it(engine, legacy_fixture_dir):
    path = legacy_fixture_dir / "refund_settlement.csv"
    import_refunds(engine, path, batch_size=7)

    lines = path.read_text(encoding="utf-8").splitlines()
    stored = _by_line(engine)
    assert {
        number: f"{row['order_id']},{row['refund_amount']},{row['settled_at']:%Y-%m-%dT%H:%M:%SZ}"
        for number, row in stored.items()
    } == {number: lines[number - 1] for number in range(2, 41)}
    assert lines[40] == lines[1]


def test_import_refunds_twice_changes_nothing(engine, legacy_fixture_dir):
    path = legacy_fixture_dir / "refund_settlement.csv"
    import_refunds(engine, path)
    stored_before = _settlements(engine)

    second = import_refunds(engine, path)

    assert (second.lines, second.inserted, second.updated, second.unchanged) == (40, 0, 0, 40)
    assert (second.rejected, second.exit_code) == ([], 0)
    assert _settlements(engine) == stored_before


def test_import_refunds_keeps_money_and_instants_exact(engine, legacy_fixture_dir, tmp_path):
    import_refunds(engine, legacy_fixture_dir / "refund_settlement.csv")

    fixture_rows = _by_line(engine)
    assert sum(row["refund_amount"] for row in fixture_rows.values()) == Decimal("153197.01")
    assert (
        fixture_rows[14]["order_id"],
        str(fixture_rows[14]["refund_amount"]),
        fixture_rows[14]["settled_at"],
    ) == ("VIP2025120900222", "11999.40", datetime(2026, 1, 11, 16, 58, 23, tzinfo=UTC))

    edges = _write(
        tmp_path / "edges.csv",
        REFUND_HEADER,
        "A1,0.01,2024-01-01T07:59:59.999999+08:00",
        "A2,999999999999.99,2024-01-01T00:00:00Z",
    )
    import_refunds(engine, edges)

    stored = {
        row["order_id"]: (str(row["refund_amount"]), row["settled_at"])
        for row in _settlements(engine).values()
        if row["source_file"] == "edges.csv"
    }
    assert stored == {
        "A1": ("0.01", datetime(2023, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)),
        "A2": ("999999999999.99", datetime(2024, 1, 1, tzinfo=UTC)),
    }


def test_import_refunds_counts_the_same_settlement_written_differently_as_unchanged(
    engine, tmp_path
):
    first = import_refunds(
        engine,
        _write(
            tmp_path / "gateway-1.csv",
            REFUND_HEADER,
            "A1,10.00,2024-01-01T08:00:00+08:00",
            "A1,10.0,2024-01-01T00:00:00Z",
        ),
    )
    second = import_refunds(
        engine, _write(tmp_path / "gateway-2.csv", REFUND_HEADER, "A1,10,2024-01-01T00:00:00+00:00")
    )

    assert (first.inserted, first.unchanged, first.rejected) == (1, 1, [])
    assert (second.inserted, second.unchanged, second.rejected) == (0, 1, [])
    (stored,) = _settlements(engine).values()
    assert (stored["source_file"], stored["source_line"]) == ("gateway-1.csv", 2)
    assert stored["settled_at"] == datetime(2024, 1, 1, tzinfo=UTC)


def test_import_refunds_stores_another_amount_or_time_for_one_order_as_another_settlement(
    engine, tmp_path
):
    path = _write(
        tmp_path / "partial.csv",
        REFUND_HEADER,
        "A1,10.00,2024-01-01T00:00:00Z",
        "A1,5.00,2024-01-01T00:00:00Z",
        "A1,10.00,2024-01-02T00:00:00Z",
    )

    report = import_refunds(engine, path)

    assert (report.inserted, report.unchanged, report.rejected) == (3, 0, [])
    assert {line: row["refund_amount"] for line, row in _by_line(engine).items()} == {
        2: Decimal("10.00"),
        3: Decimal("5.00"),
        4: Decimal("10.00"),
    }


def test_import_refunds_leaves_a_stored_settlement_its_first_line_and_status(engine, tmp_path):
    resent = "A1,10.00,2024-01-01T00:00:00Z"
    import_refunds(
        engine,
        _write(tmp_path / "monday.csv", REFUND_HEADER, "A2,1.00,2024-01-01T00:00:00Z", resent),
    )
    with engine.begin() as connection:
        connection.execute(
            update(refund_settlement).values(
                status="applied", processed_at=datetime(2024, 1, 2, tzinfo=UTC)
            )
        )
    stored_before = _settlements(engine)

    report = import_refunds(
        engine,
        _write(tmp_path / "tuesday.csv", REFUND_HEADER, resent, "A3,2.00,2024-01-01T00:00:00Z"),
    )

    assert (report.inserted, report.unchanged, report.rejected) == (1, 1, [])
    stored = _settlements(engine)
    resent_key = ("A1", Decimal("10.00"), datetime(2024, 1, 1, tzinfo=UTC))
    assert stored[resent_key] == stored_before[resent_key]
    assert (
        stored[resent_key]["source_file"],
        stored[resent_key]["source_line"],
        stored[resent_key]["status"],
    ) == ("monday.csv", 3, "applied")
    new = stored[("A3", Decimal("2.00"), datetime(2024, 1, 1, tzinfo=UTC))]
    assert (new["source_file"], new["source_line"], new["status"]) == ("tuesday.csv", 3, "pending")


def test_import_refunds_rejects_each_line_for_the_first_reason_that_applies(engine, tmp_path):
    at = "2024-01-01T00:00:00Z"
    path = _write(
        tmp_path / "refunds.csv",
        REFUND_HEADER,
        f"A1,10.00,{at}",
        f"A2,,{at}",
        "A3,10.00",
        ",abc,yesterday",
        f"{'P' * 65},abc,yesterday",
        "A4,abc,yesterday",
        f"A5,-1.00,{at}",
        f"A6,1.005,{at}",
        f"A7,1e3,{at}",
        "A8,10.00,yesterday",
        "A9,10.00,2024-01-01 08:00:00",
        f"A10,0.00,{at}",
        f"A11,99999999.00,{at}",
        f"A12,10.00,{at},again",
        f"{'P' * 64},10.00,{at}",
    )

    report = import_refunds(engine, path)

    assert report.rejected_reasons == {
        3: "missing_field",
        4: "missing_field",
        5: "missing_field",
        6: "bad_order_id",
        7: "bad_amount",
        8: "bad_amount",
        9: "bad_amount",
        10: "bad_amount",
        11: "bad_time",
        12: "bad_time",
        15: "extra_field",
    }
    assert [rejected.detail for rejected in report.rejected[:6]] == [
        "refund_amount is empty",
        "the line has 2 of the 3 columns",
        "order_id is empty",
        f"order_id {'P' * 65!r} is longer than 64 characters",
        "refund_amount 'abc' is not a plain decimal",
        "refund_amount '-1.00' is negative",
    ]
    assert [rejected.detail for rejected in report.rejected[6:10]] == [
        "refund_amount '1.005' has more than two decimal places",
        "refund_amount '1e3' is not a plain decimal",
        "settled_at 'yesterday' is not an ISO 8601 time",
        "settled_at '2024-01-01 08:00:00' has no offset such as +08:00 or Z",
    ]
    assert (report.lines, report.inserted, report.unchanged, report.exit_code) == (15, 4, 0, 1)
    assert {line: row["order_id"] for line, row in _by_line(engine).items()} == {
        2: "A1",
        13: "A10",
        14: "A11",
        16: "P" * 64,
    }


def test_import_refunds_looks_up_and_writes_a_batch_at_a_time(engine, legacy_fixture_dir):
    statements = []

    def record(connection, cursor, statement, parameters, context, executemany):
        if "refund_settlement" in statement:
            statements.append(statement.split(maxsplit=1)[0].lower())

    event.listen(engine, "before_cursor_execute", record)
    try:
        report = import_refunds(engine, legacy_fixture_dir / "refund_settlement.csv", batch_size=7)
    finally:
        event.remove(engine, "before_cursor_execute", record)

    assert (report.lines, report.inserted, report.unchanged) == (40, 39, 1)
    # Six batches of at most seven lines: one lookup and one insert each.
    assert statements == ["select", "insert"] * 6


def test_import_refunds_with_a_wrong_header_raises_and_writes_nothing(engine, tmp_path):
    path = _write(
        tmp_path / "refunds.csv", "order_id,amount,settled_at", "A1,10.00,2024-01-01T00:00:00Z"
    )

    with pytest.raises(InputFileError) as raised:
        import_refunds(engine, path)

    message = str(raised.value)
    assert str(path) in message
    assert "missing column(s) refund_amount" in message
    assert "unexpected column(s) 'amount'" in message
    assert _count(engine, refund_settlement) == 0


def test_import_refunds_of_an_undecodable_file_raises_and_writes_nothing(engine, tmp_path):
    path = tmp_path / "refunds.csv"
    path.write_bytes(
        f"{REFUND_HEADER}\nA1,10.00,2024-01-01T00:00:00Z\n".encode()
        + "退款1,10.00,2024-01-01T00:00:00Z\n".encode("gb18030")
    )

    with pytest.raises(InputFileError, match=r"refunds\.csv: line 3 is not valid utf-8"):
        import_refunds(engine, path)
    assert _count(engine, refund_settlement) == 0


@pytest.mark.parametrize(("bom", "newline"), [("\ufeff", "\r\n"), ("\ufeff", "\n"), ("", "\r\n")])
def test_import_refunds_accepts_a_bom_and_any_line_ending(
    engine, legacy_fixture_dir, tmp_path, bom, newline
):
    lines = (legacy_fixture_dir / "refund_settlement.csv").read_text(encoding="utf-8").splitlines()
    path = _write(tmp_path / "refunds.csv", bom + lines[0], *lines[1:], newline=newline)

    report = import_refunds(engine, path)

    assert (report.lines, report.inserted, report.unchanged, report.rejected) == (40, 39, 1, [])


def test_import_refunds_reads_the_columns_in_any_order(engine, tmp_path):
    path = _write(
        tmp_path / "refunds.csv",
        "settled_at,order_id,refund_amount",
        "2024-01-01T08:00:00+08:00,A1,12.34",
    )

    report = import_refunds(engine, path)

    assert (report.inserted, report.rejected) == (1, [])
    assert list(_settlements(engine)) == [
        ("A1", Decimal("12.34"), datetime(2024, 1, 1, tzinfo=UTC))
    ]


def test_import_orders_refuses_a_quote_left_open_before_writing(engine, tmp_path):
    path = _write(
        tmp_path / "orders.csv",
        ORDER_HEADER,
        "Q1,1001,1,1.00,paid,2025-01-01T00:00:00Z,",
        'Q2,1001,1,"1.00,paid,2025-01-01T00:00:00Z,',
        "Q3,1001,1,1.00,paid,2025-01-01T00:00:00Z,",
    )

    with pytest.raises(InputFileError, match="line 3 opens a quoted field"):
        import_orders(engine, path)

    assert _count(engine, payment_record) == 0


def test_import_orders_refuses_a_quote_left_open_on_the_last_line_before_writing(engine, tmp_path):
    path = _write(
        tmp_path / "orders.csv",
        ORDER_HEADER,
        "Q1,1001,1,1.00,paid,2025-01-01T00:00:00Z,",
        'Q2,1001,1,"1.00,paid,2025-01-01T00:00:00Z,',
    )

    with pytest.raises(InputFileError, match=r"line 3 opens a quoted field .* to the end"):
        import_orders(engine, path)

    assert _count(engine, payment_record) == 0


def test_import_orders_rejects_a_nul_character_naming_the_field(engine, tmp_path):
    path = _write(
        tmp_path / "orders.csv",
        ORDER_HEADER,
        "N1,1001,1,1.00,pa\x00id,2025-01-01T00:00:00Z,",
        "N2,1001,1,1.00,paid,2025-01-01T00:00:00Z,",
    )

    report = import_orders(engine, path)

    assert report.rejected_reasons == {2: "bad_character"}
    assert "order_status contains a NUL character" in report.summary()
    assert report.inserted == 1


def test_import_orders_in_utf16_without_a_bom_says_the_file_is_not_utf16(
    engine, legacy_fixture_dir
):
    with pytest.raises(InputFileError, match="is not valid utf-16"):
        import_orders(engine, legacy_fixture_dir / "payment_record.csv", encoding="utf-16")


def test_import_legacy_refuses_a_catalogue_without_roles(engine, legacy_fixture_dir, tmp_path):
    export = tmp_path / "export"
    export.mkdir()
    _write(export / "vip_role.csv", VIP_ROLE_HEADER)
    (export / "user_vip.csv").write_bytes((legacy_fixture_dir / "user_vip.csv").read_bytes())

    with pytest.raises(InputFileError, match="has a header but no roles"):
        import_legacy(engine, export)

    assert _count(engine, legacy_user_vip) == 0
