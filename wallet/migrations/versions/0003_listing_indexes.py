"""Indexes for reading at scale: the two list endpoints, and the batches of expire-plans.

The API counts a user's plan records or orders and pages through them newest first. With
the filtered columns in the index (status and expire_time for the service_list view's status,
record_type and order_status for orders), both the count and the keys of a deep page are read
from the index alone, even for a user with a hundred thousand orders. expire-plans picks each
batch by (expire_time, id) within a status, so its index gains the id and a batch reads only
its own entries. Each new index replaces the one it extends.

On PostgreSQL the new indexes are built CONCURRENTLY, so a release on a live database keeps
taking writes while they build.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# (name, table, columns) of each new index, and the index it replaces.
LISTING_INDEXES = [
    (
        "ix_item_record_user_id_listing",
        "item_record",
        ["user_id", "create_time", "id", "status", "expire_time"],
        ("ix_item_record_user_id_create_time_id", ["user_id", "create_time", "id"]),
    ),
    (
        "ix_item_record_status_expire_time_id",
        "item_record",
        ["status", "expire_time", "id"],
        ("ix_item_record_status_expire_time", ["status", "expire_time"]),
    ),
    (
        "ix_payment_record_user_id_listing",
        "payment_record",
        ["user_id", "create_time", "order_id", "record_type", "order_status"],
        (
            "ix_payment_record_user_id_create_time_order_id",
            ["user_id", "create_time", "order_id"],
        ),
    ),
]


def upgrade() -> None:
    for name, table, columns, (replaced, _) in LISTING_INDEXES:
        _create_index(name, table, columns)
        op.drop_index(replaced, table_name=table)


def downgrade() -> None:
    for name, table, _, (replaced, replaced_columns) in LISTING_INDEXES:
        _create_index(replaced, table, replaced_columns)
        op.drop_index(name, table_name=table)


def _create_index(name: str, table: str, columns: list[str]) -> None:
    if op.get_context().dialect.name != "postgresql":
        op.create_index(name, table, columns)
        return
    with op.get_context().autocommit_block():
        op.create_index(name, table, columns, postgresql_concurrently=True)
