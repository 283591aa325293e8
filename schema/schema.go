// Package schema holds tenantgate's SpiceDB schema, the one copy that
// enforces the role table of docs/design.md. It is embedded so that
// `tenantgate migrate` can write it to SpiceDB, and serve and sync can check
// its version (version.go), without reading files at run time;
// tenantgate.yaml next to it is the validation file that pins its behaviour.
package schema

import _ "embed"

// Schema is the text of tenantgate.zed, ready for SpiceDB's WriteSchema.
//
//go:embed tenantgate.zed
var Schema string
