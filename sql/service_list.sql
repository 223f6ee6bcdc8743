-- The plans a user sees in "my plans" (GET /payment/service_list/).
-- A plan stored as success or cancel_refund whose expire_time has passed is shown as expired,
-- so answers are right even between two runs of the expire-plans flow.
create view service_list as
select
    id,
    user_id,
    service_desc,
    price,
    case
        when status in ('success', 'cancel_refund') and expire_time <= current_timestamp
            then 'expired'
        else status
    end as status,
    create_time,
    active_time,
    expire_time,
    order_id
from item_record
