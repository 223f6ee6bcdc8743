-- Plans in each status at the end of every calendar month from $first_month to $last_month,
-- rebuilt from the business times. A plan counts from its create_time, as applying until its
-- active_time, then in its stored status; success and cancel_refund turn expired at the
-- expire_time, as the API reads them. Statuses with no time of their own (refund, refunded,
-- closed, canceled, deleted) count from the plan's last known time.
-- Months are those of the session time zone (WALLET_TIMEZONE).
with plans as (

    select
        item_record.status,
        item_record.create_time,
        coalesce(item_record.active_time, item_record.create_time) as active_time,
        item_record.expire_time,
        item_record.status in (
            'success', 'cancel_refund', 'expired', 'refund', 'refunded'
        ) as was_active,
        (plan_statuses.is_expiring or item_record.status = 'expired')
            and item_record.expire_time is not null as expires,
    from item_record
    join plan_statuses on plan_statuses.status = item_record.status

),

segments as (

    select
        case when was_active then 'applying' else status end as status,
        create_time as entered_at,
        case when was_active then active_time end as left_at,
    from plans

    union all

    select
        case when status = 'expired' then 'success' else status end as status,
        active_time as entered_at,
        case when expires then greatest(expire_time, active_time) end as left_at,
    from plans
    where was_active

    union all

    select
        'expired' as status,
        greatest(expire_time, active_time) as entered_at,
        null as left_at,
    from plans
    where expires

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
        plan_statuses.status,
        plan_statuses.status_label,
        plan_statuses.sort_order,
        cast(sum(coalesce(monthly_changes.change, 0)) over (
            partition by plan_statuses.status order by months.month
        ) as bigint) as plans,
    from months
    cross join plan_statuses
    left join monthly_changes
        on monthly_changes.month = months.month
        and monthly_changes.status = plan_statuses.status

)

select
    month,
    status,
    status_label,
    plans,
    coalesce(plans / nullif(sum(plans) over (partition by month), 0), 0) as share,
from counts
qualify max(plans) over (partition by status) > 0
order by month, sort_order
