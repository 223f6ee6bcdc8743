"""Plans, orders, the plan catalogue, the legacy tables, the quarantine and the two API views.

Revision ID: 0001
Revises:
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

from wallet.schema import view_sql
from wallet.types import Money, UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

PLAN_STATUSES = (
    "applying", "success", "refund", "cancel_refund", "refunded",
    "closed", "canceled", "deleted", "expired",
)  # fmt: skip
ORDER_STATUSES = (
    "unpay", "paid", "fail", "refund", "cancel_refund", "refunded",
    "closed", "canceled", "deleted",
)  # fmt: skip


# Order numbers sort byte by byte on both databases, whatever PostgreSQL's default collation.
ORDER_ID = sa.String(length=64).with_variant(sa.String(length=64, collation="C"), "postgresql")


def _one_of(column: str, values: tuple[str, ...]) -> str:
    return f"{column} in ({', '.join(repr(v) for v in values)})"


def upgrade() -> None:
    op.create_table(
        "legacy_vip_role",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("vip_name", sa.Text(), nullable=False),
        sa.Column("price", Money(), nullable=False),
        sa.Column("service_month", sa.Integer(), nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_legacy_vip_role"),
    )
    op.create_table(
        "legacy_user_vip",
        sa.Column("id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("user_id", sa.BigInteger()),
        sa.Column("vip_role_id", sa.Integer()),
        sa.Column("total_price", sa.Text()),
        sa.Column("status", sa.Text()),
        sa.Column("is_active", sa.Boolean()),
        sa.Column("create_time", sa.DateTime()),
        sa.Column("active_time", sa.DateTime()),
        sa.Column("expire_time", sa.DateTime()),
        sa.Column("order_no", sa.Text()),
        sa.PrimaryKeyConstraint("id", name="pk_legacy_user_vip"),
    )
    op.create_index(
        "ix_legacy_user_vip_user_id_vip_role_id_create_time",
        "legacy_user_vip",
        ["user_id", "vip_role_id", "create_time"],
    )
    op.create_table(
        "plan",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("list_price", Money(), nullable=False),
        sa.Column("service_month", sa.Integer(), nullable=False),
        sa.Column("is_on_sale", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_plan"),
    )
    op.create_table(
        "item_record",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("plan_id", sa.Integer()),
        sa.Column("service_desc", sa.Text(), nullable=False),
        sa.Column("price", Money(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("create_time", UTCDateTime(), nullable=False),
        sa.Column("active_time", UTCDateTime()),
        sa.Column("expire_time", UTCDateTime()),
        sa.Column("order_id", ORDER_ID),
        sa.Column("legacy_id", sa.BigInteger()),
        sa.CheckConstraint(_one_of("status", PLAN_STATUSES), name="ck_item_record_status"),
        sa.ForeignKeyConstraint(["plan_id"], ["plan.id"], name="fk_item_record_plan_id_plan"),
        sa.PrimaryKeyConstraint("id", name="pk_item_record"),
        sa.UniqueConstraint("legacy_id", name="uq_item_record_legacy_id"),
    )
    op.create_index("ix_item_record_order_id", "item_record", ["order_id"])
    op.create_index("ix_item_record_status_expire_time", "item_record", ["status", "expire_time"])
    op.create_index(
        "ix_item_record_user_id_create_time_id", "item_record", ["user_id", "create_time", "id"]
    )
    op.create_table(
        "payment_record",
        sa.Column("order_id", ORDER_ID, nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("record_type", sa.SmallInteger(), nullable=False),
        sa.Column("actual_price", Money(), nullable=False),
        sa.Column("order_status", sa.String(length=20), nullable=False),
        sa.Column("create_time", UTCDateTime(), nullable=False),
        sa.Column("pay_time", UTCDateTime()),
        sa.CheckConstraint(
            _one_of("order_status", ORDER_STATUSES), name="ck_payment_record_order_status"
        ),
        sa.CheckConstraint("record_type in (1, 2, 3, 4)", name="ck_payment_record_record_type"),
        sa.PrimaryKeyConstraint("order_id", name="pk_payment_record"),
    )
    op.create_index(
        "ix_payment_record_user_id_create_time_order_id",
        "payment_record",
        ["user_id", "create_time", "order_id"],
    )
    op.create_table(
        "migration_quarantine",
        sa.Column("legacy_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("reason", sa.String(length=40), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("quarantined_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("legacy_id", name="pk_migration_quarantine"),
    )
    op.execute(view_sql("service_list"))
    op.execute(view_sql("payment_record_list"))


def downgrade() -> None:
    op.execute("drop view payment_record_list")
    op.execute("drop view service_list")
    for table in (
        "migration_quarantine",
        "payment_record",
        "item_record",
        "plan",
        "legacy_user_vip",
        "legacy_vip_role",
    ):
        op.drop_table(table)
