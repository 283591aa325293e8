-- +goose Up
-- A company ID can be reused: with caller-chosen IDs, anyone may create a
-- company with the ID of one that was deleted, and becomes its owner. The
-- audit trail must not hand them the old company's history, so each
-- company gets an incarnation, a key assigned when its row is inserted and
-- never reused, and audit rows belong to an incarnation, not to an ID.
--
-- Triggers keep the table in step with companies whoever writes it (the
-- management API or the application's own SQL). There is deliberately no
-- foreign key to companies: it would make the application's plain
-- TRUNCATE of companies fail.
create table if not exists tenantgate.company_incarnations (
    company_id  text primary key,
    incarnation uuid not null unique default gen_random_uuid(),
    created_at  timestamptz not null default now()
);

insert into tenantgate.company_incarnations (company_id)
select id from companies
on conflict (company_id) do nothing;

-- +goose StatementBegin
-- Security definer: the trigger writes tenantgate's own objects, which the
-- application's users need no privilege on; a fixed search_path keeps a
-- caller's from redirecting what it names.
create or replace function tenantgate.companies_incarnation() returns trigger
language plpgsql security definer set search_path = pg_catalog, pg_temp as $$
begin
    if tg_op = 'TRUNCATE' then
        delete from tenantgate.company_incarnations;
        return null;
    end if;
    if tg_op = 'UPDATE' and old.id = new.id then
        return null;
    end if;
    if tg_op in ('DELETE', 'UPDATE') then
        delete from tenantgate.company_incarnations where company_id = old.id;
    end if;
    if tg_op in ('INSERT', 'UPDATE') then
        -- A row left behind (a delete made while the trigger was disabled)
        -- must not pass its history on either.
        insert into tenantgate.company_incarnations (company_id) values (new.id)
        on conflict (company_id) do update
        set incarnation = gen_random_uuid(), created_at = now();
    end if;
    return null;
end;
$$;
-- +goose StatementEnd

drop trigger if exists companies_incarnation on companies;
create trigger companies_incarnation
    after insert or delete or update of id on companies
    for each row execute function tenantgate.companies_incarnation();

drop trigger if exists companies_incarnation_truncate on companies;
create trigger companies_incarnation_truncate
    after truncate on companies
    for each statement execute function tenantgate.companies_incarnation();

-- Rows written before this migration belong to the company that holds
-- their ID now: the best that can be known of them.
alter table tenantgate.audit_log add column if not exists incarnation uuid;
update tenantgate.audit_log a set incarnation = i.incarnation
from tenantgate.company_incarnations i
where a.incarnation is null and i.company_id = a.company_id;

-- GET /v1/companies/{id}/audit reads one incarnation's newest entries.
create index if not exists audit_log_incarnation_idx on tenantgate.audit_log (incarnation, id desc);
drop index if exists tenantgate.audit_log_company_idx;
