package testutil

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/tenantgate/tenantgate/internal/devenv"
)

const (
	spicedbModule = "github.com/authzed/spicedb"
	// buildOutputBytes is how much of go's output a build error carries:
	// enough for a page of compile errors.
	buildOutputBytes = 8192
	// binDirPrefix names the per-process dirs BuildTenantgate builds in;
	// the pid that follows lets a later process remove a dead one's dir.
	binDirPrefix = "tenantgate-bin-"
)

// binaryBuild builds one binary at most once per process. A failed build
// is not remembered: it may have failed only because its context ended.
type binaryBuild struct {
	// sem is a mutex whose wait can be cancelled.
	sem  chan struct{}
	path string
}

func newBinaryBuild() *binaryBuild { return &binaryBuild{sem: make(chan struct{}, 1)} }

func (b *binaryBuild) get(ctx context.Context, build func(context.Context) (string, error)) (string, error) {
	select {
	case b.sem <- struct{}{}:
	case <-ctx.Done():
		return "", context.Cause(ctx)
	}
	defer func() { <-b.sem }()
	if b.path != "" {
		return b.path, nil
	}
	path, err := build(ctx)
	if err != nil {
		return "", err
	}
	b.path = path
	return path, nil
}

var (
	spicedbBuild    = newBinaryBuild()
	tenantgateBuild = newBinaryBuild()
)

// BuildSpiceDB returns the path of a spicedb binary of the version this
// module requires. The binary lives in the user's cache dir, outside the
// repository, and is reused by later test runs: compiling SpiceDB takes
// minutes, and its source only changes with go.mod. Concurrent test
// binaries build it once between them.
func BuildSpiceDB(ctx context.Context) (string, error) {
	return spicedbBuild.get(ctx, buildSpiceDB)
}

func buildSpiceDB(ctx context.Context) (string, error) {
	root, err := moduleRoot()
	if err != nil {
		return "", fmt.Errorf("build spicedb: %w", err)
	}
	version, local, err := spicedbVersion(ctx, root)
	if err != nil {
		return "", fmt.Errorf("build spicedb: %w", err)
	}
	if local {
		// A replacement by a local directory has no version to key a cache
		// on, and its code may change: build it afresh, like tenantgate.
		dir, err := processBinDir()
		if err != nil {
			return "", fmt.Errorf("build spicedb: %w", err)
		}
		return goBuild(ctx, root, spicedbModule+"/cmd/spicedb", filepath.Join(dir, "spicedb"))
	}
	cacheDir, err := os.UserCacheDir()
	if err != nil {
		cacheDir = os.TempDir()
	}
	dir := filepath.Join(cacheDir, "tenantgate", fmt.Sprintf("spicedb-%s-%s-%s", version, runtime.GOOS, runtime.GOARCH))
	bin := filepath.Join(dir, "spicedb")
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("build spicedb: %w", err)
	}
	// The lock keeps concurrent test binaries (go test runs packages in
	// parallel) from compiling SpiceDB twice on the same few cores.
	unlock, err := lockFile(ctx, filepath.Join(dir, "build.lock"))
	if err != nil {
		return "", fmt.Errorf("build spicedb: %w", err)
	}
	defer unlock()
	if _, err := os.Stat(bin); err == nil {
		return bin, nil // built by whoever held the lock before us
	}
	// Building beside the final name and renaming means nobody ever sees a
	// half-written binary, even if this process dies mid-build.
	tmp := filepath.Join(dir, "spicedb.tmp-"+strconv.Itoa(os.Getpid()))
	if _, err := goBuild(ctx, root, spicedbModule+"/cmd/spicedb", tmp); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("build spicedb %s: %w", version, err)
	}
	if err := os.Rename(tmp, bin); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("build spicedb: %w", err)
	}
	return bin, nil
}

// spicedbVersion is the version of SpiceDB that go.mod selects; local is
// true when a replace directive points it at a directory.
func spicedbVersion(ctx context.Context, root string) (version string, local bool, err error) {
	cmd := exec.CommandContext(ctx, "go", "list", "-m", "-f", "{{.Version}} {{with .Replace}}{{.Path}}@{{.Version}}{{end}}", spicedbModule)
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if exitErr, ok := errors.AsType[*exec.ExitError](err); ok {
			stderr = exitErr.Stderr
		}
		return "", false, fmt.Errorf("go list -m %s: %w\n%s", spicedbModule, err, devenv.Tail(stderr, buildOutputBytes))
	}
	version, replace, _ := strings.Cut(strings.TrimSpace(string(out)), " ")
	switch {
	case replace == "":
		return version, false, nil
	case strings.HasSuffix(replace, "@"):
		return "", true, nil
	default:
		// A module replacement is as fixed as a version; the cache key must
		// tell it apart from the original.
		return version + "-replaced-" + strings.NewReplacer("/", "_", "@", "-").Replace(replace), false, nil
	}
}

// BuildTenantgate builds ./cmd/tenantgate of this module into a dir of this
// process and returns its path. It builds once per process, since the code
// may have changed since the last test run; go's build cache makes a build
// of unchanged code cheap.
func BuildTenantgate(ctx context.Context) (string, error) {
	return tenantgateBuild.get(ctx, func(ctx context.Context) (string, error) {
		root, err := moduleRoot()
		if err != nil {
			return "", fmt.Errorf("build tenantgate: %w", err)
		}
		dir, err := processBinDir()
		if err != nil {
			return "", fmt.Errorf("build tenantgate: %w", err)
		}
		bin, err := goBuild(ctx, root, "./cmd/tenantgate", filepath.Join(dir, "tenantgate"))
		if err != nil {
			return "", fmt.Errorf("build tenantgate: %w", err)
		}
		return bin, nil
	})
}

// goBuild runs go build in the module root, so that go.mod picks versions.
func goBuild(ctx context.Context, root, pkg, out string) (string, error) {
	if _, err := exec.LookPath("go"); err != nil {
		return "", fmt.Errorf("go not found on PATH: %w", err)
	}
	began := time.Now()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, pkg)
	cmd.Dir = root
	var output bytes.Buffer
	cmd.Stdout, cmd.Stderr = &output, &output
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (after %v)", context.Cause(ctx), time.Since(began).Round(time.Second))
		}
		return "", fmt.Errorf("go build %s: %w\n%s", pkg, err, devenv.Tail(output.Bytes(), buildOutputBytes))
	}
	return out, nil
}

// processBinDir makes a temp dir for this process's binaries. Nothing
// removes it when the process ends (tests have no hook for that), so each
// call first removes the dirs of processes that are gone.
func processBinDir() (string, error) {
	removeDeadBinDirs()
	return os.MkdirTemp("", binDirPrefix+strconv.Itoa(os.Getpid())+"-")
}

func removeDeadBinDirs() {
	matches, _ := filepath.Glob(filepath.Join(os.TempDir(), binDirPrefix+"*"))
	for _, dir := range matches {
		pidText, _, _ := strings.Cut(strings.TrimPrefix(filepath.Base(dir), binDirPrefix), "-")
		pid, err := strconv.Atoi(pidText)
		if err != nil || pid <= 0 || pid == os.Getpid() {
			continue
		}
		// Signal 0 only checks that the pid exists. A reused pid keeps a
		// dead process's dir a little longer, which is harmless.
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			os.RemoveAll(dir)
		}
	}
}

// moduleRoot is the dir of the nearest go.mod at or above the working dir,
// which for tests is their package's dir in this module.
func moduleRoot() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("find module root: %w", err)
	}
	for dir := wd; ; {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("find module root: no go.mod in %s or above", wd)
		}
		dir = parent
	}
}

// lockFile takes an exclusive flock on path, polling so that ctx can end
// the wait; unlock releases it. A lock dies with its holder, so a killed
// build never leaves others waiting.
func lockFile(ctx context.Context, path string) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("lock %s: another process is building: %w", path, context.Cause(ctx))
		case <-tick.C:
		}
	}
}
