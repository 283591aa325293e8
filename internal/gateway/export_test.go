package gateway

import "github.com/prometheus/client_golang/prometheus"

// RoutePatterns lists the patterns g serves, as its mux has them.
func RoutePatterns(g *Gateway) []string {
	var patterns []string
	for _, r := range g.routeTable(prometheus.NewRegistry()) {
		patterns = append(patterns, r.pattern)
	}
	return patterns
}
