package deploytest

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/tenantgate/tenantgate/internal/authz"
	"github.com/tenantgate/tenantgate/internal/gateway"
)

func TestObjectSet(t *testing.T) {
	common := []objectKey{
		{"ServiceAccount", "tenantgate"},
		{"ConfigMap", "tenantgate"},
		{"ConfigMap", "tenantgate-gateway"},
		{"Deployment", "tenantgate-gateway"},
		{"Service", "tenantgate-gateway"},
		{"PodDisruptionBudget", "tenantgate-gateway"},
		{"HorizontalPodAutoscaler", "tenantgate-gateway"},
		{"Deployment", "tenantgate-sync"},
		{"PodDisruptionBudget", "tenantgate-sync"},
		{"SpiceDBCluster", "tenantgate-spicedb"},
		{"NetworkPolicy", "tenantgate-gateway"},
		{"NetworkPolicy", "tenantgate-sync"},
		{"NetworkPolicy", "tenantgate-spicedb"},
	}
	tests := []struct {
		dir       string
		namespace string
		want      []objectKey
	}{
		{baseDir, "", common},
		{productionDir, "tenantgate", append([]objectKey{{"Namespace", "tenantgate"}}, common...)},
	}
	for _, tt := range tests {
		t.Run(tt.dir, func(t *testing.T) {
			m := render(t, tt.dir)
			var got []objectKey
			for _, k := range m.keys {
				if k.kind == "ConfigMap" {
					name, hashed := generatedName(k.name)
					if !hashed {
						// The hash is what rolls the pods when the
						// configuration changes.
						t.Errorf("ConfigMap %s has no content hash in its name", k.name)
					}
					k.name = name
				}
				got = append(got, k)
			}
			cmp := func(a, b objectKey) int { return strings.Compare(a.String(), b.String()) }
			slices.SortFunc(got, cmp)
			want := slices.Clone(tt.want)
			slices.SortFunc(want, cmp)
			if !slices.Equal(got, want) {
				t.Errorf("objects:\n got %v\nwant %v", got, want)
			}
			for k, ns := range m.objectNamespaces {
				if k.kind == "Namespace" {
					continue
				}
				if ns != tt.namespace {
					t.Errorf("%s in namespace %q, want %q", k, ns, tt.namespace)
				}
			}
		})
	}
}

func TestDecodingIsStrict(t *testing.T) {
	tests := []struct {
		name string
		json string
	}{
		{"unknown field of a built-in kind", `{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"x"},"spec":{"replica":2}}`},
		{"field of a built-in kind in the wrong case", `{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"x"},"spec":{"Replicas":2}}`},
		{"duplicate field", `{"apiVersion":"v1","kind":"ServiceAccount","metadata":{"name":"x"},"automountServiceAccountToken":false,"automountServiceAccountToken":true}`},
		{"kind outside the expected set", `{"apiVersion":"batch/v1","kind":"Job","metadata":{"name":"x"}}`},
		{"a Secret", `{"apiVersion":"v1","kind":"Secret","metadata":{"name":"x"},"stringData":{"k":"v"}}`},
		{"unknown SpiceDB config key", `{"apiVersion":"authzed.com/v1alpha1","kind":"SpiceDBCluster","metadata":{"name":"x"},"spec":{"config":{"datastoreEngine":"postgres","datastoreEngin":"postgres"}}}`},
		{"SpiceDB config key in the wrong case", `{"apiVersion":"authzed.com/v1alpha1","kind":"SpiceDBCluster","metadata":{"name":"x"},"spec":{"config":{"DatastoreEngine":"postgres"}}}`},
		{"unknown SpiceDBCluster spec field", `{"apiVersion":"authzed.com/v1alpha1","kind":"SpiceDBCluster","metadata":{"name":"x"},"spec":{"secretname":"s"}}`},
		{"SpiceDB patch that is no Deployment", `{"apiVersion":"authzed.com/v1alpha1","kind":"SpiceDBCluster","metadata":{"name":"x"},"spec":{"patches":[{"kind":"Deployment","patch":{"spec":{"template":{"spec":{"containers":[{"name":"spicedb","resource":{}}]}}}}}]}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := &manifests{
				dir: "test", deployments: map[string]*appsv1.Deployment{}, serviceAccounts: map[string]*corev1.ServiceAccount{},
				spiceDBClusters: map[string]*spiceDBCluster{}, objectNamespaces: map[objectKey]string{},
			}
			if err := m.add([]byte(tt.json)); err == nil {
				t.Errorf("decoded without error: %s", tt.json)
			}
		})
	}
}

// stubBackend stands in for SpiceDB, Postgres and the token verifier: the
// probe endpoints must answer without them.
type stubBackend struct{}

var errStub = errors.New("stub backend")

func (stubBackend) Authenticate(context.Context, string) (authz.Principal, error) {
	return authz.Principal{}, errStub
}
func (stubBackend) Check(context.Context, authz.CheckRequest, authz.Consistency) (bool, string, error) {
	return false, "", errStub
}

func (stubBackend) CheckBulk(context.Context, []authz.CheckRequest, authz.Consistency) ([]bool, string, error) {
	return nil, "", errStub
}

func (stubBackend) LookupCompanies(context.Context, string, authz.Permission, authz.Consistency, int, string) ([]string, string, error) {
	return nil, "", errStub
}

func (stubBackend) CompaniesByIDs(context.Context, []string) ([]authz.Company, error) {
	return nil, errStub
}

// gatewayStatus is what the real gateway handler answers to GET path when
// its backends are ready or not.
func gatewayStatus(t *testing.T, path string, ready bool) int {
	t.Helper()
	gw, err := gateway.New(gateway.Config{}, gateway.Deps{
		Authn: stubBackend{}, Authz: stubBackend{}, Companies: stubBackend{},
		Ready: func() bool { return ready },
	})
	if err != nil {
		t.Fatalf("gateway: %v", err)
	}
	rec := httptest.NewRecorder()
	gw.Handler().ServeHTTP(rec, httptest.NewRequestWithContext(t.Context(), http.MethodGet, path, nil))
	return rec.Code
}

// probePort resolves the port of an HTTP probe to a number.
func probePort(t *testing.T, c corev1.Container, p *corev1.Probe) (int32, string) {
	t.Helper()
	if p.HTTPGet == nil {
		t.Fatalf("container %s: probe is not an HTTP GET", c.Name)
	}
	if p.HTTPGet.Scheme != "" && p.HTTPGet.Scheme != corev1.URISchemeHTTP {
		t.Errorf("container %s: probe scheme %s: the binary serves plain HTTP", c.Name, p.HTTPGet.Scheme)
	}
	port := p.HTTPGet.Port
	if port.Type == intstr.Int {
		return port.IntVal, p.HTTPGet.Path
	}
	n, ok := containerPort(c, port.StrVal)
	if !ok {
		t.Fatalf("container %s: probe port %q is no container port", c.Name, port.StrVal)
	}
	return n, p.HTTPGet.Path
}

func TestProbes(t *testing.T) {
	type probeWant struct {
		kind string
		get  func(corev1.Container) *corev1.Probe
		path string
		// optional probes may be left out; if present they must match.
		optional bool
	}
	liveness := func(c corev1.Container) *corev1.Probe { return c.LivenessProbe }
	readiness := func(c corev1.Container) *corev1.Probe { return c.ReadinessProbe }
	startup := func(c corev1.Container) *corev1.Probe { return c.StartupProbe }
	tests := []struct {
		deployment, container, portName string
		port                            int32
		probes                          []probeWant
	}{
		{
			deployment: "tenantgate-gateway", container: "gateway", portName: "http", port: 8080,
			probes: []probeWant{
				{kind: "liveness", get: liveness, path: "/healthz"},
				{kind: "readiness", get: readiness, path: "/readyz"},
				{kind: "startup", get: startup, path: "/healthz", optional: true},
			},
		},
		{
			// The sync's /readyz is 503 on a standby by design. As readiness
			// it would leave at most one sync pod ready: a rolling update
			// could then never replace the active pod (its successor waits
			// for the lock, so never becomes available), and the
			// PodDisruptionBudget would block every drain of its node.
			// So readiness is /healthz too, and /readyz is for monitoring.
			deployment: "tenantgate-sync", container: "sync", portName: "metrics", port: 9090,
			probes: []probeWant{
				{kind: "liveness", get: liveness, path: "/healthz"},
				{kind: "readiness", get: readiness, path: "/healthz"},
				{kind: "startup", get: startup, path: "/healthz", optional: true},
			},
		},
	}
	for _, dir := range kustomizations {
		m := render(t, dir)
		for _, tt := range tests {
			t.Run(dir+"/"+tt.container, func(t *testing.T) {
				c := container(t, m.deployment(t, tt.deployment), tt.container)
				want, ok := containerPort(c, tt.portName)
				if !ok || want != tt.port {
					t.Fatalf("container port %s = %d (present %v), want %d", tt.portName, want, ok, tt.port)
				}
				for _, pw := range tt.probes {
					p := pw.get(c)
					if p == nil {
						if !pw.optional {
							t.Errorf("no %s probe", pw.kind)
						}
						continue
					}
					port, path := probePort(t, c, p)
					if port != want || path != pw.path {
						t.Errorf("%s probe GET :%d%s, want :%d%s", pw.kind, port, path, want, pw.path)
					}
				}
			})
		}
	}
}

// TestGatewayProbePathsExist asks the real gateway handler what the probe
// paths of the manifests answer: liveness must not depend on the backends,
// readiness must.
func TestGatewayProbePathsExist(t *testing.T) {
	m := render(t, productionDir)
	d := m.deployment(t, "tenantgate-gateway")
	c := container(t, d, "gateway")
	tests := []struct {
		name         string
		probe        *corev1.Probe
		ready, unrdy int
	}{
		{"liveness", c.LivenessProbe, http.StatusOK, http.StatusOK},
		{"readiness", c.ReadinessProbe, http.StatusOK, http.StatusServiceUnavailable},
		{"startup", c.StartupProbe, http.StatusOK, http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.probe == nil {
				t.Fatal("no probe")
			}
			_, path := probePort(t, c, tt.probe)
			if got := gatewayStatus(t, path, true); got != tt.ready {
				t.Errorf("GET %s with backends ready: %d, want %d", path, got, tt.ready)
			}
			if got := gatewayStatus(t, path, false); got != tt.unrdy {
				t.Errorf("GET %s with backends down: %d, want %d", path, got, tt.unrdy)
			}
		})
	}
	// The scrape annotations point at the metrics the gateway serves.
	ann := d.Spec.Template.Annotations
	if ann["prometheus.io/port"] != strconv.Itoa(int(mustPort(t, c, "http"))) {
		t.Errorf("prometheus.io/port %q, want the http port", ann["prometheus.io/port"])
	}
	if got := gatewayStatus(t, ann["prometheus.io/path"], true); got != http.StatusOK {
		t.Errorf("GET %q (prometheus.io/path): %d", ann["prometheus.io/path"], got)
	}
}

func mustPort(t *testing.T, c corev1.Container, name string) int32 {
	t.Helper()
	n, ok := containerPort(c, name)
	if !ok {
		t.Fatalf("container %s has no port %s", c.Name, name)
	}
	return n
}

func TestGracefulShutdown(t *testing.T) {
	for _, dir := range kustomizations {
		m := render(t, dir)
		for _, w := range workloads {
			if w.init {
				continue
			}
			t.Run(dir+"/"+w.container, func(t *testing.T) {
				d := m.deployment(t, w.deployment)
				c := w.of(t, m)
				cfg, _ := m.config(t, c)
				need := cfg.ShutdownTimeout
				if c.Lifecycle != nil && c.Lifecycle.PreStop != nil {
					if c.Lifecycle.PreStop.Sleep == nil {
						t.Fatal("preStop is not a sleep: the image has no shell to run a command in")
					}
					need += time.Duration(c.Lifecycle.PreStop.Sleep.Seconds) * time.Second
				}
				grace := 30 * time.Second // Kubernetes' default
				if g := d.Spec.Template.Spec.TerminationGracePeriodSeconds; g != nil {
					grace = time.Duration(*g) * time.Second
				}
				// Killed before draining ends, requests in flight are cut
				// and the sync cannot record how far it got.
				if grace <= need {
					t.Errorf("terminationGracePeriodSeconds %v, but preStop and --shutdown-timeout need %v", grace, need)
				}
			})
		}
	}
}

func TestPodSecurity(t *testing.T) {
	for _, dir := range kustomizations {
		m := render(t, dir)
		for name, d := range m.deployments {
			t.Run(dir+"/"+name, func(t *testing.T) {
				spec := d.Spec.Template.Spec
				psc := spec.SecurityContext
				if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot {
					t.Error("pod securityContext.runAsNonRoot is not true")
				}
				if psc == nil || psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
					t.Error("pod seccompProfile is not RuntimeDefault")
				}
				if psc != nil && psc.RunAsUser != nil && *psc.RunAsUser == 0 {
					t.Error("pod runs as UID 0")
				}
				if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
					t.Error("the service account token is mounted; nothing here talks to the Kubernetes API")
				}
				if _, ok := m.serviceAccounts[spec.ServiceAccountName]; !ok {
					t.Errorf("service account %q is not rendered", spec.ServiceAccountName)
				}
				if spec.HostNetwork || spec.HostPID || spec.HostIPC {
					t.Error("pod shares a host namespace")
				}
				for _, c := range slices.Concat(spec.InitContainers, spec.Containers) {
					checkContainerSecurity(t, c, psc)
					checkResources(t, c)
				}
			})
		}
	}
}

func checkContainerSecurity(t *testing.T, c corev1.Container, pod *corev1.PodSecurityContext) {
	t.Helper()
	sc := c.SecurityContext
	if sc == nil {
		t.Errorf("container %s: no securityContext", c.Name)
		return
	}
	nonRoot := (sc.RunAsNonRoot != nil && *sc.RunAsNonRoot) ||
		(sc.RunAsNonRoot == nil && pod != nil && pod.RunAsNonRoot != nil && *pod.RunAsNonRoot)
	if !nonRoot {
		t.Errorf("container %s: runAsNonRoot is not true", c.Name)
	}
	if sc.RunAsUser != nil && *sc.RunAsUser == 0 {
		t.Errorf("container %s: runs as UID 0", c.Name)
	}
	if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Errorf("container %s: readOnlyRootFilesystem is not true", c.Name)
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Errorf("container %s: allowPrivilegeEscalation is not false", c.Name)
	}
	if sc.Privileged != nil && *sc.Privileged {
		t.Errorf("container %s: privileged", c.Name)
	}
	if sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") || len(sc.Capabilities.Add) > 0 {
		t.Errorf("container %s: capabilities must drop ALL and add none", c.Name)
	}
}

func checkResources(t *testing.T, c corev1.Container) {
	t.Helper()
	for _, name := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		req, hasReq := c.Resources.Requests[name]
		limit, hasLimit := c.Resources.Limits[name]
		if !hasReq || req.IsZero() {
			t.Errorf("container %s: no %s request", c.Name, name)
		}
		if !hasLimit || limit.IsZero() {
			t.Errorf("container %s: no %s limit", c.Name, name)
		}
		if hasReq && hasLimit && req.Cmp(limit) > 0 {
			t.Errorf("container %s: %s request %s above its limit %s", c.Name, name, req.String(), limit.String())
		}
	}
}

// selects reports whether sel matches the pod labels.
func selects(t *testing.T, sel *metav1.LabelSelector, podLabels map[string]string) bool {
	t.Helper()
	if sel == nil {
		return false
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		t.Fatalf("selector %v: %v", sel, err)
	}
	return !s.Empty() && s.Matches(labels.Set(podLabels))
}

// disruptionAllowance is how many of replicas pods the budget lets go at
// once.
func (m *manifests) disruptionAllowance(t *testing.T, pdbName string, replicas int) int {
	t.Helper()
	pdb, ok := m.pdbs[pdbName]
	if !ok {
		t.Fatalf("%s: no PodDisruptionBudget %s", m.dir, pdbName)
	}
	switch {
	case pdb.Spec.MaxUnavailable != nil && pdb.Spec.MinAvailable == nil:
		n, err := intstr.GetScaledValueFromIntOrPercent(pdb.Spec.MaxUnavailable, replicas, true)
		if err != nil {
			t.Fatalf("maxUnavailable: %v", err)
		}
		return n
	case pdb.Spec.MinAvailable != nil && pdb.Spec.MaxUnavailable == nil:
		n, err := intstr.GetScaledValueFromIntOrPercent(pdb.Spec.MinAvailable, replicas, true)
		if err != nil {
			t.Fatalf("minAvailable: %v", err)
		}
		return replicas - n
	default:
		t.Fatalf("PodDisruptionBudget %s: set exactly one of minAvailable and maxUnavailable", pdbName)
		return 0
	}
}

func TestGatewayScaling(t *testing.T) {
	for _, dir := range kustomizations {
		t.Run(dir, func(t *testing.T) {
			m := render(t, dir)
			d := m.deployment(t, "tenantgate-gateway")
			podLabels := d.Spec.Template.Labels
			if !selects(t, d.Spec.Selector, podLabels) {
				t.Fatal("the Deployment's selector does not select its own pods")
			}
			// The HPA owns the replica count; a count in the manifest
			// would reset it on every apply.
			if d.Spec.Replicas != nil {
				t.Errorf("spec.replicas = %d; leave it to the HorizontalPodAutoscaler", *d.Spec.Replicas)
			}
			hpa, ok := m.hpas["tenantgate-gateway"]
			if !ok {
				t.Fatal("no HorizontalPodAutoscaler")
			}
			ref := hpa.Spec.ScaleTargetRef
			if ref.APIVersion != "apps/v1" || ref.Kind != "Deployment" || ref.Name != d.Name {
				t.Errorf("HPA targets %s %s %s, want the gateway Deployment", ref.APIVersion, ref.Kind, ref.Name)
			}
			minReplicas := 1
			if hpa.Spec.MinReplicas != nil {
				minReplicas = int(*hpa.Spec.MinReplicas)
			}
			if minReplicas < 2 {
				t.Errorf("HPA minReplicas %d: one gateway is a single point of failure", minReplicas)
			}
			if int(hpa.Spec.MaxReplicas) <= minReplicas {
				t.Errorf("HPA maxReplicas %d leaves no room above minReplicas %d", hpa.Spec.MaxReplicas, minReplicas)
			}
			if len(hpa.Spec.Metrics) == 0 {
				t.Error("HPA has no metric")
			}
			// A budget of 0 blocks every drain; one of minReplicas takes
			// all gateways at once.
			if n := m.disruptionAllowance(t, "tenantgate-gateway", minReplicas); n < 1 || n >= minReplicas {
				t.Errorf("PodDisruptionBudget lets %d of %d gateways go at once, want 1..%d", n, minReplicas, minReplicas-1)
			}
			if !selects(t, m.pdbs["tenantgate-gateway"].Spec.Selector, podLabels) {
				t.Error("the gateway PodDisruptionBudget does not select the gateway pods")
			}
			svc, ok := m.services["tenantgate-gateway"]
			if !ok {
				t.Fatal("no gateway Service")
			}
			if !selects(t, &metav1.LabelSelector{MatchLabels: svc.Spec.Selector}, podLabels) {
				t.Error("the Service does not select the gateway pods")
			}
			if sync := m.deployment(t, "tenantgate-sync"); selects(t, &metav1.LabelSelector{MatchLabels: svc.Spec.Selector}, sync.Spec.Template.Labels) {
				t.Error("the gateway Service also selects the sync pods")
			}
			c := container(t, d, "gateway")
			for _, p := range svc.Spec.Ports {
				target := p.TargetPort
				if (target.Type == intstr.String && target.StrVal != "http") || (target.Type == intstr.Int && target.IntVal != mustPort(t, c, "http")) {
					t.Errorf("Service port %s targets %s, want the gateway's http port", p.Name, target.String())
				}
			}
			checkSpread(t, d)
		})
	}
}

// checkSpread checks that the topology spread constraints of d count d's
// own pods (a selector that matches nothing spreads nothing).
func checkSpread(t *testing.T, d *appsv1.Deployment) {
	t.Helper()
	spread := d.Spec.Template.Spec.TopologySpreadConstraints
	if len(spread) == 0 {
		t.Errorf("%s: no topology spread: one node could hold every replica", d.Name)
	}
	for _, c := range spread {
		if !selects(t, c.LabelSelector, d.Spec.Template.Labels) {
			t.Errorf("%s: spread over %s counts other pods than its own", d.Name, c.TopologyKey)
		}
	}
}

func TestSyncReplicas(t *testing.T) {
	for _, dir := range kustomizations {
		t.Run(dir, func(t *testing.T) {
			m := render(t, dir)
			d := m.deployment(t, "tenantgate-sync")
			if !selects(t, d.Spec.Selector, d.Spec.Template.Labels) {
				t.Fatal("the Deployment's selector does not select its own pods")
			}
			// One active sync and one hot standby.
			if d.Spec.Replicas == nil || *d.Spec.Replicas != 2 {
				t.Fatalf("spec.replicas = %s, want 2", ptrString(d.Spec.Replicas))
			}
			// Only one sync is ever active, because each takes the advisory
			// lock of its slot first (and Postgres lets one walsender use a
			// slot); so a rolling update cannot run two actives and needs no
			// Recreate. Starting the new pod before stopping an old one keeps
			// a standby ready to take over when the active pod stops.
			s := d.Spec.Strategy
			if s.Type != appsv1.RollingUpdateDeploymentStrategyType || s.RollingUpdate == nil {
				t.Fatalf("strategy %s, want RollingUpdate", s.Type)
			}
			surge, err := intstr.GetScaledValueFromIntOrPercent(s.RollingUpdate.MaxSurge, 2, true)
			if err != nil {
				t.Fatalf("maxSurge: %v", err)
			}
			unavailable, err := intstr.GetScaledValueFromIntOrPercent(s.RollingUpdate.MaxUnavailable, 2, false)
			if err != nil {
				t.Fatalf("maxUnavailable: %v", err)
			}
			if surge < 1 || unavailable != 0 {
				t.Errorf("maxSurge %d maxUnavailable %d: want a new pod up (surge >= 1) before an old one stops (0 unavailable)", surge, unavailable)
			}
			if n := m.disruptionAllowance(t, "tenantgate-sync", 2); n != 1 {
				t.Errorf("PodDisruptionBudget lets %d of 2 syncs go at once, want 1", n)
			}
			if !selects(t, m.pdbs["tenantgate-sync"].Spec.Selector, d.Spec.Template.Labels) {
				t.Error("the sync PodDisruptionBudget does not select the sync pods")
			}
			if gw := m.deployment(t, "tenantgate-gateway"); selects(t, m.pdbs["tenantgate-sync"].Spec.Selector, gw.Spec.Template.Labels) {
				t.Error("the sync PodDisruptionBudget also selects the gateway pods")
			}
			checkSpread(t, d)
		})
	}
}

func TestImages(t *testing.T) {
	const repository = "ghcr.io/tenantgate/tenantgate"
	for _, dir := range kustomizations {
		t.Run(dir, func(t *testing.T) {
			m := render(t, dir)
			images := map[string]bool{}
			for name, c := range m.allContainers() {
				images[c.Image] = true
				repo, ref, ok := strings.Cut(c.Image, "@")
				if !ok {
					i := strings.LastIndex(c.Image, ":")
					if i < 0 || strings.Contains(c.Image[i:], "/") {
						t.Errorf("%s: image %s has no tag: a restart could run another release", name, c.Image)
						continue
					}
					repo, ref = c.Image[:i], c.Image[i+1:]
				}
				if repo != repository {
					t.Errorf("%s: image %s, want %s", name, c.Image, repository)
				}
				if ref == "latest" {
					t.Errorf("%s: image %s: latest is no release", name, c.Image)
				}
				if c.ImagePullPolicy == corev1.PullAlways {
					t.Errorf("%s: imagePullPolicy Always makes every start depend on the registry", name)
				}
			}
			// The migration and the binaries that rely on it are one release.
			if len(images) != 1 {
				t.Errorf("containers run %d different images: %v", len(images), images)
			}
		})
	}
}

func ptrString(p *int32) string {
	if p == nil {
		return "unset"
	}
	return strconv.Itoa(int(*p))
}
