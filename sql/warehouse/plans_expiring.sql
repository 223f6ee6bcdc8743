-- Plans still running at the moment $as_of (showing success or cancel_refund) that expire
-- within each of $within_days calendar days (in WALLET_TIMEZONE: a plan expiring any time on
-- the last day is in), by plan: how many and the amount they were sold for. Windows are
-- cumulative: the 60-day window holds the 30-day one.
with windows as (

    select unnest(cast($within_days as integer[])) as within_days

),

running as (

    select
        plan_id,
        price,
        cast(expire_time as date) - cast(cast($as_of as timestamptz) as date) as days_left,
    from plans_as_of($as_of)
    where status_as_of in ('success', 'cancel_refund')

)

select
    windows.within_days,
    running.plan_id,
    coalesce(plan.name, 'plan ' || running.plan_id, 'no plan') as plan_name,
    count(running.plan_id) as plans,
    coalesce(sum(running.price), 0) as amount_cny,
from windows
join running on running.days_left <= windows.within_days
left join plan on plan.id = running.plan_id
group by all
order by windows.within_days, plan_name
