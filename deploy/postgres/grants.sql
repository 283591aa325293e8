-- Grants of a least-privilege installation (roles.sql), run by the owner of
-- tenantgate's objects (tenantgate_migrate) after every `tenantgate
-- migrate`, because a migration may add objects. Idempotent.
-- internal/privilegetest proves that sync and serve work with exactly these.

grant usage on schema tenantgate to tenantgate_sync, tenantgate_gateway;

-- The sync: snapshot and stream the two tables, keep its own state.
grant select on companies, company_memberships to tenantgate_sync;
grant select, insert, update, delete on
    tenantgate.sync_state, tenantgate.sync_checkpoints,
    tenantgate.sync_dead_letters, tenantgate.sync_reconcile_runs
    to tenantgate_sync;
grant usage on sequence tenantgate.sync_reconcile_runs_id_seq to tenantgate_sync;

-- The gateway: the management API writes companies and memberships and
-- their audit trail; reads follow the sync's checkpoints and the change
-- clock of the staleness bound.
grant select, insert, update, delete on companies, company_memberships to tenantgate_gateway;
grant select, insert on tenantgate.audit_log to tenantgate_gateway;
grant select on tenantgate.company_incarnations, tenantgate.sync_state, tenantgate.sync_checkpoints
    to tenantgate_gateway;
grant select on sequence tenantgate.change_clock to tenantgate_gateway;
