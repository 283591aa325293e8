// Package loadbench is `tenantgate bench`: it generates companies and
// memberships, loads them into a throwaway PostgreSQL, starts what it
// compares as separate processes on loopback, drives the same checks and
// lists through each, and prints one markdown table and an SVG chart.
//
// The systems are a floor (a handler answering from memory behind the
// gateway's own JWT verification, the most any HTTP service could do),
// the recursive SQL a team would write over the two tables, SpiceDB asked
// directly over gRPC, and `tenantgate serve` with and without its
// permission index: embedded, embedded on a Postgres datastore, and
// against a remote `spicedb serve` fed by `tenantgate sync`.
//
// Every answer, timed or not, is compared with the ground truth (Truth),
// computed from the generated rows with authz's role table and nothing
// else; one wrong answer ends the run with an error that names the
// system, user, company and permission. A fast wrong answer is worth
// nothing.
//
// RunOverload is issue 15's overload run: it measures the capacity of
// `tenantgate serve` in a closed loop, then drives an open loop of
// arrivals at multiples of it (TestOverload, `make overload`) and counts
// every answer: only 200, 429 and 503 may come back, every 200 right.
package loadbench
