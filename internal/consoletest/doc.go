// Package consoletest drives the web console (/console/) in a real
// headless Chromium against real gateways: `tenantgate demo` and
// `tenantgate serve` in the test's process, with embedded SpiceDB, over
// fresh databases. It checks what a user sees and does (signing in, the
// company tree with roles and where they come from, managing members,
// refusals in plain words, the audit log) and what the page must never do:
// run markup that came from the data, break its Content-Security-Policy,
// be out of reach of a keyboard or scroll sideways on a narrow screen. It
// has only tests, which need PostgreSQL and Chromium.
//
// With TENANTGATE_SCREENSHOTS set to a directory (absolute: tests run in
// the package's directory) the tests save PNGs of the main views there;
// docs/images holds the ones the documentation shows. Otherwise they write
// nothing.
package consoletest
