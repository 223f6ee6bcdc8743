"""The wallet's reports for analysts: DataFrames from the DuckDB warehouse, and their charts.

import wallet_reports as reports
from wallet_reports import charts

warehouse = reports.open_warehouse()          # refreshed from WALLET_DATABASE_URL
status = reports.plan_status_distribution(warehouse, as_of="2026-06-01")
charts.status_bars(status, "plans", "Plans by status")
"""

from wallet_reports.queries import (
    latest_build,
    migration_outcome,
    open_warehouse,
    order_refunds_by_month,
    order_status_by_month,
    order_status_by_record_type,
    plan_funnel,
    plan_funnel_drop_outs,
    plan_refunds_by_month,
    plan_status_by_month,
    plan_status_by_plan,
    plan_status_distribution,
    plans_expiring,
    quarantine_examples,
    unpaid_order_ageing,
)

__all__ = [
    "latest_build",
    "migration_outcome",
    "open_warehouse",
    "order_refunds_by_month",
    "order_status_by_month",
    "order_status_by_record_type",
    "plan_funnel",
    "plan_funnel_drop_outs",
    "plan_refunds_by_month",
    "plan_status_by_month",
    "plan_status_by_plan",
    "plan_status_distribution",
    "plans_expiring",
    "quarantine_examples",
    "unpaid_order_ageing",
]
