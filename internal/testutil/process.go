package testutil

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/tenantgate/tenantgate/internal/devenv"
)

// processStopGrace is how long Stop waits after SIGTERM before SIGKILL, when
// the caller's context allows that long. SpiceDB drains gRPC for at most its
// --grpc-shutdown-grace-period.
const processStopGrace = 10 * time.Second

// ProcessOptions configure StartProcess.
type ProcessOptions struct {
	// Path is the binary to run.
	Path string
	Args []string
	// Env is added to this process's environment; a later entry for the
	// same key wins, so Env overrides what the test runner inherited.
	Env []string
	// Dir is the working directory; empty is this process's.
	Dir string
	// LogFile receives stdout and stderr, appended, so that restarts of
	// the same server keep one log. Required.
	LogFile string
}

// Process is a child process whose output goes to a file. It is always
// waited for, by a goroutine of its own, so no zombie outlives it.
type Process struct {
	cmd     *exec.Cmd
	logFile string
	// logStart is the log's size when the process started: Output shows
	// only what this run wrote.
	logStart int64
	done     chan struct{}
	waitErr  error // set before done is closed
}

// StartProcess starts opts.Path. It has no context: the process lives until
// it exits or is stopped, not until some start-up deadline.
func StartProcess(opts ProcessOptions) (*Process, error) {
	if opts.LogFile == "" {
		return nil, errors.New("start process: no log file")
	}
	name := filepath.Base(opts.Path)
	log, err := os.OpenFile(opts.LogFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	info, err := log.Stat()
	if err != nil {
		log.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	cmd := exec.Command(opts.Path, opts.Args...)
	cmd.Dir = opts.Dir
	cmd.Env = append(os.Environ(), opts.Env...)
	// An *os.File is handed to the child as is: no copying goroutine that
	// could hold Wait up or lose the last lines of a killed process.
	cmd.Stdout, cmd.Stderr = log, log
	err = cmd.Start()
	// The child has its own copy of the descriptor.
	log.Close()
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &Process{cmd: cmd, logFile: opts.LogFile, logStart: info.Size(), done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// Pid is the process ID.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Done is closed once the process has exited and been waited for.
func (p *Process) Done() <-chan struct{} { return p.done }

// Signal sends sig. A process that has exited is not an error.
func (p *Process) Signal(sig os.Signal) error {
	if err := p.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("signal %s: %w", p, err)
	}
	return nil
}

// Kill sends SIGKILL and returns once the process is gone. A process that
// had already exited is not an error.
func (p *Process) Kill() error {
	if err := p.Signal(syscall.SIGKILL); err != nil {
		return err
	}
	<-p.done
	return nil
}

// Wait returns once the process has exited, with its exit error (nil for
// status 0, an *exec.ExitError otherwise), or when ctx ends.
func (p *Process) Wait(ctx context.Context) error {
	select {
	case <-p.done:
		return p.waitErr
	case <-ctx.Done():
		return fmt.Errorf("wait for %s: %w", p, context.Cause(ctx))
	}
}

// Stop sends SIGTERM and waits for the process to exit, and sends SIGKILL
// if it has not within processStopGrace or before ctx ends. It returns an
// error, with the output's tail, unless the process exited with status 0
// of its own accord.
func (p *Process) Stop(ctx context.Context) error {
	if err := p.Signal(syscall.SIGTERM); err != nil {
		return err
	}
	grace := time.NewTimer(processStopGrace)
	defer grace.Stop()
	select {
	case <-p.done:
		if p.waitErr != nil {
			return fmt.Errorf("stop %s: %w\noutput (tail of %s):\n%s", p, p.waitErr, p.logFile, p.Output())
		}
		return nil
	case <-ctx.Done():
	case <-grace.C:
	}
	if err := p.Kill(); err != nil {
		return err
	}
	return fmt.Errorf("stop %s: still running after SIGTERM, killed\noutput (tail of %s):\n%s", p, p.logFile, p.Output())
}

// Output is the tail of what the process wrote to its log file.
func (p *Process) Output() string {
	f, err := os.Open(p.logFile)
	if err != nil {
		return fmt.Sprintf("(no output: %v)", err)
	}
	defer f.Close()
	if _, err := f.Seek(p.logStart, io.SeekStart); err != nil {
		return fmt.Sprintf("(no output: %v)", err)
	}
	data, err := io.ReadAll(f)
	if err != nil {
		return fmt.Sprintf("(no output: %v)", err)
	}
	return devenv.Tail(data, logTailBytes)
}

func (p *Process) String() string {
	return fmt.Sprintf("%s (pid %d)", filepath.Base(p.cmd.Path), p.cmd.Process.Pid)
}
