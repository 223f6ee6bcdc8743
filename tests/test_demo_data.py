"""The demo export: byte-identical for a seed, shaped like the real export, and as messy."""

import csv
import re
from collections import Counter
from datetime import datetime
from pathlib import Path

import pytest

from pipelines.demo_data import write_demo_export
from pipelines.importers import import_legacy, import_orders
from wallet.statuses import OrderStatus

FILES = ("vip_role.csv", "user_vip.csv", "payment_record.csv")
LEGACY_TIME = "%Y-%m-%d %H:%M:%S"


@pytest.fixture(scope="module")
def export(tmp_path_factory) -> Path:
    """The default demo export: 3,000 users, the default seed."""
    directory = tmp_path_factory.mktemp("demo-export")
    write_demo_export(directory)
    return directory


def _read(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as file:
        return list(csv.DictReader(file))


def test_write_demo_export_gives_identical_bytes_for_the_same_seed(export, tmp_path):
    write_demo_export(tmp_path / "again")
    write_demo_export(tmp_path / "other", seed=7)

    for name in FILES:
        assert (tmp_path / "again" / name).read_bytes() == (export / name).read_bytes()
    for name in ("user_vip.csv", "payment_record.csv"):
        assert (tmp_path / "other" / name).read_bytes() != (export / name).read_bytes()


def test_demo_memberships_marked_expired_ended_before_the_export(export):
    expired = [
        row for row in _read(export / "user_vip.csv") if row["status"].strip().lower() == "expired"
    ]

    assert expired
    assert all(
        datetime.strptime(row["expire_time"], LEGACY_TIME) < datetime(2026, 12, 1)
        for row in expired
    )


def test_demo_export_has_the_fixture_headers_and_line_endings(export, legacy_fixture_dir):
    for name in FILES:
        demo = (export / name).read_bytes()
        fixture = (legacy_fixture_dir / name).read_bytes()
        assert demo.split(b"\r\n")[0] == fixture.split(b"\r\n")[0]
        assert demo.count(b"\n") == demo.count(b"\r\n")
        assert demo.endswith(b"\r\n")


def test_demo_catalogue_has_a_retired_role_and_untidy_names(export):
    roles = _read(export / "vip_role.csv")

    assert len(roles) == 8
    assert [role["id"] for role in roles if role["is_active"] == "0"] == ["7"]
    untidy = [role["vip_name"] for role in roles if role["vip_name"] != role["vip_name"].strip()]
    assert any(name.startswith(" ") or name.endswith(" ") for name in untidy)
    assert any("\t" in name for name in untidy)
    assert all(re.fullmatch(r"[0-9]+\.[0-9]{2}", role["price"]) for role in roles)


def test_demo_memberships_carry_every_kind_of_legacy_mess(export):
    rows = _read(export / "user_vip.csv")
    role_ids = {role["id"] for role in _read(export / "vip_role.csv")}

    statuses = Counter(row["status"] for row in rows)
    for spelling in ("success", " success", "Success ", "SUCCESS", "cancelled", "", "frozen"):
        assert statuses[spelling] > 0, spelling
    prices = [row["total_price"] for row in rows]
    assert "0.005" in prices
    assert any(re.fullmatch(r"[0-9]+\.[0-9]{10,}", price) for price in prices)
    assert any(price.startswith("-") for price in prices)
    assert any(row["user_id"] == "" for row in rows)
    assert any(row["vip_role_id"] not in role_ids for row in rows)
    assert any(
        row["active_time"] and row["expire_time"] and row["expire_time"] < row["active_time"]
        for row in rows
    )
    purchases = Counter((row["user_id"], row["vip_role_id"], row["create_time"]) for row in rows)
    assert max(purchases.values()) >= 2
    ids = [int(row["id"]) for row in rows]
    assert sorted(ids) == list(range(1, len(rows) + 1))
    assert ids != sorted(ids)
    with_order_no = [row for row in rows if row["order_no"]]
    assert len(rows) / 2 < len(with_order_no) < len(rows)
    assert all(re.fullmatch(r"VIP[0-9]{13,}", row["order_no"]) for row in with_order_no)
    years = [int(row["create_time"][:4]) for row in rows]
    assert (min(years), max(years)) == (2015, 2026)
    assert max(row["expire_time"] for row in rows) >= "2035"
    # Most users, not all, bought a plan; the empty user_id counts as one more.
    assert 1_500 < len({row["user_id"] for row in rows}) <= 3_001


def test_demo_orders_cover_every_type_status_and_offset(export):
    orders = _read(export / "payment_record.csv")
    order_nos = {row["order_no"] for row in _read(export / "user_vip.csv") if row["order_no"]}

    assert {row["record_type"] for row in orders} >= {"1", "2", "3", "4"}
    assert {row["order_status"] for row in orders} >= {status.value for status in OrderStatus}
    assert any(row["create_time"].endswith("+08:00") for row in orders)
    assert any(row["create_time"].endswith("Z") for row in orders)
    assert any(row["pay_time"].endswith("Z") for row in orders)
    assert any(row["pay_time"] == "" and row["order_status"] == "unpay" for row in orders)
    vip_orders = {row["order_id"] for row in orders if row["order_id"].startswith("VIP")}
    assert vip_orders <= order_nos
    assert len(vip_orders) > len(order_nos) / 2
    assert sum(bool(re.fullmatch(r"PB[0-9]{20}", row["order_id"])) for row in orders) > 5_000


def test_demo_export_imports_with_the_importers(engine, tmp_path):
    write_demo_export(tmp_path, users=300, seed=11)

    roles, memberships = import_legacy(engine, tmp_path)
    orders = import_orders(engine, tmp_path / "payment_record.csv")
    again = import_orders(engine, tmp_path / "payment_record.csv")

    assert (roles.inserted, roles.rejected) == (8, [])
    assert memberships.rejected == []
    assert memberships.inserted == memberships.lines > 300
    assert Counter(orders.rejected_reasons.values()) == {
        "missing_field": 4,
        "bad_user_id": 2,
        "unknown_record_type": 2,
        "unknown_order_status": 2,
        "bad_price": 2,
        "bad_time": 2,
        "duplicate_order_id": 2,
    }
    assert orders.unchanged == 2
    assert orders.inserted == orders.lines - 18
    assert (again.inserted, again.unchanged) == (0, orders.inserted + 2)
    assert again.rejected == orders.rejected
