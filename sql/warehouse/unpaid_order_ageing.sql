-- Orders still unpay at the moment $as_of, by how long ago they were created and record type:
-- how many and their amount. Every age band and record type is listed, zero or not.
with bands as (

    select * from (values
        (1, 'under 30 min', interval 0 minute, interval 30 minute),
        (2, '30 min to 2 h', interval 30 minute, interval 2 hour),
        (3, '2 h to 1 day', interval 2 hour, interval 1 day),
        (4, '1 to 7 days', interval 1 day, interval 7 day),
        (5, 'over 7 days', interval 7 day, null)
    ) as bands (sort_order, age_band, older_than, younger_than)

),

unpaid as (

    select
        record_type,
        actual_price,
        cast($as_of as timestamptz) - create_time as age,
    from payment_record
    where order_status = 'unpay'

),

banded as (

    select
        bands.age_band,
        unpaid.record_type,
        count(*) as orders,
        sum(unpaid.actual_price) as amount_cny,
    from unpaid
    join bands
        on unpaid.age >= bands.older_than
        and (bands.younger_than is null or unpaid.age < bands.younger_than)
    group by all

)

select
    bands.age_band,
    record_types.record_type,
    record_types.record_type_label,
    coalesce(banded.orders, 0) as orders,
    coalesce(banded.amount_cny, 0) as amount_cny,
from bands
cross join record_types
left join banded
    on banded.age_band = bands.age_band
    and banded.record_type = record_types.record_type
order by bands.sort_order, record_types.sort_order
