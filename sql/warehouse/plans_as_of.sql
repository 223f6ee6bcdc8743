-- Every plan record with the status it shows at the moment `as_of`: the API's read-time rule
-- (sql/service_list.sql), a plan stored success or cancel_refund whose expire_time has come
-- counts as expired. Report queries read plans through this macro.
create or replace macro plans_as_of(as_of) as table
select
    item_record.*,
    case
        when plan_statuses.is_expiring and item_record.expire_time <= as_of then 'expired'
        else item_record.status
    end as status_as_of,
from item_record
join plan_statuses on plan_statuses.status = item_record.status
