-- Where the plans that stopped at each stage of the funnel stand at the moment $as_of (see
-- plan_funnel.sql): e.g. of those that stopped at applying, how many were closed or canceled.
select
    plans.furthest_stage as stage,
    plans.status_as_of as status,
    plan_statuses.status_label,
    count(*) as plans,
from plan_stages_as_of($as_of) as plans
join plan_statuses on plan_statuses.status = plans.status_as_of
group by
    plans.furthest_stage,
    plans.status_as_of,
    plan_statuses.status_label,
    plan_statuses.sort_order
order by stage, plan_statuses.sort_order
