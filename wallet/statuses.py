"""The status vocabulary of plans and orders, with the labels users see.

This module is the only place that names a status or its label; the API, the flows and the
reports all read them from here.
"""

from enum import IntEnum, StrEnum


class PlanStatus(StrEnum):
    """Where a plan record stands. `expired` is also derived at read time by the views."""

    APPLYING = "applying"
    SUCCESS = "success"
    REFUND = "refund"
    CANCEL_REFUND = "cancel_refund"
    REFUNDED = "refunded"
    CLOSED = "closed"
    CANCELED = "canceled"
    DELETED = "deleted"
    EXPIRED = "expired"

    @property
    def label(self) -> str:
        return PLAN_STATUS_LABELS[self]


class OrderStatus(StrEnum):
    """Where an order (payment record) stands."""

    UNPAY = "unpay"
    PAID = "paid"
    FAIL = "fail"
    REFUND = "refund"
    CANCEL_REFUND = "cancel_refund"
    REFUNDED = "refunded"
    CLOSED = "closed"
    CANCELED = "canceled"
    DELETED = "deleted"

    @property
    def label(self) -> str:
        return ORDER_STATUS_LABELS[self]


class RecordType(IntEnum):
    """Which way the money of an order moves."""

    RECHARGE = 1
    WITHDRAWAL = 2
    EXPENSE = 3
    INCOME = 4

    @property
    def label(self) -> str:
        return RECORD_TYPE_LABELS[self]


PLAN_STATUS_LABELS = {
    PlanStatus.APPLYING: "申请中",
    PlanStatus.SUCCESS: "已开通",
    PlanStatus.REFUND: "退款中",
    PlanStatus.CANCEL_REFUND: "取消退款",
    PlanStatus.REFUNDED: "退款成功",
    PlanStatus.CLOSED: "已关闭",
    PlanStatus.CANCELED: "已取消",
    PlanStatus.DELETED: "已删除",
    PlanStatus.EXPIRED: "已过期",
}

ORDER_STATUS_LABELS = {
    OrderStatus.UNPAY: "进行中",
    OrderStatus.PAID: "交易成功",
    OrderStatus.FAIL: "交易失败",
    OrderStatus.REFUND: "退款",
    OrderStatus.CANCEL_REFUND: "取消退款",
    OrderStatus.REFUNDED: "退款成功",
    OrderStatus.CLOSED: "已关闭",
    OrderStatus.CANCELED: "已取消",
    OrderStatus.DELETED: "已删除",
}

RECORD_TYPE_LABELS = {
    RecordType.RECHARGE: "充值",
    RecordType.WITHDRAWAL: "提现",
    RecordType.EXPENSE: "支出",
    RecordType.INCOME: "收入",
}

# Stored plans in these statuses are shown as expired once their expire_time has passed.
EXPIRING_PLAN_STATUSES = (PlanStatus.SUCCESS, PlanStatus.CANCEL_REFUND)
