-- How many plans stand in each status at the moment $as_of, with their share of all plans
-- and the amount they were sold for. Every status of the vocabulary is listed, zero or not.
with plans as (

    select
        status_as_of as status,
        count(*) as plans,
        sum(price) as amount_cny,
    from plans_as_of($as_of)
    group by status_as_of

)

select
    plan_statuses.status,
    plan_statuses.status_label,
    coalesce(plans.plans, 0) as plans,
    coalesce(plans.plans / sum(plans.plans) over (), 0) as share,
    coalesce(plans.amount_cny, 0) as amount_cny,
from plan_statuses
left join plans on plans.status = plan_statuses.status
order by plan_statuses.sort_order
