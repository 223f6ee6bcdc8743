-- Refunds of each plan by the calendar month the plan was bought in (its create_time), from
-- $first_month to $last_month: plans that were paid (ever active), how many of them are now
-- in refund or refunded, the refund rate (refunded / paid) and the amount returned. A plan's
-- refunded amount is what its order's settlement returned, or its price when its refund
-- predates settlements (refunded in the old system).
with plans as (

    select
        item_record.plan_id,
        cast(date_trunc('month', item_record.create_time) as date) as month,
        item_record.status,
        item_record.price,
        payment_record.refunded_amount,
    from item_record
    left join payment_record on payment_record.order_id = item_record.order_id
    where item_record.status in ('success', 'cancel_refund', 'expired', 'refund', 'refunded')

),

monthly as (

    select
        plan_id,
        month,
        count(*) as paid_plans,
        count(*) filter (where status = 'refund') as refunding_plans,
        count(*) filter (where status = 'refunded') as refunded_plans,
        coalesce(
            sum(coalesce(refunded_amount, price)) filter (where status = 'refunded'), 0
        ) as refunded_amount_cny,
    from plans
    where month between $first_month and $last_month
    group by all

)

select
    monthly.month,
    monthly.plan_id,
    coalesce(plan.name, 'plan ' || monthly.plan_id, 'no plan') as plan_name,
    monthly.paid_plans,
    monthly.refunding_plans,
    monthly.refunded_plans,
    monthly.refunded_plans / monthly.paid_plans as refund_rate,
    monthly.refunded_amount_cny,
from monthly
left join plan on plan.id = monthly.plan_id
order by monthly.month, plan_name
