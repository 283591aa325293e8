// Package deploytest checks the Kubernetes manifests under
// deploy/kubernetes against the tenantgate binary. Its tests render each
// kustomization with kustomize's Go API, decode every object strictly into
// its Kubernetes API type (and the SpiceDBCluster into the fields the SpiceDB
// operator documents), and compare what the manifests say with the code:
// environment variable names with the flags, ports and probe paths with the
// servers, the SpiceDB version with go.mod. The package has no code outside
// its tests.
package deploytest
