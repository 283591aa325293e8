// Package composetest checks the local stack of docker-compose.yml and the
// Dockerfile without Docker, which this project's machines cannot run. It
// loads the compose file with compose-go, the parser of docker compose
// itself, and holds the result against the code it deploys: the flags of
// tenantgate (app.BindFlags), of SpiceDB at the version go.mod selects (its
// own command tree) and of cmd/devissuer; the start order through
// healthchecks and completed one-shots; pinned images; published, commented
// ports; the sample data, loaded into a real PostgreSQL; and the token
// issuer, whose binary runs with its service's arguments and writes the key
// set that serve, configured as the compose file configures it, reads
// through the shared volume and verifies the issuer's tokens with.
//
// The package has tests only.
package composetest
