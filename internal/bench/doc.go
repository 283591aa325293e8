// Package bench measures the sync against a real `spicedb serve`: how fast a
// backfill through `tenantgate sync` is next to the fastest write SpiceDB's
// API allows, how much memory it takes as the table grows, how many changes
// per second the stream sustains, and how long a committed change takes to
// be visible in SpiceDB. The measurements are Go benchmarks in this
// package's tests, so `make test` never runs them; `make bench` does, and
// docs/benchmarks.md holds the figures and how to read them.
package bench
