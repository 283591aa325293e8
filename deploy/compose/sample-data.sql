-- Sample companies and memberships for the compose stack: the data set of
-- `tenantgate demo` (internal/app/demo_data.go). The `seed` service runs
-- this after `tenantgate migrate`, at every `docker compose up`.
--
-- It loads only into an empty companies table, so rows you changed or
-- deleted stay as you left them across restarts. To start over:
--   docker compose down --volumes && docker compose up
--
-- Plain SQL in one DO block (no psql meta-commands): it is all or nothing,
-- and any client can run it.
do $$
begin
    if exists (select 1 from companies) then
        raise notice 'companies is not empty: sample data not loaded';
        return;
    end if;

    -- Parents before children: the parent guard trigger walks up the tree
    -- of rows already inserted.
    insert into companies (id, name, parent_id) values ('acme-holding', 'ACME Holding', null);
    insert into companies (id, name, parent_id) values ('acme-europe', 'ACME Europe', 'acme-holding');
    insert into companies (id, name, parent_id) values ('acme-americas', 'ACME Americas', 'acme-holding');
    insert into companies (id, name, parent_id) values ('acme-france', 'ACME France', 'acme-europe');
    insert into companies (id, name, parent_id) values ('acme-germany', 'ACME Germany', 'acme-europe');
    insert into companies (id, name, parent_id) values ('acme-paris', 'ACME Paris', 'acme-france');
    insert into companies (id, name, parent_id) values ('globex', 'Globex Corp', null);
    insert into companies (id, name, parent_id) values ('globex-labs', 'Globex Labs', 'globex');

    insert into company_memberships (user_id, company_id, role, status) values
        ('alice@acme.example',   'acme-holding',  'owner',  'active'),
        ('bob@acme.example',     'acme-holding',  'viewer', 'active'),
        ('bob@acme.example',     'acme-france',   'admin',  'active'),
        ('carol@acme.example',   'acme-europe',   'editor', 'active'),
        ('dave@acme.example',    'acme-paris',    'viewer', 'inactive'),
        ('erin@globex.example',  'globex',        'owner',  'active'),
        ('erin@globex.example',  'acme-germany',  'viewer', 'active'),
        ('frank@globex.example', 'globex-labs',   'editor', 'pending'),
        ('grace@acme.example',   'acme-americas', 'admin',  'active');

    raise notice 'sample data loaded: 8 companies, 9 memberships';
end
$$;
