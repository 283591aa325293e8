package deploytest

import (
	"fmt"
	"net/netip"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/tenantgate/tenantgate/internal/app"
)

// peer is one end of a connection: a pod (namespace and labels) or an
// address outside the cluster.
type peer struct {
	name      string
	namespace string
	labels    map[string]string
	ip        netip.Addr // set for an address outside the cluster
}

func (p peer) isPod() bool { return !p.ip.IsValid() }

// policyEvaluator answers whether NetworkPolicies let a connection through,
// by the rules of the NetworkPolicy API: a pod selected by no policy of a
// direction allows everything in it; a selected pod allows what any rule of
// any selecting policy allows, and a connection needs both the sender's
// egress and the receiver's ingress.
type policyEvaluator struct {
	t        *testing.T
	policies []*networkingv1.NetworkPolicy
}

func (e policyEvaluator) allows(from, to peer, port int32, proto corev1.Protocol) bool {
	e.t.Helper()
	return e.direction(from, networkingv1.PolicyTypeEgress, to, port, proto) &&
		e.direction(to, networkingv1.PolicyTypeIngress, from, port, proto)
}

// direction decides for pod self whether traffic of direction typ with
// other is allowed on port (a port of the receiving pod).
func (e policyEvaluator) direction(self peer, typ networkingv1.PolicyType, other peer, port int32, proto corev1.Protocol) bool {
	e.t.Helper()
	if !self.isPod() {
		return true // outside the cluster, nothing here decides
	}
	selected := false
	for _, p := range e.policies {
		if p.Namespace != self.namespace || !hasType(p, typ) {
			continue
		}
		if !selectsOrAll(e.t, p.Spec.PodSelector, self.labels) {
			continue
		}
		selected = true
		if typ == networkingv1.PolicyTypeIngress {
			for _, r := range p.Spec.Ingress {
				if e.portsMatch(r.Ports, port, proto) && e.peersMatch(p, r.From, other) {
					return true
				}
			}
		} else {
			for _, r := range p.Spec.Egress {
				if e.portsMatch(r.Ports, port, proto) && e.peersMatch(p, r.To, other) {
					return true
				}
			}
		}
	}
	return !selected
}

func hasType(p *networkingv1.NetworkPolicy, typ networkingv1.PolicyType) bool {
	for _, t := range p.Spec.PolicyTypes {
		if t == typ {
			return true
		}
	}
	return false
}

func (e policyEvaluator) portsMatch(ports []networkingv1.NetworkPolicyPort, port int32, proto corev1.Protocol) bool {
	e.t.Helper()
	if len(ports) == 0 {
		return true
	}
	for _, p := range ports {
		pp := corev1.ProtocolTCP
		if p.Protocol != nil {
			pp = *p.Protocol
		}
		if pp != proto {
			continue
		}
		if p.Port == nil {
			return true
		}
		if p.Port.Type == intstr.String {
			// A named port means the receiving pod's port of that name;
			// numbers keep the policies readable without the pods.
			e.t.Fatalf("NetworkPolicy port %q: use numbers", p.Port.StrVal)
		}
		last := p.Port.IntVal
		if p.EndPort != nil {
			last = *p.EndPort
		}
		if port >= p.Port.IntVal && port <= last {
			return true
		}
	}
	return false
}

func (e policyEvaluator) peersMatch(p *networkingv1.NetworkPolicy, peers []networkingv1.NetworkPolicyPeer, other peer) bool {
	e.t.Helper()
	if len(peers) == 0 {
		return true
	}
	for _, np := range peers {
		switch {
		case np.IPBlock != nil:
			if !other.isPod() && inBlock(e.t, np.IPBlock, other.ip) {
				return true
			}
		case np.NamespaceSelector != nil:
			nsLabels := map[string]string{"kubernetes.io/metadata.name": other.namespace}
			if other.isPod() && selectsOrAll(e.t, *np.NamespaceSelector, nsLabels) &&
				(np.PodSelector == nil || selectsOrAll(e.t, *np.PodSelector, other.labels)) {
				return true
			}
		case np.PodSelector != nil:
			if other.isPod() && other.namespace == p.Namespace && selectsOrAll(e.t, *np.PodSelector, other.labels) {
				return true
			}
		default:
			e.t.Fatalf("NetworkPolicy %s: empty peer", p.Name)
		}
	}
	return false
}

// selectsOrAll is a NetworkPolicy selector: the empty one selects all.
func selectsOrAll(t *testing.T, sel metav1.LabelSelector, podLabels map[string]string) bool {
	t.Helper()
	if len(sel.MatchLabels) == 0 && len(sel.MatchExpressions) == 0 {
		return true
	}
	return selects(t, &sel, podLabels)
}

func inBlock(t *testing.T, b *networkingv1.IPBlock, ip netip.Addr) bool {
	t.Helper()
	contains := func(cidr string) bool {
		prefix, err := netip.ParsePrefix(cidr)
		if err != nil {
			t.Fatalf("ipBlock %q: %v", cidr, err)
		}
		return prefix.Contains(ip)
	}
	if !contains(b.CIDR) {
		return false
	}
	for _, ex := range b.Except {
		if contains(ex) {
			return false
		}
	}
	return true
}

func TestNetworkPolicies(t *testing.T) {
	for _, dir := range kustomizations {
		t.Run(dir, func(t *testing.T) {
			m := render(t, dir)
			ns := m.namespace(t)
			var policies []*networkingv1.NetworkPolicy
			for _, p := range m.networkPolicies {
				if len(p.Spec.PolicyTypes) == 0 {
					// Left out, the types depend on which rule lists are
					// present: one removed rule could drop the isolation.
					t.Errorf("NetworkPolicy %s: policyTypes not spelled out", p.Name)
				}
				policies = append(policies, p)
			}
			e := policyEvaluator{t: t, policies: policies}

			gwDeploy := m.deployment(t, "tenantgate-gateway")
			gwCfg, _ := m.config(t, container(t, gwDeploy, "gateway"))
			httpPort := mustPort(t, container(t, gwDeploy, "gateway"), "http")
			syncDeploy := m.deployment(t, "tenantgate-sync")
			metricsPort := mustPort(t, container(t, syncDeploy, "sync"), "metrics")
			cluster := m.theSpiceDBCluster(t)
			_, spicedbPort := spiceDBEndpoint(t, gwCfg.SpiceDBEndpoint)

			gateway := peer{name: "gateway", namespace: ns, labels: gwDeploy.Spec.Template.Labels}
			sync := peer{name: "sync", namespace: ns, labels: syncDeploy.Spec.Template.Labels}
			spicedb := peer{name: "spicedb", namespace: ns, labels: spiceDBPodLabels(cluster.Metadata.Name)}
			neighbour := peer{name: "another pod of the namespace", namespace: ns, labels: map[string]string{"app": "other"}}
			client := peer{name: "a pod of another namespace", namespace: "apps", labels: map[string]string{"app": "shop"}}
			dns := peer{name: "kube-dns", namespace: "kube-system", labels: map[string]string{"k8s-app": "kube-dns"}}
			postgres := peer{name: "a managed Postgres", ip: netip.MustParseAddr("10.20.30.40")}
			idp := peer{name: "the identity provider", ip: netip.MustParseAddr("203.0.113.7")}
			if ns == "" {
				client.namespace = "apps"
			}
			const postgresPort = 5432

			tests := []struct {
				from, to peer
				port     int32
				proto    corev1.Protocol
				want     bool
			}{
				{client, gateway, httpPort, corev1.ProtocolTCP, true},
				{gateway, spicedb, int32(spicedbPort), corev1.ProtocolTCP, true},
				{gateway, postgres, postgresPort, corev1.ProtocolTCP, true},
				{gateway, dns, 53, corev1.ProtocolUDP, true},
				{gateway, dns, 53, corev1.ProtocolTCP, true},
				{gateway, idp, 443, corev1.ProtocolTCP, true}, // the JWKS
				{sync, spicedb, int32(spicedbPort), corev1.ProtocolTCP, true},
				{sync, postgres, postgresPort, corev1.ProtocolTCP, true},
				{sync, dns, 53, corev1.ProtocolUDP, true},
				{client, sync, metricsPort, corev1.ProtocolTCP, true}, // Prometheus
				{spicedb, spicedb, spiceDBDispatchPort, corev1.ProtocolTCP, true},
				{client, spicedb, spiceDBMetricsPort, corev1.ProtocolTCP, true}, // Prometheus

				{client, gateway, 22, corev1.ProtocolTCP, false},
				{client, gateway, httpPort, corev1.ProtocolUDP, false},
				{gateway, idp, 22, corev1.ProtocolTCP, false},
				{gateway, spicedb, spiceDBDispatchPort, corev1.ProtocolTCP, false},
				{gateway, sync, metricsPort, corev1.ProtocolTCP, false},
				{sync, idp, 443, corev1.ProtocolTCP, false}, // the sync needs no internet
				{client, sync, httpPort, corev1.ProtocolTCP, false},
				{neighbour, spicedb, int32(spicedbPort), corev1.ProtocolTCP, false},
				{client, spicedb, int32(spicedbPort), corev1.ProtocolTCP, false},
				{client, spicedb, spiceDBDispatchPort, corev1.ProtocolTCP, false},
			}
			for _, tt := range tests {
				name := fmt.Sprintf("%s -> %s:%d/%s", tt.from.name, tt.to.name, tt.port, tt.proto)
				if got := e.allows(tt.from, tt.to, tt.port, tt.proto); got != tt.want {
					t.Errorf("%s: allowed %v, want %v", name, got, tt.want)
				}
			}
			if spicedbPort != spiceDBGRPCPort {
				t.Errorf("%s is not the operator's gRPC port %d", app.EnvName("spicedb-endpoint"), spiceDBGRPCPort)
			}
		})
	}
}
