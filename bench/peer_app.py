"""The peer of bench_api: the same two list endpoints, written the plain way.

An ORM model per table, one session per request, `query.count()` and then `offset()/limit()`
on the tables themselves (no views, no deferred join), ORM objects handed to pydantic. It is
what a first version of the endpoints usually looks like, and what the benchmark measures the
wallet API against. It reads the same settings (`WALLET_DATABASE_URL`, `WALLET_JWT_SECRET`, the
pool size), so `bench.load.serving(url, app="bench.peer_app:create_app")` serves it exactly
like `wallet serve`. Answers have the wallet API's shape; 422 details are FastAPI's defaults.
"""

from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated

import jwt
from fastapi import Depends, FastAPI, Header, HTTPException, Query
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import BigInteger, SmallInteger, String, and_, create_engine, or_, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from wallet.settings import get_settings
from wallet.statuses import OrderStatus, PlanStatus, RecordType
from wallet.types import Money, UTCDateTime
from wallet_api.schemas import MoneyText, UTCTimeText

RUNNING = (PlanStatus.SUCCESS.value, PlanStatus.CANCEL_REFUND.value)


class Base(DeclarativeBase):
    pass


class PlanRecord(Base):
    __tablename__ = "item_record"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    user_id: Mapped[int] = mapped_column(BigInteger)
    service_desc: Mapped[str]
    price: Mapped[Decimal] = mapped_column(Money)
    status: Mapped[str] = mapped_column(String(20))
    create_time: Mapped[datetime] = mapped_column(UTCDateTime)
    active_time: Mapped[datetime | None] = mapped_column(UTCDateTime)
    expire_time: Mapped[datetime | None] = mapped_column(UTCDateTime)
    order_id: Mapped[str | None] = mapped_column(String(64))

    @property
    def shown_status(self) -> str:
        """Success or cancel_refund past its expire_time is shown as expired."""
        if self.status in RUNNING and self.expire_time and self.expire_time <= datetime.now(UTC):
            return PlanStatus.EXPIRED.value
        return self.status


class Order(Base):
    __tablename__ = "payment_record"

    order_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(BigInteger)
    record_type: Mapped[int] = mapped_column(SmallInteger)
    actual_price: Mapped[Decimal] = mapped_column(Money)
    order_status: Mapped[str] = mapped_column(String(20))
    create_time: Mapped[datetime] = mapped_column(UTCDateTime)
    pay_time: Mapped[datetime | None] = mapped_column(UTCDateTime)


class PlanOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    service_desc: str
    price: MoneyText
    status: PlanStatus = Field(validation_alias="shown_status")
    status_display: str = ""
    create_time: UTCTimeText
    active_time: UTCTimeText | None
    expire_time: UTCTimeText | None
    order_id: str | None


class OrderOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    order_id: str
    record_type: RecordType
    order_type: str = ""
    actual_price: MoneyText
    order_status: OrderStatus
    order_status_display: str = ""
    create_time: UTCTimeText
    pay_time: UTCTimeText | None


def create_app() -> FastAPI:
    settings = get_settings()
    signing_key = settings.jwt_signing_key()
    engine = create_engine(
        settings.database_url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_pre_ping=True,
    )
    make_session = sessionmaker(engine)
    app = FastAPI(title="Wallet API, the plain way (benchmark peer)")

    def get_session():
        with make_session() as session:
            yield session

    def get_user_id(authorization: Annotated[str | None, Header()] = None) -> int:
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise HTTPException(401, "not signed in", headers={"WWW-Authenticate": "Bearer"})
        try:
            claims = jwt.decode(token, signing_key, algorithms=["HS256"])
        except jwt.InvalidTokenError as error:
            raise HTTPException(401, str(error), headers={"WWW-Authenticate": "Bearer"}) from None
        return int(claims["sub"])

    SessionDep = Annotated[Session, Depends(get_session)]
    UserId = Annotated[int, Depends(get_user_id)]
    PageNumber = Annotated[int, Query(ge=1, le=1_000_000)]
    PerPage = Annotated[int, Query(ge=1, le=100)]

    @app.get("/health")
    def check_health(session: SessionDep) -> dict:
        session.execute(select(1))
        return {"status": "ok"}

    @app.get("/payment/service_list/")
    def list_plan_records(
        user_id: UserId,
        session: SessionDep,
        status: PlanStatus | None = None,
        page: PageNumber = 1,
        per_page: PerPage = 10,
    ) -> dict:
        query = session.query(PlanRecord).filter(PlanRecord.user_id == user_id)
        query = query.filter(_plan_status_is(status))
        count = query.count()
        plans = (
            query.order_by(PlanRecord.create_time.desc(), PlanRecord.id.desc())
            .offset((page - 1) * per_page)
            .limit(per_page)
            .all()
        )
        data = []
        for plan in plans:
            shown = PlanOut.model_validate(plan)
            shown.status_display = shown.status.label
            data.append(shown.model_dump(mode="json"))
        return _page(data, count, page, per_page)

    @app.get("/payment/payment_record/")
    def list_orders(
        user_id: UserId,
        session: SessionDep,
        record_type: RecordType | None = None,
        order_status: OrderStatus | None = None,
        page: PageNumber = 1,
        per_page: PerPage = 10,
    ) -> dict:
        query = orders_query(session, user_id, record_type, order_status)
        count = query.count()
        orders = (
            query.order_by(Order.create_time.desc(), Order.order_id.desc())
            .offset((page - 1) * per_page)
            .limit(per_page)
            .all()
        )
        data = []
        for order in orders:
            shown = OrderOut.model_validate(order)
            shown.order_type = shown.record_type.label
            shown.order_status_display = shown.order_status.label
            data.append(shown.model_dump(mode="json"))
        return _page(data, count, page, per_page)

    return app


def orders_query(session: Session, user_id: int, record_type, order_status):
    """The user's orders with the filters asked for, the ORM way."""
    query = session.query(Order).filter(Order.user_id == user_id)
    if record_type is not None:
        query = query.filter(Order.record_type == int(record_type))
    if order_status is None:
        return query.filter(Order.order_status != OrderStatus.DELETED.value)
    return query.filter(Order.order_status == order_status.value)


def _plan_status_is(status: PlanStatus | None):
    now = datetime.now(UTC)
    past_expiry = and_(PlanRecord.status.in_(RUNNING), PlanRecord.expire_time <= now)
    if status is None:
        return PlanRecord.status != PlanStatus.DELETED.value
    if status is PlanStatus.EXPIRED:
        return or_(PlanRecord.status == status.value, past_expiry)
    if status.value in RUNNING:
        return and_(
            PlanRecord.status == status.value,
            or_(PlanRecord.expire_time.is_(None), PlanRecord.expire_time > now),
        )
    return PlanRecord.status == status.value


def _page(data: list, count: int, page: int, per_page: int) -> dict:
    pages = max(1, -(-count // per_page))
    return {
        "data": data,
        "is_paginated": pages > 1,
        "pages": pages,
        "current": page,
        "count": count,
        "per_page": per_page,
    }
