-- Plans of each plan in the catalogue, by the status they show at the moment $as_of.
with plans as (

    select
        plan_id,
        status_as_of as status,
        count(*) as plans,
        sum(price) as amount_cny,
    from plans_as_of($as_of)
    group by all

)

select
    plans.plan_id,
    coalesce(plan.name, 'plan ' || plans.plan_id, 'no plan') as plan_name,
    plan_statuses.status,
    plan_statuses.status_label,
    plans.plans,
    plans.plans / sum(plans.plans) over (partition by plans.plan_id) as share,
    plans.amount_cny,
from plans
join plan_statuses on plan_statuses.status = plans.status
left join plan on plan.id = plans.plan_id
order by plan_name, plan_statuses.sort_order
