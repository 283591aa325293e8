package devenv

// SpiceDBServeArgs are the arguments of a local `spicedb serve` on a
// Postgres datastore, as the tests and `tenantgate bench` run it: gRPC in
// plaintext on endpoint with token as the preshared key, and nothing else
// listening or reporting.
func SpiceDBServeArgs(endpoint, token, datastoreURL string) []string {
	return []string{
		"serve",
		"--grpc-preshared-key=" + token,
		// Without a certificate the gRPC server speaks plaintext.
		"--grpc-addr=" + endpoint,
		// Servers are stopped often; a client stream left open must not
		// hold each stop up for the default 5 s.
		"--grpc-shutdown-grace-period=1s",
		"--datastore-engine=postgres",
		"--datastore-conn-uri=" + datastoreURL,
		// The permission index follows Watch, which on this datastore
		// looks for changes once per heartbeat (default 1 s).
		"--watch-api-heartbeat=100ms",
		"--http-enabled=false",
		"--metrics-enabled=false",
		"--dispatch-cluster-enabled=false",
		"--telemetry-endpoint=",
		"--skip-release-check",
		"--log-level=warn",
		"--log-format=json",
	}
}
