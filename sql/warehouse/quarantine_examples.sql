-- Up to $per_reason quarantined legacy rows for each reason (lowest legacy ids first), with
-- the legacy row as it was imported and why it was held back.
with numbered as (

    select
        migration_quarantine.*,
        row_number() over (
            partition by migration_quarantine.reason order by migration_quarantine.legacy_id
        ) as number_in_reason,
    from migration_quarantine

)

select
    numbered.reason,
    numbered.legacy_id,
    numbered.detail,
    legacy_user_vip.user_id,
    legacy_user_vip.vip_role_id,
    legacy_user_vip.status as legacy_status,
    legacy_user_vip.total_price,
    legacy_user_vip.create_time,
    legacy_user_vip.active_time,
    legacy_user_vip.expire_time,
    numbered.quarantined_at,
from numbered
left join legacy_user_vip on legacy_user_vip.id = numbered.legacy_id
left join quarantine_reasons on quarantine_reasons.reason = numbered.reason
where numbered.number_in_reason <= $per_reason
order by quarantine_reasons.sort_order, numbered.legacy_id
