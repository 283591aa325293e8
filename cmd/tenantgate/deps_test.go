package main

import (
	"bytes"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// TestBinaryLinksNoTestCode: the production binary must not link the test
// helpers (internal/testutil imports "testing" and builds binaries with go
// build); what the demo needs at run time lives in internal/devenv.
//
// "testing" itself is in the binary's dependencies whatever this module
// does: embedded SpiceDB and some of its dependencies import it in non-test
// code. So the rule checked is that no package of this module imports it,
// and that internal/testutil is not a dependency at all.
func TestBinaryLinksNoTestCode(t *testing.T) {
	// go test puts the go command that runs it first on PATH.
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go tool is not on PATH: %v", err)
	}
	// One line per dependency: import path, "main" for a package of this
	// module, and its imports.
	cmd := exec.CommandContext(t.Context(), goTool, "list", "-deps",
		"-f", "{{.ImportPath}}\t{{with .Module}}{{if .Main}}main{{end}}{{end}}\t{{join .Imports \" \"}}", ".")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -deps ./cmd/tenantgate: %v\n%s", err, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) < 2 {
		t.Fatalf("go list -deps listed %d packages:\n%s", len(lines), out)
	}
	var ours int
	var viaOthers []string
	for _, line := range lines {
		path, rest, _ := strings.Cut(line, "\t")
		module, imports, _ := strings.Cut(rest, "\t")
		if path == "testing" || strings.HasPrefix(path, "testing/") {
			continue
		}
		if strings.HasSuffix(path, "/internal/testutil") {
			t.Errorf("the tenantgate binary links %s", path)
		}
		importsTesting := slices.ContainsFunc(strings.Fields(imports), func(imp string) bool {
			return imp == "testing" || strings.HasPrefix(imp, "testing/")
		})
		switch {
		case module == "main":
			ours++
			if importsTesting {
				t.Errorf("%s, linked into the tenantgate binary, imports testing", path)
			}
		case importsTesting:
			viaOthers = append(viaOthers, path)
		}
	}
	if ours == 0 {
		t.Fatalf("no package of this module among the dependencies; is the -f template right?\n%s", out)
	}
	t.Logf("%d packages of this module linked; testing comes in only through %s", ours, strings.Join(viaOthers, ", "))
}
