-- +goose Up
-- Every decision of the management API, allowed or not: who asked for what
-- on which company and member, what came of it and why. Rows are only ever
-- added; an operator prunes old ones by at.
create table if not exists tenantgate.audit_log (
    id         bigint generated always as identity primary key,
    at         timestamptz not null default now(),
    actor      text not null,
    action     text not null,
    company_id text not null,
    target     text not null default '',
    outcome    text not null,
    reason     text not null default '',
    detail     jsonb not null default '{}'
);

-- GET /v1/companies/{id}/audit reads one company's newest entries first.
create index if not exists audit_log_company_idx on tenantgate.audit_log (company_id, id desc);
