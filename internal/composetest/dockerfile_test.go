package composetest

import (
	"maps"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// instruction is one Dockerfile instruction, continuation lines joined,
// with the comment lines right above it.
type instruction struct {
	line     int
	cmd      string // upper case
	args     string
	comments []string
}

type stage struct {
	name, from string
	body       []instruction
}

// parseDockerfile splits a Dockerfile into stages. It knows what this
// repository's Dockerfile uses: no heredocs, no escape directive.
func parseDockerfile(t *testing.T, text string) []stage {
	t.Helper()
	var stages []stage
	var comments []string
	lines := strings.Split(text, "\n")
	for i := 0; i < len(lines); i++ {
		line := strings.TrimSpace(lines[i])
		switch {
		case line == "":
			comments = nil
			continue
		case strings.HasPrefix(line, "#"):
			comments = append(comments, strings.TrimSpace(strings.TrimPrefix(line, "#")))
			continue
		}
		start := i
		for strings.HasSuffix(line, `\`) && i+1 < len(lines) {
			i++
			next := strings.TrimSpace(lines[i])
			if strings.HasPrefix(next, "#") {
				continue // a comment inside a continued instruction
			}
			line = strings.TrimSuffix(line, `\`) + " " + next
		}
		cmd, args, _ := strings.Cut(line, " ")
		in := instruction{line: start + 1, cmd: strings.ToUpper(cmd), args: strings.Join(strings.Fields(args), " "), comments: comments}
		comments = nil
		if in.cmd == "FROM" {
			fields := strings.Fields(in.args)
			st := stage{from: fields[0]}
			if len(fields) == 3 && strings.EqualFold(fields[1], "AS") {
				st.name = fields[2]
			}
			stages = append(stages, st)
			continue
		}
		if len(stages) == 0 {
			t.Fatalf("Dockerfile:%d: %s before the first FROM", in.line, in.cmd)
		}
		stages[len(stages)-1].body = append(stages[len(stages)-1].body, in)
	}
	return stages
}

func (s stage) all(cmd string) []instruction {
	var out []instruction
	for _, in := range s.body {
		if in.cmd == cmd {
			out = append(out, in)
		}
	}
	return out
}

// copiedTo lists the destination paths of a stage's COPY instructions: a
// directory destination (ending in /) gets each source's base name.
func (s stage) copiedTo() []string {
	var out []string
	for _, in := range s.all("COPY") {
		var args []string
		for _, f := range strings.Fields(in.args) {
			if !strings.HasPrefix(f, "--") {
				args = append(args, f)
			}
		}
		if len(args) < 2 {
			continue
		}
		dest := args[len(args)-1]
		if !strings.HasSuffix(dest, "/") {
			out = append(out, dest)
			continue
		}
		for _, src := range args[:len(args)-1] {
			out = append(out, dest+src[strings.LastIndex(src, "/")+1:])
		}
	}
	return out
}

func TestDockerfile(t *testing.T) {
	stages := parseDockerfile(t, readRootFile(t, "Dockerfile"))
	byName := map[string]stage{}
	for _, st := range stages {
		byName[st.name] = st
	}
	if want := []string{"build", devissuerTarget, tenantgateTarget}; !slices.Equal(slices.Sorted(maps.Keys(byName)), want) {
		t.Fatalf("stages %v, want %v", slices.Sorted(maps.Keys(byName)), want)
	}
	// `docker build .` without --target must make tenantgate, not the
	// token minter.
	if last := stages[len(stages)-1].name; last != tenantgateTarget {
		t.Errorf("the last (default) stage is %q, want %q", last, tenantgateTarget)
	}

	t.Run("build", func(t *testing.T) {
		build := byName["build"]
		goVersion := goMod(t).Go.Version
		if !regexp.MustCompile(`^golang:` + regexp.QuoteMeta(goVersion) + `(-[a-z0-9.]+)?$`).MatchString(build.from) {
			t.Errorf("build stage FROM %s: want golang:%s, the go directive of go.mod", build.from, goVersion)
		}
		var env, run string
		for _, in := range build.all("ENV") {
			env += in.args + " "
		}
		for _, in := range build.all("RUN") {
			if strings.Contains(in.args, "go build") {
				run = in.args
			}
		}
		for _, want := range []string{"CGO_ENABLED=0", "GOTOOLCHAIN=local"} {
			if !strings.Contains(env, want) && !strings.Contains(run, want) {
				t.Errorf("the go build does not run with %s", want)
			}
		}
		for _, want := range []string{"-trimpath", "./cmd/tenantgate", "./cmd/devissuer", "./deploy/compose/healthprobe"} {
			if !strings.Contains(run, want) {
				t.Errorf("go build %q lacks %s", run, want)
			}
		}
	})

	// The targets compose builds, with the binary each runs and the ports
	// compose publishes from it.
	finals := []struct {
		name       string
		entrypoint string
		ports      []string
	}{
		{tenantgateTarget, "/usr/local/bin/tenantgate", []string{wantPorts[svcServe], wantPorts[svcSync]}},
		{devissuerTarget, "/usr/local/bin/devissuer", []string{wantPorts[svcDevIssuer]}},
	}
	for _, tt := range finals {
		t.Run(tt.name, func(t *testing.T) {
			st := byName[tt.name]
			if !regexp.MustCompile(`^gcr\.io/distroless/static-debian\d+:nonroot$`).MatchString(st.from) {
				t.Errorf("FROM %s: want gcr.io/distroless/static-debianN:nonroot", st.from)
			}
			users := st.all("USER")
			if len(users) != 1 || !regexp.MustCompile(`^[1-9][0-9]*(:[1-9][0-9]*)?$`).MatchString(users[0].args) {
				t.Errorf("USER %v: want one numeric non-root user", users)
			}
			entry := st.all("ENTRYPOINT")
			if len(entry) != 1 || entry[0].args != `["`+tt.entrypoint+`"]` {
				t.Errorf("ENTRYPOINT %v, want [%q]", entry, tt.entrypoint)
			}
			copied := st.copiedTo()
			for _, bin := range []string{tt.entrypoint, "/usr/local/bin/healthprobe"} {
				if !slices.Contains(copied, bin) {
					t.Errorf("%s is not copied into the image (copied: %v)", bin, copied)
				}
			}
			var exposed []string
			for _, in := range st.all("EXPOSE") {
				for _, port := range strings.Fields(in.args) {
					exposed = append(exposed, port)
					// Every exposed port says what it serves.
					if !slices.ContainsFunc(in.comments, func(c string) bool { return strings.HasPrefix(c, port+":") }) {
						t.Errorf("Dockerfile:%d: EXPOSE %s has no comment \"# %s: what it serves\" above it", in.line, port, port)
					}
				}
			}
			if !slices.Equal(slices.Sorted(slices.Values(exposed)), slices.Sorted(slices.Values(tt.ports))) {
				t.Errorf("EXPOSE %v, want the ports compose publishes from it: %v", exposed, tt.ports)
			}
		})
	}

	// Every healthcheck of a built service runs a binary its image has.
	p := stack(t)
	for _, name := range slices.Sorted(maps.Keys(p.Services)) {
		s := p.Services[name]
		if s.Build == nil || s.HealthCheck == nil || len(s.HealthCheck.Test) < 2 {
			continue
		}
		if bin := s.HealthCheck.Test[1]; !slices.Contains(byName[s.Build.Target].copiedTo(), bin) {
			t.Errorf("service %s: healthcheck runs %s, which the %s image lacks", name, bin, s.Build.Target)
		}
	}
}

func TestDockerignore(t *testing.T) {
	patterns := map[string]bool{}
	for _, line := range strings.Split(readRootFile(t, ".dockerignore"), "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			patterns[line] = true
		}
	}
	// .git is large and the image must not depend on it; the go build
	// needs go.mod, go.sum and every non-test .go file with its embeds.
	if !patterns[".git"] {
		t.Error(".dockerignore does not keep .git out of the build context")
	}
	for _, needed := range []string{"go.mod", "go.sum", "*.go", "**/*.go", "cmd", "internal", "schema", "deploy", "deploy/compose", "**/*.sql", "**/*.yaml", "**/*.zed"} {
		if patterns[needed] {
			t.Errorf(".dockerignore excludes %s, which the build needs", needed)
		}
	}
}

func TestParseDockerfile(t *testing.T) {
	stages := parseDockerfile(t, `# syntax=docker/dockerfile:1
FROM golang:1 AS build
RUN a \
    # inside
    b
# 80: web
EXPOSE 80
FROM scratch
COPY --from=build /x /y /dir/
COPY --chown=1:1 /z /w
`)
	if len(stages) != 2 || stages[0].name != "build" || stages[1].name != "" || stages[1].from != "scratch" {
		t.Fatalf("stages %+v", stages)
	}
	if run := stages[0].all("RUN"); len(run) != 1 || run[0].args != "a b" {
		t.Errorf("RUN %+v, want args \"a b\"", run)
	}
	if exp := stages[0].all("EXPOSE"); len(exp) != 1 || !slices.Equal(exp[0].comments, []string{"80: web"}) {
		t.Errorf("EXPOSE %+v, want the comment above it", exp)
	}
	if got, want := stages[1].copiedTo(), []string{"/dir/x", "/dir/y", "/w"}; !slices.Equal(got, want) {
		t.Errorf("copiedTo %v, want %v", got, want)
	}
}
