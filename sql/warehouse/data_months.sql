-- The first and last calendar month (WALLET_TIMEZONE) in which a plan or an order was created.
with created as (

    select create_time from item_record
    union all
    select create_time from payment_record

)

select
    cast(date_trunc('month', min(create_time)) as date) as first_month,
    cast(date_trunc('month', max(create_time)) as date) as last_month,
from created
