-- +goose Up
-- A clock of the changes committed to the mirrored tables, for the
-- gateway's staleness bound: a gateway reads it with the WAL position, and
-- a change the sync has not applied within --max-staleness makes it stop
-- answering. A sequence, because nextval takes no row lock (writers never
-- wait for each other on it) and its value is visible to every session at
-- once, committed or not.
create sequence if not exists tenantgate.change_clock;

-- +goose StatementBegin
-- Security definer: the trigger writes tenantgate's own objects, which the
-- application's users need no privilege on; a fixed search_path keeps a
-- caller's from redirecting what it names.
create or replace function tenantgate.tick_change_clock() returns trigger
language plpgsql security definer set search_path = pg_catalog, pg_temp as $$
begin
    perform nextval('tenantgate.change_clock');
    return null;
end;
$$;
-- +goose StatementEnd

-- Deferred to the commit, so that the clock moves just before the commit
-- record is written, not when a long transaction made its change; named to
-- fire after the foreign-key checks, which are deferred triggers too.
-- (A prepared transaction ticks at PREPARE; its COMMIT PREPARED is caught by
-- PostgreSQL's table statistics, which the gateway reads as well.)
drop trigger if exists zz_tenantgate_change_clock on companies;
create constraint trigger zz_tenantgate_change_clock
    after insert or update or delete on companies
    deferrable initially deferred
    for each row execute function tenantgate.tick_change_clock();

drop trigger if exists zz_tenantgate_change_clock on company_memberships;
create constraint trigger zz_tenantgate_change_clock
    after insert or update or delete on company_memberships
    deferrable initially deferred
    for each row execute function tenantgate.tick_change_clock();

-- TRUNCATE fires no row trigger.
drop trigger if exists tenantgate_change_clock_truncate on companies;
create trigger tenantgate_change_clock_truncate
    after truncate on companies
    for each statement execute function tenantgate.tick_change_clock();

drop trigger if exists tenantgate_change_clock_truncate on company_memberships;
create trigger tenantgate_change_clock_truncate
    after truncate on company_memberships
    for each statement execute function tenantgate.tick_change_clock();
