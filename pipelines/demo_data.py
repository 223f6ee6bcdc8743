"""A made-up legacy export for demos: the old plan catalogue, VIP memberships and orders.

The three files have exactly the layout of the real export (described with the legacy-wallet
fixture) and the same kinds of mess, so that the importers have lines to reject and the
migration has rows to quarantine. Everything is drawn from one seeded generator, so a seed
always gives byte-identical files.
"""

import csv
import logging
import math
import random
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

from pipelines.importers import ORDER_COLUMNS, USER_VIP_COLUMNS, VIP_ROLE_COLUMNS
from wallet.statuses import OrderStatus, RecordType

log = logging.getLogger(__name__)

DEFAULT_USERS = 3_000
DEFAULT_SEED = 20261204
FIRST_USER_ID = 20001
# Users are made and written a chunk at a time, so memory does not grow with `users`.
USERS_PER_CHUNK = 2_000
# The first user buys far more than anyone else, so that paging has something to page.
HEAVY_USER_PLANS = 40
HEAVY_USER_ORDERS = 180

CENT = Decimal("0.01")
LEGACY_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
SHANGHAI_OFFSET = timedelta(hours=8)
FIRST_DAY = datetime(2015, 1, 1)
LAST_DAY = datetime(2026, 11, 30)
# Renewals stacked on a plan push its expiry this far ahead.
FAR_EXPIRY = (datetime(2027, 1, 1), datetime(2036, 12, 31))
# A role id that is not in the catalogue (the role was deleted from the old database).
DELETED_ROLE_ID = 404

# The demo export has exactly the columns the importers expect.
VIP_ROLE_HEADER = VIP_ROLE_COLUMNS
USER_VIP_HEADER = USER_VIP_COLUMNS
ORDER_HEADER = ORDER_COLUMNS


@dataclass(frozen=True)
class Role:
    id: int
    # As staff typed it, stray spaces and tabs included.
    vip_name: str
    price: Decimal
    service_month: int
    is_active: bool


CATALOGUE = (
    Role(1, "试用会员", Decimal("0.00"), 1, True),
    Role(2, "基础版 ", Decimal("699.00"), 3, True),
    Role(3, " 专业版", Decimal("2999.00"), 12, True),
    Role(4, "旗舰版", Decimal("9999.00"), 12, True),
    Role(5, "月度会员", Decimal("129.00"), 1, True),
    Role(6, "半年会员\t", Decimal("599.00"), 6, True),
    Role(7, "\t创始会员（停售）", Decimal("399.00"), 12, False),
    Role(8, "团队版（两年）", Decimal("16999.00"), 24, True),
)
ROLE_WEIGHTS = (6, 14, 12, 6, 16, 9, 4, 2)

# Legacy status text as the old code wrote it, with how often each spelling turns up.
LEGACY_STATUS_WEIGHTS = {
    "success": 14,
    " success": 4,
    "Success ": 3,
    "SUCCESS": 2,
    "expired": 12,
    "Expired": 4,
    "applying": 6,
    "refunding": 5,
    "refunded": 4,
    "canceled": 6,
    "cancelled": 2,
    "closed": 4,
    "Closed": 2,
    "": 6,
}
# Statuses the new system does not know; the migration quarantines them.
UNKNOWN_LEGACY_STATUSES = ("frozen", "pending_review")
ACTIVATED = ("success", "expired", "refunding", "refunded")
# The order status of the order behind a membership, by normalised legacy status.
ORDER_STATUS_OF_MEMBERSHIP = {
    "success": OrderStatus.PAID,
    "expired": OrderStatus.PAID,
    "refunding": OrderStatus.REFUND,
    "refunded": OrderStatus.REFUNDED,
    "applying": OrderStatus.UNPAY,
    "canceled": OrderStatus.CANCELED,
    "cancelled": OrderStatus.CANCELED,
    "closed": OrderStatus.CLOSED,
    "frozen": OrderStatus.PAID,
    "pending_review": OrderStatus.UNPAY,
}
# Orders in these statuses were paid at some point, so they carry a pay_time.
PAID_ORDER_STATUSES = (
    OrderStatus.PAID,
    OrderStatus.REFUND,
    OrderStatus.CANCEL_REFUND,
    OrderStatus.REFUNDED,
)

RECORD_TYPE_WEIGHTS = {
    RecordType.RECHARGE: 22,
    RecordType.WITHDRAWAL: 15,
    RecordType.EXPENSE: 50,
    RecordType.INCOME: 13,
}
ORDER_STATUS_WEIGHTS = {
    OrderStatus.PAID: 55,
    OrderStatus.UNPAY: 8,
    OrderStatus.FAIL: 4,
    OrderStatus.REFUND: 6,
    OrderStatus.CANCEL_REFUND: 3,
    OrderStatus.REFUNDED: 5,
    OrderStatus.CLOSED: 9,
    OrderStatus.CANCELED: 6,
    OrderStatus.DELETED: 3,
}
RECHARGE_AMOUNTS = (10, 20, 50, 100, 200, 500, 1000)
DISCOUNTS = (Decimal("1"), Decimal("1"), Decimal("0.9"), Decimal("0.8"), Decimal("0.75"))


def write_demo_export(
    directory: Path, *, users: int = DEFAULT_USERS, seed: int = DEFAULT_SEED
) -> None:
    """Write vip_role.csv, user_vip.csv and payment_record.csv for `users` made-up users."""
    if users < 1:
        raise ValueError(f"users must be at least 1, not {users}")
    rng = random.Random(seed)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    with _csv_file(directory / "vip_role.csv", VIP_ROLE_HEADER) as roles_out:
        roles_out.writerows(_role_line(role) for role in CATALOGUE)

    next_legacy_id, sequence, order_lines = 1, 0, 0
    with (
        _csv_file(directory / "user_vip.csv", USER_VIP_HEADER) as memberships_out,
        _csv_file(directory / "payment_record.csv", ORDER_HEADER) as orders_out,
    ):
        for first_user in range(FIRST_USER_ID, FIRST_USER_ID + users, USERS_PER_CHUNK):
            user_ids = range(first_user, min(first_user + USERS_PER_CHUNK, FIRST_USER_ID + users))
            memberships = _memberships(rng, user_ids, next_legacy_id)
            orders, sequence = _orders(rng, user_ids, memberships, sequence)
            memberships_out.writerows(memberships)
            orders_out.writerows(orders)
            next_legacy_id += len(memberships)
            order_lines += len(orders)
    log.info(
        "demo export in %s: %d users, %d memberships, %d order lines (seed %d)",
        directory,
        users,
        next_legacy_id - 1,
        order_lines,
        seed,
    )


@contextmanager
def _csv_file(path: Path, header: tuple[str, ...]) -> Iterator:
    # csv's own line ending, \r\n, is what the real export uses.
    with path.open("w", encoding="utf-8", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(header)
        yield writer


def _role_line(role: Role) -> list[str]:
    return [
        str(role.id),
        role.vip_name,
        str(role.price),
        str(role.service_month),
        _flag(role.is_active),
    ]


# --- memberships (user_vip.csv) ----------------------------------------------------------------


def _memberships(rng: random.Random, user_ids: range, first_id: int) -> list[list[str]]:
    """The user_vip lines of some users, messy rows included, in no particular id order."""
    rows = []
    for user_id in user_ids:
        if user_id == FIRST_USER_ID:
            count = HEAVY_USER_PLANS
        else:
            count = rng.choices((0, 1, 2, 3, 4, 6), weights=(35, 30, 18, 9, 5, 3))[0]
        rows += [_membership(rng, user_id) for _ in range(count)]

    clean = list(rows)
    for _ in range(max(2, len(rows) // 250)):
        user_id = rng.choice(user_ids)
        rows.append(_membership(rng, user_id) | {"user_id": ""})
        rows.append(_membership(rng, user_id) | {"vip_role_id": str(DELETED_ROLE_ID)})
        unknown_status = rng.choice(UNKNOWN_LEGACY_STATUSES)
        rows.append(_activated(rng, user_id) | {"status": unknown_status})
        rows.append(_expiring_before_active(rng, user_id))
        rows.append(_negative(_membership(rng, user_id)))
        # The old code sometimes saved one purchase twice: same user, role and create_time,
        # and the same order number.
        if clean:
            twin = rng.choice(clean)
            rows.append(twin | {"status": rng.choice(("canceled", "closed", "")), "twin": twin})

    # Ids are handed out in one order and the file is written in another.
    rng.shuffle(rows)
    for legacy_id, row in enumerate(rows, start=first_id):
        row["id"] = legacy_id
        row["order_no"] = ""
        if row["has_order_no"]:
            row["order_no"] = f"VIP{row['create_time']:%Y%m%d}{legacy_id:05d}"
    for row in rows:
        if "twin" in row:
            row["order_no"] = row.pop("twin")["order_no"]
    rng.shuffle(rows)
    return [_membership_line(row) for row in rows]


def _membership(rng: random.Random, user_id: int) -> dict:
    role = rng.choices(CATALOGUE, weights=ROLE_WEIGHTS)[0]
    status = rng.choices(list(LEGACY_STATUS_WEIGHTS), weights=LEGACY_STATUS_WEIGHTS.values())[0]
    create_time = _random_time(rng)
    normalised = status.strip().lower()
    active_time = expire_time = None
    if normalised in ACTIVATED or (normalised == "" and rng.random() < 0.7):
        active_time = create_time + timedelta(minutes=rng.randint(5, 600))
        expire_time = _add_months(active_time, role.service_month)
        if normalised == "success" and create_time.year >= 2023:
            expire_time = _random_time(rng, *FAR_EXPIRY).replace(hour=23, minute=59, second=59)
        if normalised == "expired" and expire_time > LAST_DAY:
            # The old system marked a membership expired only once its time was up.
            shift = expire_time - LAST_DAY + timedelta(days=rng.randint(1, 365))
            create_time, active_time, expire_time = (
                create_time - shift,
                active_time - shift,
                expire_time - shift,
            )
    is_active = normalised == "success" or (normalised == "" and active_time is not None)
    if rng.random() < 0.08:
        # The old flag was not kept up to date.
        is_active = not is_active
    return {
        "user_id": str(user_id),
        "vip_role_id": str(role.id),
        "total_price": _total_price(rng, role.price),
        "status": status,
        "is_active": _flag(is_active),
        "create_time": create_time,
        "active_time": active_time,
        "expire_time": expire_time,
        "has_order_no": rng.random() < 0.65,
    }


def _activated(rng: random.Random, user_id: int) -> dict:
    while True:
        row = _membership(rng, user_id)
        if row["active_time"] is not None:
            return row


def _expiring_before_active(rng: random.Random, user_id: int) -> dict:
    row = _activated(rng, user_id)
    return row | {"expire_time": row["active_time"] - timedelta(days=rng.randint(1, 60))}


def _negative(row: dict) -> dict:
    list_price = CATALOGUE[int(row["vip_role_id"]) - 1].price
    return row | {"total_price": f"-{max(list_price, Decimal('99.00')):.2f}"}


def _total_price(rng: random.Random, list_price: Decimal) -> str:
    """What the old code stored as paid: usually nothing (the list price), often float noise."""
    kind = rng.choices(
        ("empty", "list", "discount", "float_noise", "float_text", "half_cent", "tiny"),
        weights=(55, 18, 12, 6, 4, 3, 2),
    )[0]
    if kind == "empty":
        return ""
    if kind == "list":
        return f"{list_price:.2f}"
    if kind == "discount":
        return f"{list_price * rng.choice(DISCOUNTS[2:]):.2f}"
    if kind == "float_noise" and list_price:
        # A price the old code computed in floats, one step below the list price.
        return repr(math.nextafter(float(list_price), 0))
    if kind == "float_text":
        return str(float(list_price))
    if kind == "half_cent" and list_price:
        return f"{list_price * rng.choice(DISCOUNTS[2:]) - Decimal('0.005'):.3f}"
    return "0.005"


def _membership_line(row: dict) -> list[str]:
    return [
        str(row["id"]),
        row["user_id"],
        row["vip_role_id"],
        row["total_price"],
        row["status"],
        row["is_active"],
        _legacy_time(row["create_time"]),
        _legacy_time(row["active_time"]),
        _legacy_time(row["expire_time"]),
        row["order_no"],
    ]


# --- orders (payment_record.csv) ---------------------------------------------------------------


def _orders(
    rng: random.Random, user_ids: range, memberships: list[list[str]], sequence: int
) -> tuple[list[list[str]], int]:
    """The order lines of some users, and the last order sequence number used.

    Lines are grouped by user: an order for most VIP purchases, orders of their own, and a few
    broken lines in between.
    """
    by_user: dict[str, list[list[str]]] = {}
    order_nos = set()
    for line in sorted(memberships, key=lambda line: int(line[0])):
        order = _membership_order(rng, line)
        # A purchase saved twice by the old code has one order.
        if order is not None and order[0] not in order_nos:
            order_nos.add(order[0])
            by_user.setdefault(order[1], []).append(order)

    for user_id in user_ids:
        if user_id == FIRST_USER_ID:
            count = HEAVY_USER_ORDERS
        else:
            count = rng.choices((0, 1, 2, 3, 4, 6, 8), weights=(15, 20, 20, 15, 12, 10, 8))[0]
        for _ in range(count):
            sequence += 1
            by_user.setdefault(str(user_id), []).append(_order(rng, user_id, sequence))

    lines = []
    for user_id in sorted(by_user, key=int):
        user_lines = by_user[user_id]
        rng.shuffle(user_lines)
        lines += user_lines

    if not lines:
        return lines, sequence
    # Extra lines by the position of the good line they are written before.
    extra: dict[int, list[list[str]]] = {}
    for _ in range(max(2, len(lines) // 1_500)):
        for broken in _broken_orders(rng, lines, sequence):
            sequence += 1
            extra.setdefault(rng.randint(0, len(lines)), []).append(broken)
        # The same order again, after the first: with another amount (rejected), and exactly
        # (a resend, taken as unchanged).
        position = rng.randrange(len(lines))
        original = lines[position]
        changed = _with(original, actual_price=f"{Decimal(original[3]) + 1:.2f}")
        for repeat in (changed, list(original)):
            extra.setdefault(rng.randint(position + 1, len(lines)), []).append(repeat)

    merged = []
    for position, line in enumerate([*lines, None]):
        merged += extra.get(position, [])
        if line is not None:
            merged.append(line)
    return merged, sequence


def _membership_order(rng: random.Random, line: list[str]) -> list[str] | None:
    """The order behind a VIP purchase that has an order number, for most of them."""
    _, user_id, role_id, total_price, status, _, create, active, _, order_no = line
    role_ids = [str(role.id) for role in CATALOGUE]
    if not order_no or not user_id or role_id not in role_ids or rng.random() < 0.15:
        return None
    price = total_price.strip() or str(CATALOGUE[int(role_id) - 1].price)
    amount = Decimal(price).quantize(CENT, rounding=ROUND_HALF_UP)
    if amount < 0:
        return None
    normalised = status.strip().lower()
    if normalised:
        order_status = ORDER_STATUS_OF_MEMBERSHIP[normalised]
    else:
        order_status = OrderStatus.PAID if active else OrderStatus.UNPAY
    create_time = datetime.strptime(create, LEGACY_TIME_FORMAT)
    pay_time = None
    if order_status in PAID_ORDER_STATUSES and active:
        pay_time = datetime.strptime(active, LEGACY_TIME_FORMAT)
    return [
        order_no,
        user_id,
        str(int(RecordType.EXPENSE)),
        f"{amount:.2f}",
        order_status,
        _offset_time(rng, create_time),
        _offset_time(rng, pay_time),
    ]


def _order(rng: random.Random, user_id: int, sequence: int) -> list[str]:
    record_type = rng.choices(list(RECORD_TYPE_WEIGHTS), weights=RECORD_TYPE_WEIGHTS.values())[0]
    status = rng.choices(list(ORDER_STATUS_WEIGHTS), weights=ORDER_STATUS_WEIGHTS.values())[0]
    create_time = _random_time(rng)
    pay_time = None
    if status in PAID_ORDER_STATUSES or (status == OrderStatus.DELETED and rng.random() < 0.5):
        pay_time = create_time + timedelta(seconds=rng.randint(30, 3 * 3600))
    return [
        f"PB{create_time:%Y%m%d%H%M%S}{sequence:06d}",
        str(user_id),
        str(record_type),
        f"{_order_amount(rng, record_type):.2f}",
        status,
        _offset_time(rng, create_time),
        _offset_time(rng, pay_time),
    ]


def _order_amount(rng: random.Random, record_type: int) -> Decimal:
    if record_type == RecordType.RECHARGE:
        return Decimal(rng.choice(RECHARGE_AMOUNTS))
    if record_type == RecordType.EXPENSE:
        role = rng.choices(CATALOGUE, weights=ROLE_WEIGHTS)[0]
        if role.price and rng.random() < 0.8:
            return (role.price * rng.choice(DISCOUNTS)).quantize(CENT)
    return Decimal(rng.randint(1, 200_000)) / 100


def _broken_orders(rng: random.Random, good: list[list[str]], sequence: int) -> list[list[str]]:
    """One new order line for each way a line can be wrong (a repeated order id aside)."""

    def fresh(offset: int) -> list[str]:
        return _order(rng, int(rng.choice(good)[1]), sequence + offset)

    bad_time = rng.choice(("2021-03-04 10:00:00", "2021-13-01T00:00:00Z"))
    return [
        _with(fresh(1), user_id=""),
        fresh(2)[:-2],
        _with(fresh(3), user_id=rng.choice(("u20001", "0", "-7"))),
        _with(fresh(4), record_type=rng.choice(("5", "0"))),
        _with(fresh(5), order_status=rng.choice(("pending", "PAID", "success"))),
        _with(fresh(6), actual_price=rng.choice(("12.3.4", "-50.00", "9.999", "¥100"))),
        _with(fresh(7), create_time=bad_time),
    ]


def _with(line: list[str], **changes: str) -> list[str]:
    changed = list(line)
    for name, value in changes.items():
        changed[ORDER_HEADER.index(name)] = value
    return changed


# --- small helpers -----------------------------------------------------------------------------


def _random_time(
    rng: random.Random, first: datetime = FIRST_DAY, last: datetime = LAST_DAY
) -> datetime:
    seconds = int((last - first).total_seconds())
    return first + timedelta(seconds=rng.randrange(seconds))


def _add_months(moment: datetime, months: int) -> datetime:
    month_index = moment.month - 1 + months
    year, month = moment.year + month_index // 12, month_index % 12 + 1
    for day in range(moment.day, 0, -1):
        try:
            return moment.replace(year=year, month=month, day=day)
        except ValueError:
            continue
    raise AssertionError("unreachable: every month has a day 1")


def _legacy_time(moment: datetime | None) -> str:
    return "" if moment is None else moment.strftime(LEGACY_TIME_FORMAT)


def _offset_time(rng: random.Random, local: datetime | None) -> str:
    """A Shanghai wall-clock time written as the back office does: +08:00 or in UTC with Z."""
    if local is None:
        return ""
    if rng.random() < 0.55:
        return f"{local:%Y-%m-%dT%H:%M:%S}+08:00"
    return f"{local - SHANGHAI_OFFSET:%Y-%m-%dT%H:%M:%S}Z"


def _flag(value: bool) -> str:
    return "1" if value else "0"
