package composetest

import (
	"maps"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/types"
)

const (
	healthy   = types.ServiceConditionHealthy
	completed = types.ServiceConditionCompletedSuccessfully
)

// oneShots run to completion; everything else runs until stopped.
var oneShots = []string{svcSpiceDBMigrate, svcMigrate, svcSeed}

func isOneShot(name string) bool { return slices.Contains(oneShots, name) }

func TestServices(t *testing.T) {
	p := stack(t)
	want := []string{svcPostgres, svcSpiceDBStore, svcSpiceDBMigrate, svcSpiceDB, svcMigrate, svcSeed, svcSync, svcDevIssuer, svcServe}
	got := slices.Sorted(maps.Keys(p.Services))
	if !slices.Equal(got, slices.Sorted(slices.Values(want))) {
		t.Fatalf("services %v, want %v", got, want)
	}
	if len(p.DisabledServices) != 0 {
		t.Errorf("services behind profiles do not start with a plain `docker compose up`: %v", slices.Sorted(maps.Keys(p.DisabledServices)))
	}
	wantVolumes := []string{"app-db", "devissuer-key", "spicedb-db"}
	if got := slices.Sorted(maps.Keys(p.Volumes)); !slices.Equal(got, wantVolumes) {
		t.Errorf("volumes %v, want %v", got, wantVolumes)
	}
}

func TestStartOrder(t *testing.T) {
	want := map[string]map[string]string{
		svcPostgres:       {},
		svcSpiceDBStore:   {},
		svcSpiceDBMigrate: {svcSpiceDBStore: healthy},
		svcSpiceDB:        {svcSpiceDBMigrate: completed},
		svcMigrate:        {svcPostgres: healthy, svcSpiceDB: healthy},
		svcSeed:           {svcMigrate: completed},
		svcSync:           {svcMigrate: completed, svcSeed: completed, svcSpiceDB: healthy},
		svcDevIssuer:      {},
		svcServe:          {svcMigrate: completed, svcSpiceDB: healthy, svcSync: healthy, svcDevIssuer: healthy},
	}
	p := stack(t)
	for name, wantDeps := range want {
		t.Run(name, func(t *testing.T) {
			s := service(t, name)
			got := map[string]string{}
			for dep, d := range s.DependsOn {
				got[dep] = d.Condition
				if !d.Required {
					t.Errorf("depends_on %s is not required: %s would start without it", dep, name)
				}
			}
			if !maps.Equal(got, wantDeps) {
				t.Fatalf("depends_on %v, want %v", got, wantDeps)
			}
		})
	}

	// What the order is for, as pairs (before, after) that must hold
	// through some chain of conditions, whatever the direct edges are.
	mustPrecede := [][2]string{
		{svcPostgres, svcSync},               // the sync needs wal_level=logical and its slot
		{svcMigrate, svcSync},                // the publication exists
		{svcSeed, svcServe},                  // the gateway answers on the sample data
		{svcSpiceDBMigrate, svcSync},         // SpiceDB's tables exist before anything writes
		{svcSpiceDBStore, svcServe},          // SpiceDB's storage is up under it
		{svcSpiceDB, svcMigrate},             // migrate writes the SpiceDB schema
		{svcMigrate, svcServe},               // the SpiceDB schema serve waits for is written
		{svcSync, svcServe},                  // serve's readiness means SpiceDB is filled
		{svcDevIssuer, svcServe},             // the JWKS file serve reads at start is written
		{svcSpiceDBMigrate, svcSpiceDB},      // `spicedb serve` does not migrate
		{svcPostgres, svcSeed},               // the seed connects to it
		{svcMigrate, svcSeed},                // the tables exist
		{svcSpiceDBStore, svcSpiceDBMigrate}, // it has something to migrate
	}
	for _, pair := range mustPrecede {
		if !startsBefore(p, pair[0], pair[1]) {
			t.Errorf("%s does not wait for %s", pair[1], pair[0])
		}
	}
	if cycle := dependencyCycle(p); cycle != nil {
		t.Errorf("depends_on has a cycle: %v", cycle)
	}
}

// startsBefore reports whether after waits for before through a chain of
// depends_on conditions that are each met only once the dependency is up
// (healthy) or done (completed).
func startsBefore(p *types.Project, before, after string) bool {
	seen := map[string]bool{}
	var walk func(string) bool
	walk = func(name string) bool {
		if seen[name] {
			return false
		}
		seen[name] = true
		for dep, d := range p.Services[name].DependsOn {
			if d.Condition != healthy && d.Condition != completed {
				continue
			}
			if dep == before || walk(dep) {
				return true
			}
		}
		return false
	}
	return walk(after)
}

func dependencyCycle(p *types.Project) []string {
	const (
		unvisited = iota
		visiting
		done
	)
	state := map[string]int{}
	var path []string
	var visit func(string) []string
	visit = func(name string) []string {
		switch state[name] {
		case visiting:
			return append(slices.Clone(path), name)
		case done:
			return nil
		}
		state[name] = visiting
		path = append(path, name)
		for _, dep := range slices.Sorted(maps.Keys(p.Services[name].DependsOn)) {
			if c := visit(dep); c != nil {
				return c
			}
		}
		path = path[:len(path)-1]
		state[name] = done
		return nil
	}
	for _, name := range slices.Sorted(maps.Keys(p.Services)) {
		if c := visit(name); c != nil {
			return c
		}
	}
	return nil
}

// TestConditionsCanBeMet: compose waits forever (or fails at once) on a
// condition its dependency cannot meet.
func TestConditionsCanBeMet(t *testing.T) {
	p := stack(t)
	for _, name := range slices.Sorted(maps.Keys(p.Services)) {
		for dep, d := range p.Services[name].DependsOn {
			target, ok := p.Services[dep]
			if !ok {
				t.Errorf("%s depends on %s, which is no service", name, dep)
				continue
			}
			switch d.Condition {
			case healthy:
				if h := target.HealthCheck; h == nil || h.Disable || len(h.Test) == 0 {
					t.Errorf("%s waits for %s to be healthy, but %s has no healthcheck", name, dep, dep)
				}
			case completed:
				if !isOneShot(dep) {
					t.Errorf("%s waits for %s to complete, but %s runs until stopped", name, dep, dep)
				}
			default:
				t.Errorf("%s depends on %s with condition %q: only healthy or completed mean ready", name, dep, d.Condition)
			}
		}
	}
}

func TestLifecycle(t *testing.T) {
	p := stack(t)
	for _, name := range slices.Sorted(maps.Keys(p.Services)) {
		t.Run(name, func(t *testing.T) {
			s := p.Services[name]
			if isOneShot(name) {
				// A restarting one-shot never counts as completed.
				if s.Restart != "" && s.Restart != types.RestartPolicyNo {
					t.Errorf("one-shot with restart %q", s.Restart)
				}
				if len(s.Ports) != 0 || s.HealthCheck != nil {
					t.Errorf("one-shot publishes ports or has a healthcheck")
				}
				return
			}
			if s.Restart != types.RestartPolicyUnlessStopped {
				t.Errorf("restart %q, want %q", s.Restart, types.RestartPolicyUnlessStopped)
			}
			h := s.HealthCheck
			if h == nil || h.Disable || len(h.Test) < 2 {
				t.Fatalf("long-running service without a healthcheck")
			}
			// Exec form: the distroless and SpiceDB images have no shell.
			if h.Test[0] != "CMD" {
				t.Errorf("healthcheck %q: want the exec form [\"CMD\", ...]", h.Test)
			}
			if h.Interval == nil || h.Timeout == nil || h.Retries == nil || *h.Retries == 0 {
				t.Errorf("healthcheck without interval, timeout and retries: %+v", h)
			} else if budget := time.Duration(*h.Interval) * time.Duration(*h.Retries); budget < 30*time.Second {
				t.Errorf("healthcheck gives up after %s; a cold start takes longer", budget)
			}
		})
	}
}

func TestSyncIsOneReplica(t *testing.T) {
	s := service(t, svcSync)
	if s.Deploy == nil || s.Deploy.Replicas == nil || *s.Deploy.Replicas != 1 {
		t.Errorf("deploy.replicas of the sync is not set to 1")
	}
	if s.GetScale() != 1 {
		t.Errorf("sync scale %d, want 1", s.GetScale())
	}
}

// Ports published on the host, and the service and container port of each.
var wantPorts = map[string]string{
	svcPostgres:  "5432",
	svcSpiceDB:   "50051",
	svcSync:      "9090",
	svcDevIssuer: "8081",
	svcServe:     "8080",
}

func TestPorts(t *testing.T) {
	p := stack(t)
	hostPorts := map[string]string{}
	for _, name := range slices.Sorted(maps.Keys(p.Services)) {
		s := p.Services[name]
		want, publishes := wantPorts[name]
		if !publishes {
			if len(s.Ports) != 0 {
				t.Errorf("%s publishes %v, want nothing", name, s.Ports)
			}
			continue
		}
		if len(s.Ports) != 1 {
			t.Errorf("%s publishes %d ports, want 1", name, len(s.Ports))
			continue
		}
		port := s.Ports[0]
		// Passwords and a token minter are public here: loopback only.
		if port.HostIP != "127.0.0.1" {
			t.Errorf("%s publishes on %q, want 127.0.0.1 only", name, port.HostIP)
		}
		if port.Published != want || port.Target != uint32(mustAtoi(t, want)) || port.Protocol != "tcp" {
			t.Errorf("%s publishes %s:%d/%s, want %s:%s/tcp", name, port.Published, port.Target, port.Protocol, want, want)
		}
		if other, taken := hostPorts[port.Published]; taken {
			t.Errorf("%s and %s both publish host port %s", other, name, port.Published)
		}
		hostPorts[port.Published] = name
	}
}

// TestPortsCommented reads the raw file: comments are not in the model.
func TestPortsCommented(t *testing.T) {
	lines := strings.Split(readRootFile(t, composeFile), "\n")
	portItem := regexp.MustCompile(`^(\s*)- "?[0-9.:]+"?\s*(#\s*(\S.*))?$`)
	var inPorts bool
	var portsIndent, found int
	for i, line := range lines {
		trimmed := strings.TrimSpace(line)
		indent := len(line) - len(strings.TrimLeft(line, " "))
		if inPorts {
			if strings.HasPrefix(trimmed, "- ") && indent >= portsIndent {
				found++
				m := portItem.FindStringSubmatch(line)
				switch {
				case m == nil:
					t.Errorf("%s:%d: port entry %q is not a quoted short-syntax port", composeFile, i+1, trimmed)
				case m[3] == "":
					t.Errorf("%s:%d: port %q has no comment saying what it is", composeFile, i+1, trimmed)
				}
				continue
			}
			if trimmed == "" || strings.HasPrefix(trimmed, "#") {
				continue
			}
			inPorts = false
		}
		if trimmed == "ports:" {
			inPorts, portsIndent = true, indent
		}
	}
	if want := len(wantPorts); found != want {
		t.Errorf("found %d port entries in the raw file, the model has %d", found, want)
	}
}

func TestImagesPinned(t *testing.T) {
	p := stack(t)
	postgresTags := map[string]bool{}
	for _, name := range slices.Sorted(maps.Keys(p.Services)) {
		t.Run(name, func(t *testing.T) {
			s := p.Services[name]
			repo, tag, digest := splitImage(s.Image)
			switch {
			case s.Image == "":
				t.Fatal("no image: compose would name a build after the project and pull nothing pinned")
			case tag == "" && digest == "":
				t.Fatalf("image %q has neither tag nor digest", s.Image)
			case tag == "latest":
				t.Fatalf("image %q is not pinned", s.Image)
			}
			if s.Build != nil {
				// Built here, never pulled: a local name that no registry has.
				if tag != "local" || strings.Contains(repo, "/") {
					t.Errorf("built image %q: want a registry-less name:local", s.Image)
				}
				return
			}
			// A pulled image names an exact release, not a moving major
			// or minor tag.
			if !regexp.MustCompile(`^v?\d+\.\d+(\.\d+)?(-[a-z0-9.]+)?$`).MatchString(tag) && digest == "" {
				t.Errorf("image %q: tag %q is not an exact version", s.Image, tag)
			}
			switch repo {
			case spicedbImageRepo:
				if want := requiredVersion(t, "github.com/authzed/spicedb"); tag != want {
					t.Errorf("image %q: go.mod requires SpiceDB %s", s.Image, want)
				}
			case postgresImageRepo:
				postgresTags[tag] = true
			default:
				t.Errorf("image %q: unexpected repository", s.Image)
			}
		})
	}
	// The seed's psql and both servers are one PostgreSQL release.
	if len(postgresTags) != 1 {
		t.Errorf("PostgreSQL images use tags %v, want one", slices.Sorted(maps.Keys(postgresTags)))
	}

	// Services built from one target share one image, so compose builds it
	// once and they all run the same binary; and one image name is one
	// target, or the last build would overwrite the other.
	byTarget, byImage := map[string]string{}, map[string]string{}
	for _, name := range slices.Sorted(maps.Keys(p.Services)) {
		s := p.Services[name]
		if s.Build == nil {
			continue
		}
		if img, ok := byTarget[s.Build.Target]; ok && img != s.Image {
			t.Errorf("target %s is built as %s and as %s", s.Build.Target, img, s.Image)
		}
		if target, ok := byImage[s.Image]; ok && target != s.Build.Target {
			t.Errorf("image %s is built from target %s and from %s", s.Image, target, s.Build.Target)
		}
		byTarget[s.Build.Target], byImage[s.Image] = s.Image, s.Build.Target
	}
}

// splitImage splits repo[:tag][@digest].
func splitImage(image string) (repo, tag, digest string) {
	repo, digest, _ = strings.Cut(image, "@")
	if i := strings.LastIndex(repo, ":"); i > strings.LastIndex(repo, "/") {
		repo, tag = repo[:i], repo[i+1:]
	}
	return repo, tag, digest
}

func TestSplitImage(t *testing.T) {
	tests := []struct{ image, repo, tag, digest string }{
		{"postgres:17.6-alpine", "postgres", "17.6-alpine", ""},
		{"postgres", "postgres", "", ""},
		{"localhost:5000/x/y", "localhost:5000/x/y", "", ""},
		{"localhost:5000/x/y:v1", "localhost:5000/x/y", "v1", ""},
		{"authzed/spicedb:v1.56.2@sha256:abc", "authzed/spicedb", "v1.56.2", "sha256:abc"},
		{"authzed/spicedb@sha256:abc", "authzed/spicedb", "", "sha256:abc"},
	}
	for _, tt := range tests {
		repo, tag, digest := splitImage(tt.image)
		if repo != tt.repo || tag != tt.tag || digest != tt.digest {
			t.Errorf("splitImage(%q) = %q, %q, %q; want %q, %q, %q", tt.image, repo, tag, digest, tt.repo, tt.tag, tt.digest)
		}
	}
}

// TestOneShotsAreAwaited: `docker compose up --wait` counts a container that
// exited, even with 0, as a failure unless a long-running service waits for
// it to complete. Every one-shot needs such a service, or the documented
// `up --wait` would report a healthy stack as failed.
func TestOneShotsAreAwaited(t *testing.T) {
	p := stack(t)
	for _, oneShot := range oneShots {
		var awaitedBy []string
		for _, name := range slices.Sorted(maps.Keys(p.Services)) {
			if d, ok := p.Services[name].DependsOn[oneShot]; ok && !isOneShot(name) && d.Condition == completed {
				awaitedBy = append(awaitedBy, name)
			}
		}
		if len(awaitedBy) == 0 {
			t.Errorf("no long-running service waits for one-shot %s to complete", oneShot)
		}
	}
}

// TestReadmeMatchesStack keeps the documented commands working.
func TestReadmeMatchesStack(t *testing.T) {
	readme := readRootFile(t, "README.md")
	_, section, ok := strings.Cut(readme, "## Local stack (docker compose)")
	if !ok {
		t.Fatal("README.md has no \"Local stack (docker compose)\" section")
	}
	if next := strings.Index(section, "\n## "); next >= 0 {
		section = section[:next]
	}
	spicedbKey := env(t, service(t, svcSpiceDB))["SPICEDB_GRPC_PRESHARED_KEY"]
	for _, want := range []string{
		"docker compose up",
		"http://localhost:" + wantPorts[svcDevIssuer] + "/token?sub=",
		"http://localhost:" + wantPorts[svcServe] + "/v1/check",
		"psql -U " + env(t, service(t, svcPostgres))["POSTGRES_USER"],
		spicedbKey,
	} {
		if !strings.Contains(section, want) {
			t.Errorf("the README's local stack section does not mention %q", want)
		}
	}
	for name, port := range wantPorts {
		if !strings.Contains(section, "| "+port+" |") {
			t.Errorf("the README's port table lacks %s (%s)", port, name)
		}
	}
}
