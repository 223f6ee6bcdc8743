-- Every plan record with the furthest stage of the funnel (1 applying, 2 success, 3 refund,
-- 4 refunded) that the status it shows at `as_of` proves it reached: cancel_refund went as far
-- as refund, expired as far as success; closed, canceled and deleted stopped at applying.
create or replace macro plan_stages_as_of(as_of) as table
select
    *,
    case
        when status_as_of = 'refunded' then 4
        when status_as_of in ('refund', 'cancel_refund') then 3
        when status_as_of in ('success', 'expired') then 2
        else 1
    end as furthest_stage,
from plans_as_of(as_of)
