-- What the VIP migration did with the legacy rows: migrated (with the amount of the plan
-- records it made), quarantined per reason (in the order the reasons are checked), or not
-- examined yet.
with migrated as (

    select
        count(*) as legacy_rows,
        sum(price) as amount_cny,
    from item_record
    where legacy_id is not null

),

quarantined as (

    select
        reason,
        count(*) as legacy_rows,
    from migration_quarantine
    group by reason

),

outcomes as (

    select 'migrated' as outcome, null as reason, legacy_rows, amount_cny, 0 as sort_order,
    from migrated

    union all

    select
        'quarantined' as outcome,
        quarantined.reason,
        quarantined.legacy_rows,
        null as amount_cny,
        1 + coalesce(quarantine_reasons.sort_order, 1000) as sort_order,
    from quarantined
    left join quarantine_reasons on quarantine_reasons.reason = quarantined.reason

    union all

    select
        'not examined yet' as outcome,
        null as reason,
        count(*) as legacy_rows,
        null as amount_cny,
        2000 as sort_order,
    from legacy_user_vip
    where not exists (from item_record where item_record.legacy_id = legacy_user_vip.id)
        and not exists (
            from migration_quarantine
            where migration_quarantine.legacy_id = legacy_user_vip.id
        )
    having count(*) > 0

)

select
    outcome,
    reason,
    coalesce(outcome || ': ' || reason, outcome) as outcome_name,
    legacy_rows,
    legacy_rows / sum(legacy_rows) over () as share,
    amount_cny,
from outcomes
order by sort_order, reason
