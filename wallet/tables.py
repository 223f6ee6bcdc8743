"""The wallet's tables, and the two views the API reads (defined in `sql/`)."""

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from wallet.statuses import OrderStatus, PlanStatus, RecordType
from wallet.types import Money, UTCDateTime

# A 64-bit key that is still SQLite's rowid alias (so it autoincrements there).
BigId = BigInteger().with_variant(Integer(), "sqlite")
# Order numbers sort byte by byte on both databases, whatever PostgreSQL's default collation.
OrderId = String(64).with_variant(String(64, collation="C"), "postgresql")

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


def _one_of(column: str, values) -> str:
    return f"{column} in ({', '.join(repr(str(v.value)) for v in values)})"


# --- the old system, loaded as it was exported -------------------------------------------------

legacy_vip_role = Table(
    "legacy_vip_role",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("vip_name", Text, nullable=False),
    Column("price", Money, nullable=False),
    Column("service_month", Integer, nullable=False),
    Column("is_active", Boolean, nullable=False),
)

legacy_user_vip = Table(
    "legacy_user_vip",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=False),
    Column("user_id", BigInteger),
    Column("vip_role_id", Integer),
    # Kept as the text the old code wrote (floats like 1998.9999999999998); parsed at migration.
    Column("total_price", Text),
    Column("status", Text),
    Column("is_active", Boolean),
    # Naive Asia/Shanghai local times, exactly as exported.
    Column("create_time", DateTime(timezone=False)),
    Column("active_time", DateTime(timezone=False)),
    Column("expire_time", DateTime(timezone=False)),
    Column("order_no", Text),
    Index(None, "user_id", "vip_role_id", "create_time"),
)

# --- the new system ----------------------------------------------------------------------------

plan = Table(
    "plan",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("name", Text, nullable=False),
    Column("list_price", Money, nullable=False),
    Column("service_month", Integer, nullable=False),
    Column("is_on_sale", Boolean, nullable=False),
)

item_record = Table(
    "item_record",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("user_id", BigInteger, nullable=False),
    Column("plan_id", Integer, ForeignKey("plan.id")),
    Column("service_desc", Text, nullable=False),
    Column("price", Money, nullable=False),
    Column("status", String(20), nullable=False),
    Column("create_time", UTCDateTime, nullable=False),
    Column("active_time", UTCDateTime),
    Column("expire_time", UTCDateTime),
    Column("order_id", OrderId),
    # The legacy user_vip row this plan record was migrated from; empty for new plans.
    Column("legacy_id", BigInteger, unique=True),
    CheckConstraint(_one_of("status", PlanStatus), name="status"),
    # Counts and pages a user's plans (the service_list view) without reading the table.
    Index(
        "ix_item_record_user_id_listing", "user_id", "create_time", "id", "status", "expire_time"
    ),
    # expire-plans picks each batch in this order.
    Index(None, "status", "expire_time", "id"),
    Index(None, "order_id"),
)

payment_record = Table(
    "payment_record",
    metadata,
    Column("order_id", OrderId, primary_key=True),
    Column("user_id", BigInteger, nullable=False),
    Column("record_type", SmallInteger, nullable=False),
    Column("actual_price", Money, nullable=False),
    Column("order_status", String(20), nullable=False),
    Column("create_time", UTCDateTime, nullable=False),
    Column("pay_time", UTCDateTime),
    # Set when a refund settlement is applied: what was returned, and when the gateway settled.
    Column("refunded_amount", Money),
    Column("settled_at", UTCDateTime),
    CheckConstraint(_one_of("order_status", OrderStatus), name="order_status"),
    CheckConstraint(
        f"record_type in ({', '.join(str(int(t)) for t in RecordType)})", name="record_type"
    ),
    # Counts and pages a user's orders (payment_record_list) without reading the table.
    Index(
        "ix_payment_record_user_id_listing",
        "user_id",
        "create_time",
        "order_id",
        "record_type",
        "order_status",
    ),
)

migration_quarantine = Table(
    "migration_quarantine",
    metadata,
    Column("legacy_id", BigInteger, primary_key=True, autoincrement=False),
    Column("reason", String(40), nullable=False),
    Column("detail", Text, nullable=False),
    Column("quarantined_at", UTCDateTime, nullable=False),
)

refund_settlement = Table(
    "refund_settlement",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("order_id", OrderId, nullable=False),
    Column("refund_amount", Money, nullable=False),
    Column("settled_at", UTCDateTime, nullable=False),
    # Where the line came from, so a rejection can be traced to the gateway's file.
    Column("source_file", Text, nullable=False),
    Column("source_line", Integer, nullable=False),
    Column("status", String(10), nullable=False, server_default="pending"),
    Column("reason", String(40)),
    Column("imported_at", UTCDateTime, nullable=False),
    Column("processed_at", UTCDateTime),
    CheckConstraint("status in ('pending', 'applied', 'rejected')", name="status"),
    # The gateway resends files: the same settlement again is one settlement.
    UniqueConstraint("order_id", "refund_amount", "settled_at"),
    Index(None, "status", "id"),
)

transition_log = Table(
    "transition_log",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("entity", String(10), nullable=False),
    # The plan record's id or the order's order_id, as text.
    Column("entity_id", String(64), nullable=False),
    Column("from_status", String(20), nullable=False),
    Column("to_status", String(20), nullable=False),
    # When the move was written, and the business time it reflects (expire_time, settled_at).
    Column("occurred_at", UTCDateTime, nullable=False),
    Column("business_time", UTCDateTime),
    Column("actor", Text, nullable=False),
    Column("reason", Text, nullable=False),
    CheckConstraint("entity in ('plan', 'order')", name="entity"),
    Index(None, "entity", "entity_id"),
    Index(None, "occurred_at"),
)

# --- the views the API reads; created by the migrations from sql/ -----------------------------

view_metadata = MetaData()

service_list = Table(
    "service_list",
    view_metadata,
    Column("id", BigInteger),
    Column("user_id", BigInteger),
    Column("service_desc", Text),
    Column("price", Money),
    Column("status", String(20)),
    Column("create_time", UTCDateTime),
    Column("active_time", UTCDateTime),
    Column("expire_time", UTCDateTime),
    Column("order_id", OrderId),
)

payment_record_list = Table(
    "payment_record_list",
    view_metadata,
    Column("order_id", OrderId),
    Column("user_id", BigInteger),
    Column("record_type", SmallInteger),
    Column("actual_price", Money),
    Column("order_status", String(20)),
    Column("create_time", UTCDateTime),
    Column("pay_time", UTCDateTime),
)
