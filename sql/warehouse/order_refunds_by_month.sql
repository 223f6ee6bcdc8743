-- Refunds of each record type by the calendar month the order was created in, from
-- $first_month to $last_month: orders that were paid, how many of them are now in refund or
-- refunded, the refund rate (refunded / paid) and the amount returned (the settlement's
-- amount, or the order's amount when its refund predates settlements).
with orders as (

    select
        record_type,
        cast(date_trunc('month', create_time) as date) as month,
        order_status as status,
        coalesce(refunded_amount, actual_price) as refunded_amount,
    from payment_record
    where order_status in ('paid', 'refund', 'cancel_refund', 'refunded')

),

monthly as (

    select
        record_type,
        month,
        count(*) as paid_orders,
        count(*) filter (where status = 'refund') as refunding_orders,
        count(*) filter (where status = 'refunded') as refunded_orders,
        coalesce(sum(refunded_amount) filter (where status = 'refunded'), 0)
            as refunded_amount_cny,
    from orders
    where month between $first_month and $last_month
    group by all

)

select
    monthly.month,
    monthly.record_type,
    record_types.record_type_label,
    monthly.paid_orders,
    monthly.refunding_orders,
    monthly.refunded_orders,
    monthly.refunded_orders / monthly.paid_orders as refund_rate,
    monthly.refunded_amount_cny,
from monthly
join record_types on record_types.record_type = monthly.record_type
order by monthly.month, record_types.sort_order
