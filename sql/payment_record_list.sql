-- The orders a user sees in "my orders" (GET /payment/payment_record/).
create view payment_record_list as
select
    order_id,
    user_id,
    record_type,
    actual_price,
    order_status,
    create_time,
    pay_time
from payment_record
