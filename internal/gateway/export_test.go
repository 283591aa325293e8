package gateway

// RoutePatterns lists the patterns g serves, as its mux has them.
func RoutePatterns(g *Gateway) []string {
	var patterns []string
	for _, r := range g.routeTable() {
		patterns = append(patterns, r.pattern)
	}
	return patterns
}
