package monitoringtest

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

const securityFile = "SECURITY.md"

var (
	// codePath is a repository path in backquotes, as SECURITY.md cites
	// the code: `internal/gateway/problem.go`.
	codePath = regexp.MustCompile("`((?:internal|cmd|deploy|docs|schema|client)/[A-Za-z0-9_./-]*)`")
	// relativeLink is a markdown link to a file of the repository.
	relativeLink = regexp.MustCompile(`\]\(((?:docs|deploy|internal)/[^)#\s]+)(?:#([^)\s]+))?\)`)
)

// TestSecurityPolicyCitesWhatExists keeps SECURITY.md's pointers true: the
// threat model sends readers to the code that enforces each rule, and a
// file renamed or a section retitled would leave them at nothing.
func TestSecurityPolicyCitesWhatExists(t *testing.T) {
	root := moduleRoot(t)
	doc := string(readFile(t, securityFile))
	exists := func(rel string) bool {
		_, err := os.Stat(filepath.Join(root, filepath.FromSlash(strings.TrimSuffix(rel, "/"))))
		return err == nil
	}
	paths := codePath.FindAllStringSubmatch(doc, -1)
	if len(paths) == 0 {
		t.Fatalf("%s cites no code path: has its form changed?", securityFile)
	}
	for _, m := range paths {
		if !exists(m[1]) {
			t.Errorf("%s cites %s, which does not exist", securityFile, m[1])
		}
	}
	for _, m := range relativeLink.FindAllStringSubmatch(doc, -1) {
		target, anchor := m[1], m[2]
		if !exists(target) {
			t.Errorf("%s links to %s, which does not exist", securityFile, target)
			continue
		}
		if anchor != "" && !headingAnchors(string(readFile(t, target)))[anchor] {
			t.Errorf("%s links to %s#%s: no heading has that anchor", securityFile, target, anchor)
		}
	}
}
