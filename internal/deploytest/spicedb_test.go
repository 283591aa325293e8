package deploytest

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"golang.org/x/mod/modfile"
	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	sigsjson "sigs.k8s.io/json"
)

// spiceDBClusterGVK is the SpiceDB operator's custom resource.
var spiceDBClusterGVK = schema.GroupVersionKind{Group: "authzed.com", Version: "v1alpha1", Kind: "SpiceDBCluster"}

// spiceDBCluster holds the fields of a SpiceDBCluster these manifests may
// use. There are no Go types for it in k8s.io/api, and the operator's own
// module would pull in its whole dependency tree, so the fields are
// declared here after the operator's documentation and API types
// (github.com/authzed/spicedb-operator pkg/apis/authzed/v1alpha1): a field
// not listed is a decoding error.
type spiceDBCluster struct {
	metav1.TypeMeta `json:",inline"`
	Metadata        metav1.ObjectMeta  `json:"metadata"`
	Spec            spiceDBClusterSpec `json:"spec"`
}

type spiceDBClusterSpec struct {
	// Version is the SpiceDB release to run, from the operator's update
	// graph for Channel.
	Version string `json:"version"`
	Channel string `json:"channel"`
	// SecretName is the Secret holding datastore_uri and preshared_key.
	SecretName string `json:"secretName"`
	// Config holds SpiceDB's flags in camelCase and the operator's own
	// settings.
	Config spiceDBConfig `json:"config"`
	// Patches are applied by the operator to the objects it generates.
	Patches []spiceDBPatch `json:"patches,omitempty"`
}

type spiceDBConfig struct {
	DatastoreEngine string `json:"datastoreEngine"`
	// Replicas, DispatchEnabled and the TLS settings are the operator's;
	// it takes replicas as an integer and dispatchEnabled as a boolean.
	Replicas                     int32  `json:"replicas"`
	DispatchEnabled              *bool  `json:"dispatchEnabled"`
	TLSSecretName                string `json:"tlsSecretName,omitempty"`
	DispatchUpstreamCASecretName string `json:"dispatchUpstreamCASecretName,omitempty"`
	DispatchUpstreamCAFilePath   string `json:"dispatchUpstreamCAFilePath,omitempty"`
	// The rest are passed to SpiceDB as SPICEDB_* variables, as strings.
	LogLevel          string  `json:"logLevel"`
	TelemetryEndpoint *string `json:"telemetryEndpoint"`
	SkipReleaseCheck  string  `json:"skipReleaseCheck"`
	WatchAPIHeartbeat string  `json:"watchApiHeartbeat"`
}

type spiceDBPatch struct {
	Kind  string          `json:"kind"`
	Patch json.RawMessage `json:"patch"`
}

// decodeSpiceDBCluster decodes strictly (unknown, duplicate or wrongly
// cased fields are errors), like the API server decodes built-in kinds.
func decodeSpiceDBCluster(data []byte) (*spiceDBCluster, error) {
	var c spiceDBCluster
	if err := strictUnmarshal(data, &c); err != nil {
		return nil, fmt.Errorf("SpiceDBCluster: %w", err)
	}
	for i, p := range c.Spec.Patches {
		// The operator applies a Deployment patch as a strategic merge
		// patch on the Deployment it generates, so it must be one.
		if p.Kind != "Deployment" {
			return nil, fmt.Errorf("SpiceDBCluster %s: patch %d: kind %q, want Deployment", c.Metadata.Name, i, p.Kind)
		}
		var d appsv1.Deployment
		if err := strictUnmarshal(p.Patch, &d); err != nil {
			return nil, fmt.Errorf("SpiceDBCluster %s: patch %d: %w", c.Metadata.Name, i, err)
		}
	}
	return &c, nil
}

func strictUnmarshal(data []byte, v any) error {
	strict, err := sigsjson.UnmarshalStrict(data, v, sigsjson.DisallowUnknownFields, sigsjson.DisallowDuplicateFields)
	if err != nil {
		return fmt.Errorf("decode: %w", err)
	}
	if len(strict) > 0 {
		return fmt.Errorf("strict decoding: %v", strict)
	}
	return nil
}

// spiceDBVersion is the version of github.com/authzed/spicedb the module
// builds with (after any replace), which the cluster must run: the
// embedded SpiceDB of the tests and the deployed one then agree.
func spiceDBVersion(t *testing.T) string {
	t.Helper()
	const path = "github.com/authzed/spicedb"
	name := filepath.Join(moduleRoot(t), "go.mod")
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatalf("read go.mod: %v", err)
	}
	f, err := modfile.ParseLax(name, data, nil)
	if err != nil {
		t.Fatalf("parse go.mod: %v", err)
	}
	version := ""
	for _, r := range f.Require {
		if r.Mod.Path == path {
			version = r.Mod.Version
		}
	}
	for _, r := range f.Replace {
		if r.Old.Path == path && r.New.Version != "" {
			version = r.New.Version
		}
	}
	if version == "" {
		t.Fatalf("go.mod does not require %s", path)
	}
	return version
}

// The operator's names for what it creates, from its source
// (pkg/metadata/keys.go and pkg/config/config.go).
const (
	spiceDBGRPCPort     = 50051
	spiceDBDispatchPort = 50053
	spiceDBMetricsPort  = 9090
	presharedKeyKey     = "preshared_key"
	datastoreURIKey     = "datastore_uri"
)

// spiceDBPodLabels are the labels the operator puts on the SpiceDB pods of
// cluster name.
func spiceDBPodLabels(name string) map[string]string {
	return map[string]string{
		"authzed.com/cluster":           name,
		"authzed.com/cluster-component": "spicedb",
		"authzed.com/managed-by":        "operator",
	}
}

func TestSpiceDBCluster(t *testing.T) {
	want := spiceDBVersion(t)
	for _, dir := range kustomizations {
		t.Run(dir, func(t *testing.T) {
			m := render(t, dir)
			c := m.theSpiceDBCluster(t)
			if c.APIVersion != "authzed.com/v1alpha1" {
				t.Errorf("apiVersion %q", c.APIVersion)
			}
			if c.Spec.Version != want {
				t.Errorf("spec.version %q, want %q (the SpiceDB of go.mod)", c.Spec.Version, want)
			}
			if c.Spec.Channel == "" {
				t.Error("spec.channel is empty: the operator needs a channel to find the version's migrations")
			}
			cfg := c.Spec.Config
			if cfg.DatastoreEngine != "postgres" {
				t.Errorf("datastoreEngine %q, want postgres", cfg.DatastoreEngine)
			}
			if cfg.DispatchEnabled == nil || !*cfg.DispatchEnabled {
				t.Error("dispatchEnabled is not true")
			}
			if cfg.Replicas < 2 {
				t.Errorf("replicas %d: one SpiceDB is a single point of failure", cfg.Replicas)
			}
			if cfg.TelemetryEndpoint == nil || *cfg.TelemetryEndpoint != "" {
				t.Error(`telemetryEndpoint must be "" (telemetry off)`)
			}
			if cfg.SkipReleaseCheck != "true" {
				t.Errorf("skipReleaseCheck %q, want \"true\"", cfg.SkipReleaseCheck)
			}
			// The permission index's lag is one Watch heartbeat (1s by
			// default on the Postgres datastore).
			if d, err := time.ParseDuration(cfg.WatchAPIHeartbeat); err != nil || d <= 0 || d > 250*time.Millisecond {
				t.Errorf("watchApiHeartbeat %q: want a duration above 0 and at most 250ms", cfg.WatchAPIHeartbeat)
			}
			if c.Spec.SecretName == "" {
				t.Error("spec.secretName is empty: the operator would generate a Secret without a datastore_uri")
			}
			if cfg.TLSSecretName != "" && cfg.DispatchUpstreamCASecretName == "" {
				t.Error("TLS on, but dispatch has no CA to verify its peers with")
			}
		})
	}
}

// spiceDBEndpoint splits an endpoint host:port.
func spiceDBEndpoint(t *testing.T, endpoint string) (host string, port int) {
	t.Helper()
	h, p, err := net.SplitHostPort(endpoint)
	if err != nil {
		t.Fatalf("spicedb endpoint %q: %v", endpoint, err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatalf("spicedb endpoint %q: port: %v", endpoint, err)
	}
	return h, n
}

// servesCluster reports whether host names the Service of cluster c in
// namespace ns: the short name, or name.ns[.svc[.cluster.local]].
func servesCluster(host string, c *spiceDBCluster, ns string) bool {
	name := c.Metadata.Name
	if host == name {
		return true
	}
	if ns == "" {
		return false
	}
	for _, suffix := range []string{"", ".svc", ".svc.cluster.local"} {
		if host == name+"."+ns+suffix {
			return true
		}
	}
	return false
}
