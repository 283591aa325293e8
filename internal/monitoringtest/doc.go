// Package monitoringtest checks deploy/monitoring against the code. Its
// tests parse the Prometheus alerting rules with Prometheus's own rule and
// PromQL parsers, decode the Grafana dashboard and parse every query of it,
// and require that every metric, label and label value those queries name
// is one tenantgate exports: the metrics are read from the Go sources (every
// prometheus.New* call of the module) and cross-checked against the
// registries the gateway, the sync and the permission index really build.
// It also ties the alerts to docs/operations.md: each row of its alert table
// has an alert with the same expression, and each runbook link names a
// heading that exists. The threat model in SECURITY.md is held to the
// same standard for what it cites: every code path and link in it exists.
// The package has no code outside its tests.
package monitoringtest
