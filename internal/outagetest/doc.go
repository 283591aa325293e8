// Package outagetest takes tenantgate's dependencies away from real
// processes and brings them back: SpiceDB stopped and slowed, the
// application's PostgreSQL stopped, the identity provider's key set
// unreachable. `tenantgate serve` must answer 503 while it cannot know,
// report not ready, and recover without a restart; `tenantgate sync` must
// resume and lose nothing. It also runs every process as the least
// privileged role deploy/postgres makes for it. It holds tests only, apart
// from internal/app so both run in parallel.
package outagetest
