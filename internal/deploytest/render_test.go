package deploytest

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// The kustomizations under test, relative to the module root.
const (
	baseDir       = "deploy/kubernetes/base"
	productionDir = "deploy/kubernetes/overlays/production"
)

// kustomizations is every kustomization the shared checks run on: the base
// is applied by nobody directly, but an overlay inherits whatever it gets
// wrong.
var kustomizations = []string{baseDir, productionDir}

// strictDecoder decodes only the built-in kinds the manifests may contain,
// and fails on unknown or duplicate fields (case-sensitively, as the API
// server does), so a misspelt field is an error instead of a silently
// dropped setting.
var strictDecoder = func() runtime.Decoder {
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{
		appsv1.AddToScheme,
		autoscalingv2.AddToScheme,
		corev1.AddToScheme,
		networkingv1.AddToScheme,
		policyv1.AddToScheme,
	} {
		utilruntime.Must(add(scheme))
	}
	return serializer.NewCodecFactory(scheme, serializer.EnableStrict).UniversalDeserializer()
}()

// objectKey names one rendered object.
type objectKey struct{ kind, name string }

func (k objectKey) String() string { return k.kind + "/" + k.name }

// manifests is one rendered kustomization, decoded.
type manifests struct {
	dir             string
	keys            []objectKey
	namespaces      map[string]*corev1.Namespace
	deployments     map[string]*appsv1.Deployment
	services        map[string]*corev1.Service
	configMaps      map[string]*corev1.ConfigMap
	serviceAccounts map[string]*corev1.ServiceAccount
	pdbs            map[string]*policyv1.PodDisruptionBudget
	hpas            map[string]*autoscalingv2.HorizontalPodAutoscaler
	networkPolicies map[string]*networkingv1.NetworkPolicy
	spiceDBClusters map[string]*spiceDBCluster
	// objectNamespaces holds metadata.namespace of every object.
	objectNamespaces map[objectKey]string
}

// moduleRoot finds the directory holding go.mod above the test's working
// directory.
func moduleRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatalf("working directory: %v", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the working directory")
		}
		dir = parent
	}
}

// render builds the kustomization in dir (relative to the module root) the
// way `kubectl apply -k` would, and decodes every object.
func render(t *testing.T, dir string) *manifests {
	t.Helper()
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	resources, err := k.Run(filesys.MakeFsOnDisk(), filepath.Join(moduleRoot(t), dir))
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	m := &manifests{
		dir:              dir,
		namespaces:       map[string]*corev1.Namespace{},
		deployments:      map[string]*appsv1.Deployment{},
		services:         map[string]*corev1.Service{},
		configMaps:       map[string]*corev1.ConfigMap{},
		serviceAccounts:  map[string]*corev1.ServiceAccount{},
		pdbs:             map[string]*policyv1.PodDisruptionBudget{},
		hpas:             map[string]*autoscalingv2.HorizontalPodAutoscaler{},
		networkPolicies:  map[string]*networkingv1.NetworkPolicy{},
		spiceDBClusters:  map[string]*spiceDBCluster{},
		objectNamespaces: map[objectKey]string{},
	}
	for _, r := range resources.Resources() {
		data, err := r.MarshalJSON()
		if err != nil {
			t.Fatalf("%s: %s: encode: %v", dir, r.CurId(), err)
		}
		if err := m.add(data); err != nil {
			t.Fatalf("%s: %v", dir, err)
		}
	}
	return m
}

// add decodes one object strictly and files it by kind.
func (m *manifests) add(data []byte) error {
	obj, err := decodeObject(data)
	if err != nil {
		return err
	}
	var key objectKey
	var meta *metav1.ObjectMeta
	switch o := obj.(type) {
	case *corev1.Namespace:
		key, meta = objectKey{"Namespace", o.Name}, &o.ObjectMeta
		m.namespaces[o.Name] = o
	case *appsv1.Deployment:
		key, meta = objectKey{"Deployment", o.Name}, &o.ObjectMeta
		m.deployments[o.Name] = o
	case *corev1.Service:
		key, meta = objectKey{"Service", o.Name}, &o.ObjectMeta
		m.services[o.Name] = o
	case *corev1.ConfigMap:
		key, meta = objectKey{"ConfigMap", o.Name}, &o.ObjectMeta
		m.configMaps[o.Name] = o
	case *corev1.ServiceAccount:
		key, meta = objectKey{"ServiceAccount", o.Name}, &o.ObjectMeta
		m.serviceAccounts[o.Name] = o
	case *policyv1.PodDisruptionBudget:
		key, meta = objectKey{"PodDisruptionBudget", o.Name}, &o.ObjectMeta
		m.pdbs[o.Name] = o
	case *autoscalingv2.HorizontalPodAutoscaler:
		key, meta = objectKey{"HorizontalPodAutoscaler", o.Name}, &o.ObjectMeta
		m.hpas[o.Name] = o
	case *networkingv1.NetworkPolicy:
		key, meta = objectKey{"NetworkPolicy", o.Name}, &o.ObjectMeta
		m.networkPolicies[o.Name] = o
	case *spiceDBCluster:
		key, meta = objectKey{"SpiceDBCluster", o.Metadata.Name}, &o.Metadata
		m.spiceDBClusters[o.Metadata.Name] = o
	default:
		// A Secret lands here too: the manifests reference Secrets, they
		// never carry one.
		return fmt.Errorf("unexpected object %T", obj)
	}
	if slices.Contains(m.keys, key) {
		return fmt.Errorf("%s rendered twice", key)
	}
	m.keys = append(m.keys, key)
	m.objectNamespaces[key] = meta.Namespace
	return nil
}

// decodeObject decodes one object of the rendered output strictly: a
// SpiceDBCluster into the operator's documented fields, everything else
// into its Kubernetes API type.
func decodeObject(data []byte) (any, error) {
	var tm metav1.TypeMeta
	if err := json.Unmarshal(data, &tm); err != nil {
		return nil, fmt.Errorf("type of object: %w", err)
	}
	if tm.GroupVersionKind() == spiceDBClusterGVK {
		return decodeSpiceDBCluster(data)
	}
	obj, _, err := strictDecoder.Decode(data, nil, nil)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", tm.APIVersion, tm.Kind, err)
	}
	return obj, nil
}

// hashSuffix is what kustomize appends to generated ConfigMaps.
var hashSuffix = regexp.MustCompile(`-[a-z0-9]{10}$`)

// generatedName is the name a generated object had before kustomize added
// its content hash, and whether it had one.
func generatedName(name string) (string, bool) {
	loc := hashSuffix.FindStringIndex(name)
	if loc == nil {
		return name, false
	}
	return name[:loc[0]], true
}

// deployment returns the named Deployment or fails the test.
func (m *manifests) deployment(t *testing.T, name string) *appsv1.Deployment {
	t.Helper()
	d, ok := m.deployments[name]
	if !ok {
		t.Fatalf("%s: no Deployment %s", m.dir, name)
	}
	return d
}

// container returns the named container of d or fails the test.
func container(t *testing.T, d *appsv1.Deployment, name string) corev1.Container {
	t.Helper()
	for _, c := range d.Spec.Template.Spec.Containers {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("Deployment %s has no container %s", d.Name, name)
	return corev1.Container{}
}

// theSpiceDBCluster returns the one SpiceDBCluster or fails the test.
func (m *manifests) theSpiceDBCluster(t *testing.T) *spiceDBCluster {
	t.Helper()
	if len(m.spiceDBClusters) != 1 {
		t.Fatalf("%s: %d SpiceDBClusters, want 1", m.dir, len(m.spiceDBClusters))
	}
	for _, c := range m.spiceDBClusters {
		return c
	}
	return nil
}

// namespace is the namespace every namespaced object of m is in ("" for
// none).
func (m *manifests) namespace(t *testing.T) string {
	t.Helper()
	var ns []string
	for k, n := range m.objectNamespaces {
		if k.kind == "Namespace" {
			continue // cluster-scoped
		}
		if !slices.Contains(ns, n) {
			ns = append(ns, n)
		}
	}
	if len(ns) != 1 {
		t.Fatalf("%s: objects in namespaces %q, want one", m.dir, ns)
	}
	return ns[0]
}

// errNotFound marks a reference to an object the render does not have.
var errNotFound = errors.New("not rendered")
