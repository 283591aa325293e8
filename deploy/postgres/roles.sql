-- The three roles of a least-privilege installation of tenantgate, created
-- once by an administrator of the application's database (a superuser, or
-- the managed service's admin role). Give each a password afterwards
-- (ALTER ROLE ... PASSWORD, or your secret manager's rotation) and a
-- connection URL of its own. docs/operations.md, "Least privilege", says
-- which process uses which; internal/privilegetest runs all three.

-- Runs `tenantgate migrate`: creates the schema tenantgate, its tables,
-- triggers and the publication. Creating the publication needs ownership of
-- companies and company_memberships: either this role owns them (it creates
-- them when they do not exist yet), or run migrate as the role that does.
create role tenantgate_migrate login;

-- Runs `tenantgate sync`: reads the two tables, streams their changes from
-- a replication slot (REPLICATION; on Amazon RDS and Aurora grant the role
-- rds_replication instead), and keeps its bookkeeping in schema tenantgate.
create role tenantgate_sync login replication;

-- Runs `tenantgate serve` against a remote SpiceDB: reads the sync's
-- checkpoints, and reads and writes companies and memberships for the
-- management API, with its audit trail. No REPLICATION: a gateway on an
-- embedded SpiceDB runs the sync in-process and needs tenantgate_sync's
-- rights instead.
create role tenantgate_gateway login;
