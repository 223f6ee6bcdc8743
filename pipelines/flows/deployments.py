"""The deployments `wallet flows serve` registers: four on schedules, the migration on demand."""

from datetime import datetime
from zoneinfo import ZoneInfo

from prefect.deployments.runner import RunnerDeployment
from prefect.schedules import Interval

from pipelines.flows.migrate_vip import migrate_vip
from pipelines.flows.transitions import close_unpaid_orders, expire_plans, settle_refunds
from pipelines.flows.warehouse import build_warehouse
from wallet.settings import Settings

FLOWS = {
    "expire-plans": expire_plans,
    "close-unpaid-orders": close_unpaid_orders,
    "settle-refunds": settle_refunds,
    "migrate-vip": migrate_vip,
    "build-warehouse": build_warehouse,
}


def _interval(every, timezone: str, slug: str):
    # A fixed anchor puts every run on the same clock slots (:00, :05, …) across restarts, so a
    # restarted server neither repeats a slot nor skips the next one.
    anchor = datetime(2026, 1, 1, tzinfo=ZoneInfo(timezone))
    return Interval(every, anchor_date=anchor, timezone=timezone, slug=slug)


def build_deployments(settings: Settings) -> list[RunnerDeployment]:
    zone = settings.timezone
    return [
        expire_plans.to_deployment(
            "expire-plans",
            schedule=_interval(settings.expire_plans_every, zone, "expire-plans-every"),
            description="Plans past their expire_time become expired.",
        ),
        close_unpaid_orders.to_deployment(
            "close-unpaid-orders",
            schedule=_interval(
                settings.close_unpaid_orders_every, zone, "close-unpaid-orders-every"
            ),
            description="Unpaid orders past the timeout close, and their applying plans.",
        ),
        settle_refunds.to_deployment(
            "settle-refunds",
            schedule=_interval(settings.settle_refunds_every, zone, "settle-refunds-every"),
            description="Pending refund settlements are applied or rejected.",
        ),
        build_warehouse.to_deployment(
            "build-warehouse",
            schedule=_interval(settings.build_warehouse_every, zone, "build-warehouse-every"),
            description="Snapshot the wallet tables into the reporting warehouse (DuckDB).",
        ),
        migrate_vip.to_deployment(
            "migrate-vip",
            description="The one-off VIP migration; start it with dry_run=true first.",
        ),
    ]
