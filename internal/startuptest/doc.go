// Package startuptest starts real `tenantgate serve` and `tenantgate sync`
// processes before what they depend on (SpiceDB, the identity provider's
// key set) is up, and checks that they wait for it, within
// --startup-timeout, instead of exiting; and that what no retry can cure
// ends them at once. It has only tests.
package startuptest
