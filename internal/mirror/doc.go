// Package mirror mirrors the application's companies and memberships from
// PostgreSQL into SpiceDB: a consistent snapshot read inside the snapshot a
// new logical replication slot exports, then the slot's change stream
// (pgoutput), so that no change falls between the two.
//
// Postgres is the truth and SpiceDB an index of it: every update the sync
// sends is an idempotent TOUCH or DELETE, so replaying a change is harmless,
// and rows that cannot be mapped are skipped and counted, never allowed to
// stop the stream.
//
// Read-your-writes: Syncer.AwaitApplied waits until every transaction up to
// a WAL position (one an application read after its commit) is applied and
// returns a ZedToken covering it. The sync confirms positions to Postgres as
// soon as they advance, so a gateway in another process can tell the same
// from the slot's confirmed position and the checkpoints: AppliedReader
// reads them (beside the writes, in state.go, with the order they rely on),
// Follower keeps that gateway's floor and readiness, and SlotWaits serves
// its waits with one shared poller.
package mirror
