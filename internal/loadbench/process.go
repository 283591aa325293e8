package loadbench

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/tenantgate/tenantgate/internal/devenv"
)

const (
	// stopGrace is how long a process may drain after SIGTERM.
	stopGrace = 10 * time.Second
	// readyTimeout bounds a process's start, its initial snapshot included.
	readyTimeout = 5 * time.Minute
	// logTailBytes is how much of a process's log an error quotes.
	logTailBytes = 2048
)

// child is a process the bench started, its output in a log file of the
// run. It gets SIGKILL when the bench dies: a server left running would
// take cores from every later measurement on the machine.
type child struct {
	name    string
	cmd     *exec.Cmd
	logFile string
	done    chan struct{}
	err     error // set before done is closed
}

func startChild(name, logDir, bin string, args ...string) (*child, error) {
	logFile := filepath.Join(logDir, name+".log")
	log, err := os.Create(logFile)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = childEnv(os.Environ())
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	err = cmd.Start()
	log.Close() // the child has its own copy
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	c := &child{name: name, cmd: cmd, logFile: logFile, done: make(chan struct{})}
	go func() {
		c.err = cmd.Wait()
		close(c.done)
	}()
	return c, nil
}

// childEnv is env without tenantgate's own variables: every flag a child
// needs is on its command line, and a TENANTGATE_SPICEDB_ENDPOINT meant for
// something else would quietly turn an embedded gateway into a remote one.
func childEnv(env []string) []string {
	var out []string
	for _, kv := range env {
		if !strings.HasPrefix(kv, "TENANTGATE_") && !strings.HasPrefix(kv, "DATABASE_URL=") {
			out = append(out, kv)
		}
	}
	return out
}

func (c *child) pid() int { return c.cmd.Process.Pid }

// exited is an error once the process has ended, nil while it runs.
func (c *child) exited() error {
	select {
	case <-c.done:
		return fmt.Errorf("%s exited: %v\nlog (tail of %s):\n%s", c.name, c.err, c.logFile, c.tail())
	default:
		return nil
	}
}

// logSize is how many bytes the process has logged, 0 when that cannot be
// told.
func (c *child) logSize() int64 {
	info, err := os.Stat(c.logFile)
	if err != nil {
		return 0
	}
	return info.Size()
}

func (c *child) tail() string {
	data, err := os.ReadFile(c.logFile)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	return devenv.Tail(data, logTailBytes)
}

// stop ends the process with SIGTERM, and SIGKILL after stopGrace. A
// process that had exited before it was told to is an error: it crashed
// during the measurement.
func (c *child) stop(ctx context.Context) error {
	if err := c.exited(); err != nil {
		return err
	}
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("stop %s: %w", c.name, err)
	}
	grace := time.NewTimer(stopGrace)
	defer grace.Stop()
	select {
	case <-c.done:
		return nil
	case <-grace.C:
	case <-ctx.Done():
	}
	_ = c.cmd.Process.Kill()
	<-c.done
	return fmt.Errorf("stop %s: still running %s after SIGTERM, killed\nlog (tail of %s):\n%s", c.name, stopGrace, c.logFile, c.tail())
}

// awaitHTTP polls url until it answers 200, the process exits or
// readyTimeout passes.
func (c *child) awaitHTTP(ctx context.Context, url string) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	client := &http.Client{Timeout: 2 * time.Second}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return fmt.Errorf("await %s: %w", c.name, err)
		}
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("%s", resp.Status)
		}
		if exitErr := c.exited(); exitErr != nil {
			return fmt.Errorf("await %s: %w", c.name, exitErr)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("await %s: %s not ready: %w (last: %v)\nlog (tail of %s):\n%s", c.name, url, context.Cause(ctx), err, c.logFile, c.tail())
		case <-tick.C:
		}
	}
}
