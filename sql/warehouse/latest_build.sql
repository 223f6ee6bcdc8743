-- The snapshot the warehouse holds: when it was taken and from which database (no password).
select
    built_at,
    source,
    last_log_id,
from warehouse_build
order by built_at desc
limit 1
