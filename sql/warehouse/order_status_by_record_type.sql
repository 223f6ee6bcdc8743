-- Orders of each record type by their stored status: how many, their share of the record
-- type, and the amounts ordered and refunded. Every type and status pair is listed.
with orders as (

    select
        record_type,
        order_status as status,
        count(*) as orders,
        sum(actual_price) as amount_cny,
        sum(refunded_amount) as refunded_amount_cny,
    from payment_record
    group by all

)

select
    record_types.record_type,
    record_types.record_type_label,
    order_statuses.status,
    order_statuses.status_label,
    coalesce(orders.orders, 0) as orders,
    coalesce(
        orders.orders / sum(orders.orders) over (partition by record_types.record_type), 0
    ) as share,
    coalesce(orders.amount_cny, 0) as amount_cny,
    coalesce(orders.refunded_amount_cny, 0) as refunded_amount_cny,
from record_types
cross join order_statuses
left join orders
    on orders.record_type = record_types.record_type
    and orders.status = order_statuses.status
order by record_types.sort_order, order_statuses.sort_order
