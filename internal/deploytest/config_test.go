package deploytest

import (
	"net"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/spf13/pflag"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/tenantgate/tenantgate/internal/app"
)

// envValue is one environment variable of a container, resolved.
type envValue struct {
	value  string
	secret *corev1.SecretKeySelector
	// origin says where it was set, for messages.
	origin string
}

// env resolves the environment of c: ConfigMaps named by envFrom (which
// must be rendered), then env. A variable set twice is an error: which one
// wins is easy to get wrong.
func (m *manifests) env(t *testing.T, c corev1.Container) map[string]envValue {
	t.Helper()
	out := map[string]envValue{}
	set := func(name string, v envValue) {
		if prev, ok := out[name]; ok {
			t.Errorf("%s: container %s: %s set by %s and by %s", m.dir, c.Name, name, prev.origin, v.origin)
		}
		out[name] = v
	}
	for _, from := range c.EnvFrom {
		switch {
		case from.ConfigMapRef != nil:
			ref := from.ConfigMapRef
			cm, ok := m.configMaps[ref.Name]
			if !ok {
				t.Fatalf("%s: container %s: envFrom ConfigMap %s: %v", m.dir, c.Name, ref.Name, errNotFound)
			}
			if ref.Optional != nil && *ref.Optional {
				t.Errorf("%s: container %s: ConfigMap %s is optional: a missing one would start the binary half-configured", m.dir, c.Name, ref.Name)
			}
			for k, v := range cm.Data {
				set(from.Prefix+k, envValue{value: v, origin: "ConfigMap " + ref.Name})
			}
		case from.SecretRef != nil:
			// A whole Secret as environment hides which variables it sets,
			// so neither this test nor a reader can tell.
			t.Errorf("%s: container %s: envFrom Secret %s: reference each key with secretKeyRef instead", m.dir, c.Name, from.SecretRef.Name)
		}
	}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			set(e.Name, envValue{value: e.Value, origin: "env"})
		case e.ValueFrom.SecretKeyRef != nil:
			set(e.Name, envValue{secret: e.ValueFrom.SecretKeyRef, origin: "env (Secret " + e.ValueFrom.SecretKeyRef.Name + ")"})
		case e.ValueFrom.ConfigMapKeyRef != nil:
			ref := e.ValueFrom.ConfigMapKeyRef
			cm, ok := m.configMaps[ref.Name]
			if !ok {
				t.Fatalf("%s: container %s: %s: ConfigMap %s: %v", m.dir, c.Name, e.Name, ref.Name, errNotFound)
			}
			v, ok := cm.Data[ref.Key]
			if !ok {
				t.Fatalf("%s: container %s: %s: ConfigMap %s has no key %s", m.dir, c.Name, e.Name, ref.Name, ref.Key)
			}
			set(e.Name, envValue{value: v, origin: "ConfigMap " + ref.Name})
		default:
			t.Fatalf("%s: container %s: %s: a valueFrom this test does not resolve", m.dir, c.Name, e.Name)
		}
	}
	return out
}

// flagsByEnv maps the environment variable of every flag of the binary to
// the flag, straight from the code that registers them.
func flagsByEnv(t *testing.T) map[string]*pflag.Flag {
	t.Helper()
	fs := pflag.NewFlagSet("tenantgate", pflag.ContinueOnError)
	cfg := app.Default()
	app.BindFlags(fs, &cfg)
	out := map[string]*pflag.Flag{}
	fs.VisitAll(func(f *pflag.Flag) { out[app.EnvName(f.Name)] = f })
	if len(out) == 0 {
		t.Fatal("app.BindFlags registered no flags")
	}
	return out
}

// secretFlags are the flags whose values are credentials: those the Config
// marks secret (and redacts in logs), and the database URL, which carries a
// password.
func secretFlags(t *testing.T) map[string]bool {
	t.Helper()
	out := map[string]bool{"database-url": true}
	typ := reflect.TypeFor[app.Config]()
	for i := range typ.NumField() {
		f := typ.Field(i)
		if f.Tag.Get("secret") != "" {
			out[f.Tag.Get("flag")] = true
		}
	}
	if len(out) < 3 {
		t.Fatalf("only %d secret flags found; did the secret tags of app.Config change?", len(out))
	}
	return out
}

// placeholder stands for the value of a Secret when the configuration is
// checked: the manifests do not know it, only that it is there.
func placeholder(flag string) string {
	if strings.HasSuffix(flag, "-url") {
		return "postgres://tenantgate:placeholder@postgres.example:5432/app"
	}
	return "placeholder-secret-0123456789abcdef"
}

// config is what the binary in container c would run with: its environment
// applied to the flags exactly as the command does (app.ApplyEnv), then
// validated (Config.Validate), so a value the binary would refuse fails
// here.
func (m *manifests) config(t *testing.T, c corev1.Container) (app.Config, map[string]envValue) {
	t.Helper()
	env := m.env(t, c)
	flags := flagsByEnv(t)
	cfg := app.Default()
	fs := pflag.NewFlagSet(c.Name, pflag.ContinueOnError)
	app.BindFlags(fs, &cfg)
	lookup := func(name string) (string, bool) {
		v, ok := env[name]
		if !ok {
			return "", false
		}
		if v.secret != nil {
			if f, isFlag := flags[name]; isFlag {
				return placeholder(f.Name), true
			}
			return placeholder(""), true
		}
		return v.value, true
	}
	if err := app.ApplyEnv(fs, lookup); err != nil {
		t.Errorf("%s: container %s: the binary would refuse its environment: %v", m.dir, c.Name, err)
	}
	if err := cfg.Validate(); err != nil {
		t.Errorf("%s: container %s: the binary would refuse its configuration: %v", m.dir, c.Name, err)
	}
	return cfg, env
}

// workload is one container of tenantgate in the manifests.
type workload struct {
	deployment, container string
	init                  bool
	// subcommand is the only argument: everything else is configured
	// through the environment, where this test can check it.
	subcommand string
	// secret is the workload's own Secret, holding the database URL of
	// its Postgres role (deploy/postgres/roles.sql); no other workload
	// may read it.
	secret string
}

var workloads = []workload{
	{deployment: "tenantgate-gateway", container: "gateway", subcommand: "serve", secret: "tenantgate-gateway"},
	{deployment: "tenantgate-sync", container: "sync", subcommand: "sync", secret: "tenantgate-sync"},
	{deployment: "tenantgate-sync", container: "migrate", init: true, subcommand: "migrate", secret: "tenantgate-migrate"},
}

// container returns the workload's container or fails the test.
func (w workload) of(t *testing.T, m *manifests) corev1.Container {
	t.Helper()
	d := m.deployment(t, w.deployment)
	list := d.Spec.Template.Spec.Containers
	if w.init {
		list = d.Spec.Template.Spec.InitContainers
	}
	for _, c := range list {
		if c.Name == w.container {
			return c
		}
	}
	t.Fatalf("%s: Deployment %s has no container %s (init: %v)", m.dir, w.deployment, w.container, w.init)
	return corev1.Container{}
}

// allContainers is every container and init container of every
// Deployment.
func (m *manifests) allContainers() map[string]corev1.Container {
	out := map[string]corev1.Container{}
	for name, d := range m.deployments {
		for _, c := range slices.Concat(d.Spec.Template.Spec.InitContainers, d.Spec.Template.Spec.Containers) {
			out[name+"/"+c.Name] = c
		}
	}
	return out
}

func TestEnvNamesAreFlags(t *testing.T) {
	flags := flagsByEnv(t)
	for _, dir := range kustomizations {
		t.Run(dir, func(t *testing.T) {
			m := render(t, dir)
			for name, c := range m.allContainers() {
				for env, v := range m.env(t, c) {
					if _, ok := flags[env]; !ok {
						t.Errorf("%s: %s (from %s) is not the variable of any flag of tenantgate", name, env, v.origin)
					}
				}
			}
			// Every key, even of a ConfigMap nobody reads yet.
			for name, cm := range m.configMaps {
				for k := range cm.Data {
					if _, ok := flags[k]; !ok {
						t.Errorf("ConfigMap %s: %s is not the variable of any flag of tenantgate", name, k)
					}
				}
			}
		})
	}
}

func TestWorkloadsStart(t *testing.T) {
	for _, dir := range kustomizations {
		m := render(t, dir)
		for _, w := range workloads {
			t.Run(dir+"/"+w.container, func(t *testing.T) {
				c := w.of(t, m)
				if len(c.Command) != 0 || !slices.Equal(c.Args, []string{w.subcommand}) {
					t.Errorf("command %q args %q, want the image's entrypoint with args [%s]", c.Command, c.Args, w.subcommand)
				}
				cfg, _ := m.config(t, c)
				if cfg.DatabaseURLFile == "" {
					t.Error("no database URL file")
				} else {
					checkSecretFile(t, m.deployment(t, w.deployment), c, cfg.DatabaseURLFile, w.secret, databaseURLKey)
				}
				switch w.subcommand {
				case "serve":
					// Several gateways share one SpiceDB; an embedded one
					// per pod would each hold a copy of everything.
					if cfg.SpiceDBEndpoint == "" || cfg.SpiceDBDatastoreURL != "" {
						t.Errorf("gateway must use the remote SpiceDB: endpoint %q, datastore URL set %v", cfg.SpiceDBEndpoint, cfg.SpiceDBDatastoreURL != "")
					}
					if cfg.JWKSURL == "" && cfg.JWKSFile == "" {
						t.Error("gateway has neither a JWKS URL nor a JWKS file")
					}
					if cfg.Issuer == "" || cfg.Audience == "" {
						t.Errorf("gateway issuer %q audience %q: both are required", cfg.Issuer, cfg.Audience)
					}
					checkListenPort(t, "--http-addr", cfg.HTTPAddr, c, "http")
				case "sync":
					if cfg.SpiceDBEndpoint == "" {
						t.Error("sync has no SpiceDB endpoint")
					}
					if cfg.Reconcile {
						t.Error("--reconcile runs once and exits: the Deployment would restart it forever")
					}
					checkListenPort(t, "--metrics-addr", cfg.MetricsAddr, c, "metrics")
				}
			})
		}
	}
}

// checkListenPort checks that addr (a flag's listen address) listens on the
// container port called portName.
func checkListenPort(t *testing.T, flag, addr string, c corev1.Container, portName string) {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Errorf("%s %q: %v", flag, addr, err)
		return
	}
	want, err := strconv.Atoi(p)
	if err != nil {
		t.Errorf("%s %q: port: %v", flag, addr, err)
		return
	}
	got, ok := containerPort(c, portName)
	if !ok {
		t.Errorf("container %s has no port named %s", c.Name, portName)
		return
	}
	if int(got) != want {
		t.Errorf("container port %s is %d, but %s listens on %d", portName, got, flag, want)
	}
}

func containerPort(c corev1.Container, name string) (int32, bool) {
	for _, p := range c.Ports {
		if p.Name == name {
			return p.ContainerPort, true
		}
	}
	return 0, false
}

// documentedSecrets are the Secrets the manifests reference and the README
// tells the operator of the cluster to create, with their keys.
var documentedSecrets = map[string][]string{
	"tenantgate-gateway":     {databaseURLKey, "service-token"},
	"tenantgate-sync":        {databaseURLKey},
	"tenantgate-migrate":     {databaseURLKey},
	"tenantgate-spicedb":     {datastoreURIKey, presharedKeyKey},
	"tenantgate-spicedb-tls": {"tls.crt", "tls.key", "ca.crt"},
}

// databaseURLKey is the key of each component's Secret that holds the
// database URL of its role.
const databaseURLKey = "database-url"

func TestSecretsAreReferencedNotInlined(t *testing.T) {
	secret := secretFlags(t)
	flags := flagsByEnv(t)
	readme, err := os.ReadFile(filepath.Join(moduleRoot(t), "deploy/kubernetes/README.md"))
	if err != nil {
		t.Fatalf("read the deployment README: %v", err)
	}
	for name, keys := range documentedSecrets {
		for _, word := range append([]string{name}, keys...) {
			if !strings.Contains(string(readme), "`"+word+"`") {
				t.Errorf("deploy/kubernetes/README.md does not mention `%s` (Secret %s)", word, name)
			}
		}
	}
	documented := func(name, key string) bool {
		return slices.Contains(documentedSecrets[name], key)
	}
	for _, dir := range kustomizations {
		t.Run(dir, func(t *testing.T) {
			m := render(t, dir)
			for cname, c := range m.allContainers() {
				for env, v := range m.env(t, c) {
					f, isFlag := flags[env]
					if isFlag && secret[f.Name] && v.secret == nil {
						t.Errorf("%s: %s is a credential but comes from %s, not a Secret", cname, env, v.origin)
					}
					if v.secret != nil && !documented(v.secret.Name, v.secret.Key) {
						t.Errorf("%s: %s reads key %s of Secret %s, which the README does not document", cname, env, v.secret.Key, v.secret.Name)
					}
				}
			}
			for name, d := range m.deployments {
				for _, vol := range d.Spec.Template.Spec.Volumes {
					if vol.Secret == nil {
						continue
					}
					if _, ok := documentedSecrets[vol.Secret.SecretName]; !ok {
						t.Errorf("Deployment %s mounts Secret %s, which the README does not document", name, vol.Secret.SecretName)
					}
					for _, item := range vol.Secret.Items {
						if !documented(vol.Secret.SecretName, item.Key) {
							t.Errorf("Deployment %s mounts key %s of Secret %s, which the README does not document", name, item.Key, vol.Secret.SecretName)
						}
					}
				}
			}
			for name, cm := range m.configMaps {
				for k := range cm.Data {
					if f, ok := flags[k]; ok && secret[f.Name] {
						t.Errorf("ConfigMap %s holds %s, a credential", name, k)
					}
				}
			}
			c := m.theSpiceDBCluster(t)
			for _, s := range []string{c.Spec.SecretName, c.Spec.Config.TLSSecretName, c.Spec.Config.DispatchUpstreamCASecretName} {
				if _, ok := documentedSecrets[s]; s != "" && !ok {
					t.Errorf("SpiceDBCluster uses Secret %s, which the README does not document", s)
				}
			}
		})
	}
}

func TestClientsReachSpiceDB(t *testing.T) {
	for _, dir := range kustomizations {
		m := render(t, dir)
		c := m.theSpiceDBCluster(t)
		ns := m.namespace(t)
		slots := map[string]string{}
		for _, w := range workloads {
			t.Run(dir+"/"+w.container, func(t *testing.T) {
				ctr := w.of(t, m)
				cfg, _ := m.config(t, ctr)
				slots[w.container] = cfg.SyncSlot
				host, port := spiceDBEndpoint(t, cfg.SpiceDBEndpoint)
				if !servesCluster(host, c, ns) || port != spiceDBGRPCPort {
					t.Errorf("SpiceDB endpoint %s: want the operator's Service %s on port %d", cfg.SpiceDBEndpoint, c.Metadata.Name, spiceDBGRPCPort)
				}
				// The token must be the key SpiceDB itself is started with.
				if cfg.SpiceDBTokenFile == "" {
					t.Errorf("no SpiceDB token file: want key %s of Secret %s, the one SpiceDB reads", presharedKeyKey, c.Spec.SecretName)
				} else {
					checkSecretFile(t, m.deployment(t, w.deployment), ctr, cfg.SpiceDBTokenFile, c.Spec.SecretName, presharedKeyKey)
				}
				tlsSecret := c.Spec.Config.TLSSecretName
				if tlsSecret == "" {
					// The operator serves plaintext without a TLS Secret,
					// and the client insists on TLS unless told otherwise.
					if !cfg.SpiceDBInsecure {
						t.Error("SpiceDB serves plaintext, but the client dials TLS")
					}
					return
				}
				if cfg.SpiceDBInsecure {
					t.Error("SpiceDB serves TLS, but the client dials plaintext")
				}
				if cfg.SpiceDBCACert == "" {
					t.Fatal("SpiceDB serves TLS with its own CA, but the client trusts only the system roots")
				}
				checkSecretFile(t, m.deployment(t, w.deployment), ctr, cfg.SpiceDBCACert, tlsSecret, "ca.crt")
			})
		}
		if len(slots) == len(workloads) && slots["gateway"] != slots["sync"] {
			t.Errorf("%s: gateway follows slot %q, sync runs slot %q", dir, slots["gateway"], slots["sync"])
		}
	}
}

// checkSecretFile checks that file, in container c of d, is key of Secret
// secretName, mounted read-only.
func checkSecretFile(t *testing.T, d *appsv1.Deployment, c corev1.Container, file, secretName, key string) {
	t.Helper()
	volumes := map[string]corev1.Volume{}
	for _, v := range d.Spec.Template.Spec.Volumes {
		volumes[v.Name] = v
	}
	for _, vm := range c.VolumeMounts {
		rel, err := filepath.Rel(vm.MountPath, file)
		if err != nil || rel == "." || strings.HasPrefix(rel, "..") {
			continue
		}
		v, ok := volumes[vm.Name]
		if !ok || v.Secret == nil || v.Secret.SecretName != secretName {
			t.Errorf("%s: %s is on volume %s, not on Secret %s", d.Name, file, vm.Name, secretName)
			return
		}
		got := rel
		if len(v.Secret.Items) > 0 {
			got = ""
			for _, item := range v.Secret.Items {
				if path.Clean(item.Path) == rel {
					got = item.Key
				}
			}
		}
		if got != key {
			t.Errorf("%s: %s is key %q of Secret %s, want %q", d.Name, file, got, secretName, key)
		}
		if !vm.ReadOnly {
			t.Errorf("%s: volume %s is mounted writable", d.Name, vm.Name)
		}
		return
	}
	t.Errorf("%s: container %s: %s is on no volume", d.Name, c.Name, file)
}
