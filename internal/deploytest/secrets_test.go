package deploytest

import (
	"net/url"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// sharedSecretKeys are the Secrets more than one component may mount, and
// the only keys a component may take from them: SpiceDB's API key and the
// CA of its certificate are the same for every client, but SpiceDB's
// datastore URL and its private key are SpiceDB's alone.
var sharedSecretKeys = map[string][]string{
	"tenantgate-spicedb":     {presharedKeyKey},
	"tenantgate-spicedb-tls": {"ca.crt"},
}

// secretSource is one Secret a volume exposes, with the keys it projects
// (none: every key).
type secretSource struct {
	name string
	keys []string
}

// secretSources is every Secret volume v exposes, a projected volume's
// included.
func secretSources(v corev1.Volume) []secretSource {
	keys := func(items []corev1.KeyToPath) []string {
		var out []string
		for _, item := range items {
			out = append(out, item.Key)
		}
		return out
	}
	var out []secretSource
	if v.Secret != nil {
		out = append(out, secretSource{v.Secret.SecretName, keys(v.Secret.Items)})
	}
	if v.Projected != nil {
		for _, p := range v.Projected.Sources {
			if p.Secret != nil {
				out = append(out, secretSource{p.Secret.Name, keys(p.Secret.Items)})
			}
		}
	}
	return out
}

// TestSecretsArePerComponent holds each component to its own Postgres role:
// its Secret is readable by its container alone, so a compromised gateway
// cannot borrow the sync's REPLICATION or migrate's DDL.
func TestSecretsArePerComponent(t *testing.T) {
	for _, dir := range kustomizations {
		t.Run(dir, func(t *testing.T) {
			m := render(t, dir)
			// readers maps each component Secret to the containers that can
			// read it, however they get it.
			readers := map[string][]string{}
			read := func(secret, by string) {
				if !slices.Contains(readers[secret], by) {
					readers[secret] = append(readers[secret], by)
				}
			}
			for name, d := range m.deployments {
				spec := d.Spec.Template.Spec
				volumes := map[string]corev1.Volume{}
				for _, v := range spec.Volumes {
					volumes[v.Name] = v
				}
				mounted := map[string]bool{}
				for _, c := range slices.Concat(spec.InitContainers, spec.Containers) {
					cname := name + "/" + c.Name
					for _, vm := range c.VolumeMounts {
						mounted[vm.Name] = true
						v, ok := volumes[vm.Name]
						if !ok {
							t.Errorf("%s: mounts volume %s, which the pod does not have", cname, vm.Name)
							continue
						}
						for _, s := range secretSources(v) {
							allowed, shared := sharedSecretKeys[s.name]
							if !shared {
								read(s.name, cname)
								continue
							}
							if len(s.keys) == 0 {
								t.Errorf("%s: mounts all of Secret %s; project only %q", cname, s.name, allowed)
							}
							for _, k := range s.keys {
								if !slices.Contains(allowed, k) {
									t.Errorf("%s: mounts key %s of Secret %s; a client needs only %q", cname, k, s.name, allowed)
								}
							}
						}
					}
					for _, from := range c.EnvFrom {
						if from.SecretRef != nil {
							read(from.SecretRef.Name, cname)
						}
					}
					for _, e := range c.Env {
						if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
							read(e.ValueFrom.SecretKeyRef.Name, cname)
						}
					}
				}
				// The kubelet fetches a Secret volume onto the node even when
				// no container mounts it: a pod must not hold what none of its
				// containers uses.
				for _, v := range spec.Volumes {
					if len(secretSources(v)) > 0 && !mounted[v.Name] {
						t.Errorf("Deployment %s: Secret volume %s is mounted by no container", name, v.Name)
					}
				}
			}
			for _, w := range workloads {
				t.Run(w.container, func(t *testing.T) {
					want := []string{w.deployment + "/" + w.container}
					if got := readers[w.secret]; !slices.Equal(got, want) {
						t.Errorf("Secret %s is readable by %q, want %q alone", w.secret, got, want)
					}
				})
			}
			for secret, by := range readers {
				if len(by) > 1 {
					slices.Sort(by)
					t.Errorf("Secret %s is readable by %q: give each component a Secret of its own", secret, by)
				}
			}
		})
	}
}

// TestCredentialsComeFromFiles keeps every credential out of the
// environment: a variable is fixed when the container starts, so a rotated
// password would need a restart, while the binary reads a file again every
// few seconds.
func TestCredentialsComeFromFiles(t *testing.T) {
	secret := secretFlags(t)
	flags := flagsByEnv(t)
	for _, dir := range kustomizations {
		m := render(t, dir)
		for _, w := range workloads {
			t.Run(dir+"/"+w.container, func(t *testing.T) {
				c := w.of(t, m)
				for name, v := range m.env(t, c) {
					flag := "database-url" // DATABASE_URL, its fallback
					if f, ok := flags[name]; ok {
						flag = f.Name
					}
					if secret[flag] && (flags[name] != nil || name == "DATABASE_URL") {
						t.Errorf("%s (from %s) holds a credential (--%s): read it from a mounted Secret file", name, v.origin, flag)
					}
					if v.secret != nil {
						t.Errorf("%s comes from key %s of Secret %s: mount the Secret and name the file instead", name, v.secret.Key, v.secret.Name)
					}
					if u, err := url.Parse(v.value); err == nil && u.User != nil {
						if _, hasPassword := u.User.Password(); hasPassword {
							t.Errorf("%s (from %s) is a URL with a password", name, v.origin)
						}
					}
				}
				// Each file the workload's own Secret provides: the Secret
				// keys are named after the flags.
				cfg, _ := m.config(t, c)
				d := m.deployment(t, w.deployment)
				for flag, file := range map[string]string{
					"database-url":  cfg.DatabaseURLFile,
					"service-token": cfg.ServiceTokenFile,
				} {
					if file != "" {
						checkSecretFile(t, d, c, file, w.secret, flag)
					}
				}
			})
		}
	}
}

// TestSecretsAreNotMountedWithSubPath: Kubernetes updates a mounted
// Secret in place by swapping a symlinked directory, which a file mounted
// with subPath does not follow, so a rotation would never reach it.
func TestSecretsAreNotMountedWithSubPath(t *testing.T) {
	for _, dir := range kustomizations {
		t.Run(dir, func(t *testing.T) {
			m := render(t, dir)
			for name, d := range m.deployments {
				spec := d.Spec.Template.Spec
				secretVolumes := map[string]bool{}
				for _, v := range spec.Volumes {
					secretVolumes[v.Name] = len(secretSources(v)) > 0
				}
				for _, c := range slices.Concat(spec.InitContainers, spec.Containers) {
					for _, vm := range c.VolumeMounts {
						if secretVolumes[vm.Name] && (vm.SubPath != "" || vm.SubPathExpr != "") {
							t.Errorf("%s/%s: Secret volume %s mounted with subPath: mount the directory", name, c.Name, vm.Name)
						}
					}
				}
			}
		})
	}
}
