// Package composetest checks the local stack of docker-compose.yml and the
// Dockerfile without Docker, which this project's machines cannot run. It
// loads the compose file with compose-go, the parser of docker compose
// itself, and holds the result against the code it deploys: the flags of
// tenantgate (app.BindFlags), of SpiceDB at the version go.mod selects (its
// own command tree) and of cmd/devissuer; the start order through
// healthchecks and completed one-shots; pinned images; published, commented
// ports; and the sample data, loaded into a real PostgreSQL.
//
// The package has tests only.
package composetest
