-- +goose Up
-- The data contract of docs/design.md. Applications may own these tables already,
-- so every statement leaves existing objects and rows alone and only adds
-- what tenantgate relies on.
create table if not exists companies (
    id        text primary key,
    name      text not null,
    parent_id text null references companies (id)
);

create table if not exists company_memberships (
    id         text primary key default gen_random_uuid()::text,
    user_id    text not null,
    company_id text not null references companies (id) on delete cascade,
    role       text not null check (role in ('owner', 'admin', 'editor', 'viewer')),
    status     text not null default 'active' check (status in ('active', 'inactive', 'pending')),
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    unique (user_id, company_id)
);

-- The unique constraint leads with user_id; listing a company's members and
-- cascading a company delete need company_id first. The parent index serves
-- the descendant walk of the trigger below.
create index if not exists company_memberships_company_id_idx on company_memberships (company_id);
create index if not exists companies_parent_id_idx on companies (parent_id);

-- Without FULL, logical replication sends only the key of an updated or
-- deleted row, and the sync could not tell which relationship to remove.
alter table companies replica identity full;
alter table company_memberships replica identity full;

-- +goose StatementBegin
do $$
begin
    if not exists (select 1 from pg_publication where pubname = 'tenantgate') then
        create publication tenantgate for table companies, company_memberships;
    end if;
end
$$;
-- +goose StatementEnd

-- The schema "tenantgate" exists already: Migrate creates it before goose
-- puts its version table there.
-- +goose StatementBegin
create or replace function tenantgate.companies_guard_parent() returns trigger
language plpgsql as $$
declare
    -- store.MaxDepth. SpiceDB gives up at a dispatch depth of 50 and walks
    -- one level per parent link, so the tree must stay well below that.
    max_depth constant integer := 40;
    above integer;
    below integer;
    cyclic boolean;
begin
    if new.parent_id is null
        or (tg_op = 'UPDATE' and new.parent_id is not distinct from old.parent_id) then
        return new;
    end if;
    if new.parent_id = new.id then
        raise exception 'company % cannot be its own parent', new.id
            using errcode = 'TG001';
    end if;

    -- Two concurrent reparents could each pass the walk below and together
    -- close a loop. One lock per database for tree changes orders them, and
    -- under READ COMMITTED every statement below takes a fresh snapshot, so
    -- the later one sees the earlier one's committed change.
    perform pg_advisory_xact_lock(hashtext('tenantgate.companies.parent_id'));

    -- The table is named through the trigger's arguments rather than the
    -- search_path, which differs between the migrating role and the app.
    -- Both walks stop after max_depth + 1 levels, so rows written before this
    -- trigger existed cannot make them loop.
    execute format($q$
        with recursive up (id, parent_id, level) as (
            select id, parent_id, 1 from %1$I.%2$I where id = $1
            union all
            select c.id, c.parent_id, up.level + 1
            from %1$I.%2$I c join up on c.id = up.parent_id
            where up.level <= $3
        )
        select count(*), coalesce(bool_or(id = $2), false) from up
    $q$, tg_table_schema, tg_table_name)
    into above, cyclic
    using new.parent_id, new.id, max_depth;
    if cyclic then
        raise exception 'company % cannot be placed under its own descendant %', new.id, new.parent_id
            using errcode = 'TG001';
    end if;

    -- A reparent moves the whole subtree, and its deepest leaf must still fit.
    execute format($q$
        with recursive down (id, level) as (
            select id, 1 from %1$I.%2$I where parent_id = $1
            union all
            select c.id, down.level + 1
            from %1$I.%2$I c join down on c.parent_id = down.id
            where down.level <= $2
        )
        select coalesce(max(level), 0) from down
    $q$, tg_table_schema, tg_table_name)
    into below
    using new.id, max_depth;
    if above + 1 + below > max_depth then
        raise exception 'placing company % under % makes the tree % levels deep, more than %',
            new.id, new.parent_id, above + 1 + below, max_depth
            using errcode = 'TG002';
    end if;
    return new;
end
$$;
-- +goose StatementEnd

drop trigger if exists companies_guard_parent on companies;
create trigger companies_guard_parent
    before insert or update of parent_id on companies
    for each row execute function tenantgate.companies_guard_parent();
