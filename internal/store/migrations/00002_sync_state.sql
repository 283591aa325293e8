-- +goose Up
-- What the sync keeps about its own progress. All of it can be thrown away:
-- a sync that finds none of it starts over with a fresh snapshot.

-- One row per replication slot: whether its initial snapshot (and the
-- reconcile after it) completed. A slot whose snapshot did not complete is
-- dropped and made anew.
create table if not exists tenantgate.sync_state (
    slot          text primary key,
    snapshot_done boolean not null default false,
    updated_at    timestamptz not null default now()
);

-- The ZedToken SpiceDB returned for the write that covered each applied
-- commit position: "the smallest token covering LSN X" is the first row at
-- or after X. Old rows are pruned by the sync.
create table if not exists tenantgate.sync_checkpoints (
    slot       text not null,
    lsn        pg_lsn not null,
    zed_token  text not null,
    applied_at timestamptz not null default now(),
    primary key (slot, lsn)
);

-- Rows the sync could not map to relationships (a role or ID another program
-- wrote that tenantgate cannot honour). One row per bad source row and
-- reason, however often it is seen; the stream goes on without it.
create table if not exists tenantgate.sync_dead_letters (
    source_table text not null,
    row_id       text not null,
    reason       text not null,
    row_data     jsonb not null,
    lsn          pg_lsn,
    first_seen   timestamptz not null default now(),
    last_seen    timestamptz not null default now(),
    times_seen   bigint not null default 1,
    primary key (source_table, row_id, reason)
);

-- Reconcile runs, requested by `tenantgate sync --reconcile` or by the
-- schedule, and what each found and repaired. The active sync picks up
-- requests, so a reconcile never races the stream it would otherwise undo.
create table if not exists tenantgate.sync_reconcile_runs (
    id           bigserial primary key,
    requested_by text not null,
    requested_at timestamptz not null default now(),
    started_at   timestamptz,
    finished_at  timestamptz,
    missing      bigint,
    extra        bigint,
    skipped      bigint,
    error        text
);
