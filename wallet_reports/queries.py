"""The reports, as DataFrames: each function runs one query of `sql/warehouse/` in DuckDB.

Moments (`as_of`) may be an aware datetime, a naive one or a date (read in WALLET_TIMEZONE: a
date is its first instant there), an ISO 8601 string of either, or None for now. Months
(`start`, `end`) may be anything naming a day of the month; None means the first month with
data, and the current month.
"""

import os
from collections.abc import Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd

from pipelines.warehouse import Warehouse, build_warehouse
from wallet.settings import get_settings

Moment = datetime | date | str | None
NOTEBOOKS_DIR = Path(__file__).resolve().parents[1] / "notebooks"


def open_warehouse(
    database_url: str | None = None,
    warehouse_path: str | Path | None = None,
    refresh: bool = True,
) -> Warehouse:
    """The warehouse the reports read, refreshed first from the database when `refresh`.

    None means the configured WALLET_DATABASE_URL and WALLET_WAREHOUSE_PATH.
    """
    # Jupyter starts a kernel in the notebook's folder; relative settings (var/wallet.db, .env)
    # are meant from the project root, as for the `wallet` command.
    if Path.cwd().resolve() == NOTEBOOKS_DIR.resolve():
        os.chdir(NOTEBOOKS_DIR.parent)
    settings = get_settings()
    warehouse = Warehouse.from_settings(settings, warehouse_path)
    if refresh:
        build_warehouse(warehouse, database_url or settings.database_url)
    return warehouse


def moment(value: Moment, timezone: str) -> datetime:
    """`value` as an aware instant; dates and naive times are read in `timezone`."""
    if value is None:
        return datetime.now(UTC)
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day)
    if value.tzinfo is None:
        value = value.replace(tzinfo=ZoneInfo(timezone))
    return value


def month(value: Moment, timezone: str) -> date:
    """The first day of the calendar month (in `timezone`) that `value` falls in."""
    local = moment(value, timezone).astimezone(ZoneInfo(timezone))
    return date(local.year, local.month, 1)


def _months(warehouse: Warehouse, start: Moment, end: Moment) -> dict[str, date]:
    if start is None:
        first = warehouse.query("data_months")["first_month"].iloc[0]
        start = date.today() if pd.isna(first) else first.date()
    return {
        "first_month": month(start, warehouse.timezone),
        "last_month": month(end, warehouse.timezone),
    }


def plan_status_distribution(warehouse: Warehouse, as_of: Moment = None) -> pd.DataFrame:
    """Plans per status shown at `as_of` (the API's rule): plans, share, amount_cny."""
    return warehouse.query("plan_status_distribution", as_of=moment(as_of, warehouse.timezone))


def plan_status_by_plan(warehouse: Warehouse, as_of: Moment = None) -> pd.DataFrame:
    """Plans per plan of the catalogue and status shown at `as_of`, with share within the plan."""
    return warehouse.query("plan_status_by_plan", as_of=moment(as_of, warehouse.timezone))


def order_status_by_record_type(warehouse: Warehouse) -> pd.DataFrame:
    """Orders per record type and stored status: orders, share, amount and refunded amount."""
    return warehouse.query("order_status_by_record_type")


def plan_status_by_month(
    warehouse: Warehouse, start: Moment = None, end: Moment = None
) -> pd.DataFrame:
    """Plans per status at the end of each month, rebuilt from the plans' business times."""
    return warehouse.query("plan_status_by_month", **_months(warehouse, start, end))


def order_status_by_month(
    warehouse: Warehouse, start: Moment = None, end: Moment = None
) -> pd.DataFrame:
    """Orders per status at the end of each month, rebuilt from the orders' business times."""
    return warehouse.query("order_status_by_month", **_months(warehouse, start, end))


def plan_refunds_by_month(
    warehouse: Warehouse, start: Moment = None, end: Moment = None
) -> pd.DataFrame:
    """Per plan and month bought: paid plans, refunds, refund_rate and refunded_amount_cny."""
    return warehouse.query("plan_refunds_by_month", **_months(warehouse, start, end))


def order_refunds_by_month(
    warehouse: Warehouse, start: Moment = None, end: Moment = None
) -> pd.DataFrame:
    """Per record type and month created: paid orders, refunds, refund_rate, refunded amount."""
    return warehouse.query("order_refunds_by_month", **_months(warehouse, start, end))


def plan_funnel(warehouse: Warehouse, as_of: Moment = None) -> pd.DataFrame:
    """Applying → success → refund → refunded: plans reaching, moving on, stopping per stage."""
    return warehouse.query("plan_funnel", as_of=moment(as_of, warehouse.timezone))


def plan_funnel_drop_outs(warehouse: Warehouse, as_of: Moment = None) -> pd.DataFrame:
    """The plans that stopped at each funnel stage, by the status they show at `as_of`."""
    return warehouse.query("plan_funnel_drop_outs", as_of=moment(as_of, warehouse.timezone))


def plans_expiring(
    warehouse: Warehouse, as_of: Moment = None, within_days: Sequence[int] = (30, 60, 90)
) -> pd.DataFrame:
    """Running plans expiring within each number of calendar days after `as_of`, by plan."""
    return warehouse.query(
        "plans_expiring",
        as_of=moment(as_of, warehouse.timezone),
        within_days=[int(days) for days in within_days],
    )


def unpaid_order_ageing(warehouse: Warehouse, as_of: Moment = None) -> pd.DataFrame:
    """Orders still unpay at `as_of` by age band and record type: orders and amount."""
    return warehouse.query("unpaid_order_ageing", as_of=moment(as_of, warehouse.timezone))


def migration_outcome(warehouse: Warehouse) -> pd.DataFrame:
    """Legacy VIP rows migrated (with their amount), quarantined per reason, or not examined."""
    return warehouse.query("migration_outcome")


def quarantine_examples(warehouse: Warehouse, per_reason: int = 3) -> pd.DataFrame:
    """Up to `per_reason` quarantined legacy rows per reason, with the legacy row's fields."""
    return warehouse.query("quarantine_examples", per_reason=int(per_reason))


def latest_build(warehouse: Warehouse) -> pd.DataFrame:
    """When the snapshot the reports read was taken, and from which database."""
    return warehouse.query("latest_build")
