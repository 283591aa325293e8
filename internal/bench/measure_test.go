package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/tenantgate/tenantgate/internal/loadbench"
)

// clockTicks is USER_HZ, the unit of the CPU times in /proc/<pid>/stat. The
// kernel fixes it at 100 for user space on every architecture Go supports on
// Linux, whatever CONFIG_HZ is.
const clockTicks = 100

// procStat holds the fields of /proc/<pid>/stat the benchmarks use.
type procStat struct {
	ppid int
	// cpu is user plus system time of the process itself, in seconds.
	cpu float64
	// children is the same for children it has waited for.
	children float64
}

func readProcStat(pid int) (procStat, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procStat{}, fmt.Errorf("read stat of %d: %w", pid, err)
	}
	// The command name may hold spaces and parentheses; the fields after it
	// start behind the last ')'.
	i := bytes.LastIndexByte(data, ')')
	if i < 0 || i+2 > len(data) {
		return procStat{}, fmt.Errorf("stat of %d: unexpected format", pid)
	}
	f := strings.Fields(string(data[i+2:]))
	// f[0] is field 3 of proc(5) (state): ppid is field 4, utime..cstime
	// are fields 14..17.
	if len(f) < 15 {
		return procStat{}, fmt.Errorf("stat of %d: %d fields", pid, len(f))
	}
	nums := make([]float64, 4)
	for k := range nums {
		v, err := strconv.ParseUint(f[11+k], 10, 64)
		if err != nil {
			return procStat{}, fmt.Errorf("stat of %d: %w", pid, err)
		}
		nums[k] = float64(v) / clockTicks
	}
	ppid, err := strconv.Atoi(f[1])
	if err != nil {
		return procStat{}, fmt.Errorf("stat of %d: %w", pid, err)
	}
	return procStat{ppid: ppid, cpu: nums[0] + nums[1], children: nums[2] + nums[3]}, nil
}

// peakRSS is the process's high-water mark of resident memory (VmHWM), in
// bytes.
func peakRSS(pid int) (int64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("read status of %d: %w", pid, err)
	}
	for line := range strings.Lines(string(data)) {
		rest, ok := strings.CutPrefix(line, "VmHWM:")
		if !ok {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("status of %d: VmHWM %q: %w", pid, rest, err)
		}
		return kb * 1024, nil
	}
	return 0, fmt.Errorf("status of %d: no VmHWM", pid)
}

// children lists the live processes whose parent is pid.
func children(pid int) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []int
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if st, err := readProcStat(child); err == nil && st.ppid == pid {
			out = append(out, child)
		}
	}
	return out
}

// clusterCPU is the CPU time a PostgreSQL cluster has used since its
// postmaster started: the postmaster's own, that of the backends it has
// reaped (connections that closed) and that of every live child.
func clusterCPU(postmaster int) (float64, error) {
	st, err := readProcStat(postmaster)
	if err != nil {
		return 0, err
	}
	total := st.cpu + st.children
	for _, c := range children(postmaster) {
		// A child may exit between the listing and the read; its time then
		// moves into the postmaster's children total, read already.
		if cst, err := readProcStat(c); err == nil {
			total += cst.cpu
		}
	}
	return total, nil
}

// cpuTimes are jiffies of all CPUs since boot, from /proc/stat's first
// line.
type cpuTimes struct {
	// busy is everything but idle and iowait; steal, part of it, is time
	// the hypervisor gave to other guests while this one wanted to run: a
	// slow run with high steal was slowed by the host, not by the code.
	busy, steal, total uint64
}

func machineCPU() (cpuTimes, error) {
	f, err := os.Open("/proc/stat")
	if err != nil {
		return cpuTimes{}, fmt.Errorf("read /proc/stat: %w", err)
	}
	defer f.Close()
	line, err := bufio.NewReader(f).ReadString('\n')
	if err != nil {
		return cpuTimes{}, fmt.Errorf("read /proc/stat: %w", err)
	}
	fields := strings.Fields(line)
	// user nice system idle iowait irq softirq steal; guest time that may
	// follow is already counted in user and nice.
	if len(fields) < 9 || fields[0] != "cpu" {
		return cpuTimes{}, fmt.Errorf("/proc/stat: unexpected first line %q", line)
	}
	var t cpuTimes
	for i, s := range fields[1:9] {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return cpuTimes{}, fmt.Errorf("/proc/stat: %w", err)
		}
		t.total += v
		switch i {
		case 3, 4: // idle, iowait
		case 7:
			t.steal, t.busy = v, t.busy+v
		default:
			t.busy += v
		}
	}
	return t, nil
}

// load1 is the 1 minute load average as a number, for ReportMetric.
func load1() float64 {
	v, err := strconv.ParseFloat(strings.Fields(loadbench.LoadAverage() + " ")[0], 64)
	if err != nil {
		return math.NaN()
	}
	return v
}

// meter attributes CPU time to the processes of a measurement, so a figure
// comes with what limited it.
type meter struct {
	postmaster int
	// pids names the processes to account for besides the cluster.
	pids  map[string]int
	order []string
}

type meterSample struct {
	at      time.Time
	cpu     map[string]float64
	machine cpuTimes
}

func newMeter(postmaster int, names []string, pids ...int) *meter {
	m := &meter{postmaster: postmaster, pids: map[string]int{}}
	for i, n := range names {
		m.pids[n] = pids[i]
		m.order = append(m.order, n)
	}
	// The cluster's total comes before its own processes named
	// "postgres ...", which it includes.
	i := slices.IndexFunc(m.order, func(n string) bool { return strings.HasPrefix(n, "postgres ") })
	if i < 0 {
		i = len(m.order)
	}
	m.order = slices.Insert(m.order, i, "postgres")
	return m
}

func (m *meter) sample() meterSample {
	s := meterSample{at: time.Now(), cpu: map[string]float64{}}
	for name, pid := range m.pids {
		if st, err := readProcStat(pid); err == nil {
			s.cpu[name] = st.cpu
		}
	}
	if v, err := clusterCPU(m.postmaster); err == nil {
		s.cpu["postgres"] = v
	}
	s.machine, _ = machineCPU()
	return s
}

// usage says how many cores each process used between two samples, and how
// busy the whole machine was (other builds included).
func (m *meter) usage(a, b meterSample) string {
	wall := b.at.Sub(a.at).Seconds()
	var parts []string
	for _, name := range m.order {
		parts = append(parts, fmt.Sprintf("%s %.2f", name, (b.cpu[name]-a.cpu[name])/wall))
	}
	busy, steal := 0.0, 0.0
	if total := float64(b.machine.total - a.machine.total); total > 0 {
		busy = 100 * float64(b.machine.busy-a.machine.busy) / total
		steal = 100 * float64(b.machine.steal-a.machine.steal) / total
	}
	return fmt.Sprintf("cores used: %s; machine %.0f%% busy, %.0f%% stolen by the host", strings.Join(parts, ", "), busy, steal)
}

// percentile is the nearest-rank percentile p (0..100) of sorted values.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	return sorted[min(max(rank-1, 0), len(sorted)-1)]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func mib(b int64) float64 { return float64(b) / (1 << 20) }

// syncLog is what the sync's JSON log says about a backfill.
type syncLog struct {
	// copyRows and copyElapsed come from "sync: snapshot copied": source
	// rows read and the time from the first row read to the last
	// relationship imported.
	copyRows    int64
	copyElapsed time.Duration
	// reconcile comes from "sync: reconcile done", with what it compared
	// and repaired.
	reconcile                  time.Duration
	reconciled, missing, extra int64
	// appliedAt is when "sync: snapshot applied" was logged: slot creation,
	// copy, reconcile and bookkeeping are done, and the stream starts.
	appliedAt time.Time
	// catchUp comes from "sync: caught up; ready": from the stream's start
	// until it had applied everything committed before, the WAL written
	// during the backfill (SpiceDB's own import, when its datastore shares
	// the server) included.
	catchUp time.Duration
}

// parseSyncLog reads the events of the first backfill in a sync's log.
func parseSyncLog(path string) (syncLog, error) {
	f, err := os.Open(path)
	if err != nil {
		return syncLog{}, fmt.Errorf("sync log: %w", err)
	}
	defer f.Close()
	var out syncLog
	var seen int
	dec := json.NewDecoder(f)
	for {
		var ev map[string]any
		if err := dec.Decode(&ev); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			// A line that is not JSON (a panic trace) ends what can be read.
			break
		}
		var err error
		switch ev["msg"] {
		case "sync: snapshot copied":
			if out.copyElapsed == 0 {
				out.copyRows = int64(number(ev["rows"]))
				out.copyElapsed, err = duration(ev["elapsed"])
				seen++
			}
		case "sync: reconcile done":
			if out.reconcile == 0 {
				out.reconcile, err = duration(ev["duration"])
				out.reconciled = int64(number(ev["spicedb_relationships"]))
				out.missing, out.extra = int64(number(ev["missing"])), int64(number(ev["extra"]))
			}
		case "sync: snapshot applied":
			if out.appliedAt.IsZero() {
				out.appliedAt, err = timestamp(ev["time"])
				seen++
			}
		case "sync: caught up; ready":
			if out.catchUp == 0 {
				out.catchUp, err = duration(ev["after"])
				seen++
			}
		}
		if err != nil {
			return syncLog{}, fmt.Errorf("sync log %s: %q: %w", path, ev["msg"], err)
		}
	}
	// The reconcile is logged only when the copy did not import into an
	// empty SpiceDB; copy, snapshot applied and caught up always are.
	if seen < 3 {
		return out, fmt.Errorf("sync log %s: found %d of the 3 required backfill events (log format changed?)", path, seen)
	}
	return out, nil
}

// timestamp reads the time of a record as slog's JSON handler writes it.
func timestamp(v any) (time.Time, error) {
	s, ok := v.(string)
	if !ok {
		return time.Time{}, fmt.Errorf("not a timestamp: %v", v)
	}
	return time.Parse(time.RFC3339Nano, s)
}

func number(v any) float64 {
	f, _ := v.(float64)
	return f
}

// duration reads a time.Duration the way slog's JSON handler writes it
// (nanoseconds as a number), or as a Go duration string.
func duration(v any) (time.Duration, error) {
	switch d := v.(type) {
	case float64:
		return time.Duration(d), nil
	case string:
		return time.ParseDuration(d)
	}
	return 0, fmt.Errorf("not a duration: %v", v)
}

// busyLoops starts n processes that spin on a core each until stop is
// called (or ctx ends): a neighbour that takes CPU from everything the
// measurement runs, as another tenant of a shared machine would.
func busyLoops(ctx context.Context, n int) (stop func(), err error) {
	var cmds []*exec.Cmd
	stop = func() {
		for _, cmd := range cmds {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	}
	for range n {
		cmd := exec.CommandContext(ctx, "sh", "-c", "while :; do :; done")
		// A loop that outlived a killed benchmark would spin for good and
		// skew every later measurement on the machine.
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			stop()
			return nil, fmt.Errorf("start busy loop: %w", err)
		}
		cmds = append(cmds, cmd)
	}
	return stop, nil
}
