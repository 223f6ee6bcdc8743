-- Orders in each status at the end of every calendar month from $first_month to $last_month,
-- rebuilt from the business times. An order counts from its create_time, as unpay until its
-- pay_time when it was paid, then in its stored status; a refunded order is in refund until
-- its settled_at. Statuses with no time of their own (fail, closed, canceled, deleted, refund,
-- cancel_refund) count from the order's last known time.
-- Months are those of the session time zone (WALLET_TIMEZONE).
with orders as (

    select
        order_status as status,
        create_time,
        coalesce(pay_time, create_time) as pay_time,
        greatest(coalesce(settled_at, pay_time, create_time), pay_time) as settled_at,
        order_status in ('paid', 'refund', 'cancel_refund', 'refunded') as was_paid,
    from payment_record

),

segments as (

    select
        case when was_paid then 'unpay' else status end as status,
        create_time as entered_at,
        case when was_paid then pay_time end as left_at,
    from orders

    union all

    select
        case when status = 'refunded' then 'refund' else status end as status,
        pay_time as entered_at,
        case when status = 'refunded' then settled_at end as left_at,
    from orders
    where was_paid

    union all

    select
        'refunded' as status,
        settled_at as entered_at,
        null as left_at,
    from orders
    where status = 'refunded'

),

-- A segment is counted at a month's end (the first instant of the next month) when it has
-- begun and not yet ended there: +1 from the month it begins in, -1 from the one it ends in.
changes as (

    select
        status,
        cast(date_trunc('month', entered_at - interval 1 microsecond) as date) as month,
        1 as change,
    from segments

    union all

    select
        status,
        cast(date_trunc('month', left_at - interval 1 microsecond) as date) as month,
        -1 as change,
    from segments
    where left_at is not null

),

monthly_changes as (

    select
        status,
        greatest(month, $first_month) as month,
        sum(change) as change,
    from changes
    where month <= $last_month
    group by all

),

months as (

    select cast(unnest(generate_series(
        cast($first_month as date), cast($last_month as date), interval 1 month
    )) as date) as month

),

counts as (

    select
        months.month,
        order_statuses.status,
        order_statuses.status_label,
        order_statuses.sort_order,
        cast(sum(coalesce(monthly_changes.change, 0)) over (
            partition by order_statuses.status order by months.month
        ) as bigint) as orders,
    from months
    cross join order_statuses
    left join monthly_changes
        on monthly_changes.month = months.month
        and monthly_changes.status = order_statuses.status

)

select
    month,
    status,
    status_label,
    orders,
    coalesce(orders / nullif(sum(orders) over (partition by month), 0), 0) as share,
from counts
qualify max(orders) over (partition by status) > 0
order by month, sort_order
