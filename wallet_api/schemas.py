"""What the endpoints answer: one page of plan records or orders, and the error bodies."""

from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Generic, Literal, Self, TypeVar

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, WithJsonSchema, computed_field

from wallet.statuses import OrderStatus, PlanStatus, RecordType
from wallet_api.deps import Paging


def format_money(amount: Decimal) -> str:
    return f"{amount:.2f}"


def format_utc(moment: datetime) -> str:
    return moment.astimezone(UTC).replace(microsecond=0, tzinfo=None).isoformat() + "Z"


# Amounts in CNY as text with two decimals, so no client reads them as floats.
MoneyText = Annotated[
    Decimal,
    PlainSerializer(format_money, return_type=str),
    WithJsonSchema({"type": "string", "pattern": r"^-?\d+\.\d{2}$", "examples": ["19999.00"]}),
]
# Instants in UTC to the second, e.g. 2025-10-19T05:24:25Z.
UTCTimeText = Annotated[
    datetime,
    PlainSerializer(format_utc, return_type=str),
    WithJsonSchema({"type": "string", "format": "date-time", "examples": ["2025-10-19T05:24:25Z"]}),
]


class PlanRecordPublic(BaseModel):
    """One plan record as the user sees it; `status` is `expired` once expire_time has passed."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    service_desc: str
    price: MoneyText
    status: PlanStatus
    create_time: UTCTimeText
    active_time: UTCTimeText | None
    expire_time: UTCTimeText | None
    order_id: str | None

    @computed_field(examples=["已开通"])
    @property
    def status_display(self) -> str:
        return self.status.label


class OrderPublic(BaseModel):
    """One order (payment record) as the user sees it."""

    model_config = ConfigDict(from_attributes=True)

    order_id: str
    record_type: RecordType
    actual_price: MoneyText
    order_status: OrderStatus
    create_time: UTCTimeText
    pay_time: UTCTimeText | None

    @computed_field(examples=["充值"])
    @property
    def order_type(self) -> str:
        return self.record_type.label

    @computed_field(examples=["交易成功"])
    @property
    def order_status_display(self) -> str:
        return self.order_status.label


Row = TypeVar("Row", bound=BaseModel)


class Page(BaseModel, Generic[Row]):
    data: list[Row]
    is_paginated: bool = Field(description="Whether there is more than one page.")
    pages: int = Field(description="How many pages there are; at least 1.")
    current: int = Field(description="The page asked for.")
    count: int = Field(description="How many rows match, on all pages.")
    per_page: int

    @classmethod
    def of(cls, rows: list, count: int, paging: Paging) -> Self:
        pages = max(1, -(-count // paging.per_page))
        return cls(
            data=rows,
            is_paginated=pages > 1,
            pages=pages,
            current=paging.page,
            count=count,
            per_page=paging.per_page,
        )


class ServiceListPage(Page[PlanRecordPublic]):
    """One page of the user's plan records, newest first."""


class PaymentRecordPage(Page[OrderPublic]):
    """One page of the user's orders, newest first."""


class HealthStatus(BaseModel):
    status: Literal["ok"]


class ErrorMessage(BaseModel):
    detail: str = Field(examples=["database unavailable"])


NOT_SIGNED_IN = {
    401: {
        "model": ErrorMessage,
        "description": "The bearer token is missing, malformed, badly signed or expired.",
        "headers": {"WWW-Authenticate": {"schema": {"type": "string"}, "description": "Bearer"}},
    }
}
DATABASE_UNAVAILABLE = {
    503: {"model": ErrorMessage, "description": "The database cannot be reached right now."}
}
