-- The plan funnel at the moment $as_of: how many plans reached each stage (applying, success,
-- refund, refunded), how many moved on to the next one, and how many stopped there.
with stages as (

    select * from (values
        (1, 'applying'),
        (2, 'success'),
        (3, 'refund'),
        (4, 'refunded')
    ) as stages (stage, status)

),

reached as (

    select
        stages.stage,
        stages.status,
        count(plans.furthest_stage) as reached,
        count(plans.furthest_stage) filter (
            where plans.furthest_stage > stages.stage
        ) as moved_on,
    from stages
    left join plan_stages_as_of($as_of) as plans
        on plans.furthest_stage >= stages.stage
    group by all

)

select
    reached.stage,
    reached.status as stage_status,
    plan_statuses.status_label as stage_label,
    reached.reached,
    reached.moved_on,
    reached.reached - reached.moved_on as stopped_here,
    coalesce(reached.moved_on / nullif(reached.reached, 0), 0) as moved_on_share,
    coalesce(reached.reached / nullif(max(reached.reached) over (), 0), 0) as share_of_all,
from reached
join plan_statuses on plan_statuses.status = reached.status
order by reached.stage
