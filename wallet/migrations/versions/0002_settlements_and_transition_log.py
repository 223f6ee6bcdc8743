"""Refund settlements from the payment gateway, the transition log, and refunds on orders.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

from wallet.types import Money, UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
ORDER_ID = sa.String(length=64).with_variant(sa.String(length=64, collation="C"), "postgresql")


def upgrade() -> None:
    op.create_table(
        "refund_settlement",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("order_id", ORDER_ID, nullable=False),
        sa.Column("refund_amount", Money(), nullable=False),
        sa.Column("settled_at", UTCDateTime(), nullable=False),
        sa.Column("source_file", sa.Text(), nullable=False),
        sa.Column("source_line", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=10), server_default="pending", nullable=False),
        sa.Column("reason", sa.String(length=40)),
        sa.Column("imported_at", UTCDateTime(), nullable=False),
        sa.Column("processed_at", UTCDateTime()),
        sa.CheckConstraint(
            "status in ('pending', 'applied', 'rejected')", name="ck_refund_settlement_status"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_refund_settlement"),
        sa.UniqueConstraint(
            "order_id",
            "refund_amount",
            "settled_at",
            name="uq_refund_settlement_order_id_refund_amount_settled_at",
        ),
    )
    op.create_index("ix_refund_settlement_status_id", "refund_settlement", ["status", "id"])
    op.create_table(
        "transition_log",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("entity", sa.String(length=10), nullable=False),
        sa.Column("entity_id", sa.String(length=64), nullable=False),
        sa.Column("from_status", sa.String(length=20), nullable=False),
        sa.Column("to_status", sa.String(length=20), nullable=False),
        sa.Column("occurred_at", UTCDateTime(), nullable=False),
        sa.Column("business_time", UTCDateTime()),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.CheckConstraint("entity in ('plan', 'order')", name="ck_transition_log_entity"),
        sa.PrimaryKeyConstraint("id", name="pk_transition_log"),
    )
    op.create_index("ix_transition_log_entity_entity_id", "transition_log", ["entity", "entity_id"])
    op.create_index("ix_transition_log_occurred_at", "transition_log", ["occurred_at"])
    # Plain ADD COLUMN on both databases; SQLite needs no table rebuild for it.
    op.add_column("payment_record", sa.Column("refunded_amount", Money()))
    op.add_column("payment_record", sa.Column("settled_at", UTCDateTime()))


def downgrade() -> None:
    # Plain DROP COLUMN (SQLite 3.35+): a table rebuild would break the view on payment_record.
    op.drop_column("payment_record", "settled_at")
    op.drop_column("payment_record", "refunded_amount")
    op.drop_table("transition_log")
    op.drop_table("refund_settlement")
