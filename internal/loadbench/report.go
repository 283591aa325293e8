package loadbench

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/tenantgate/tenantgate/internal/authz"
)

// kind is what a result measured, which decides what it is compared with.
type kind int

const (
	kindCheck kind = iota + 1
	kindBulk
	kindList
	kindLag
	kindBuild
)

// result is one row of the table.
type result struct {
	system  string
	kind    kind
	measure string
	// rate is per second: checks, changes or relationships.
	rate          float64
	p50, p99, max time.Duration
	// listSize is the companies a list row's user sees.
	listSize int
	notes    []string
}

// references are the rows every other row is set against.
type references struct {
	floor, sql float64 // single checks per second
	sqlList    map[int]time.Duration
}

func referencesOf(results []result) references {
	refs := references{sqlList: map[int]time.Duration{}}
	for _, r := range results {
		switch {
		case r.kind == kindCheck && r.system == string(SystemFloor):
			refs.floor = r.rate
		case r.kind == kindCheck && r.system == string(SystemSQL):
			refs.sql = r.rate
		case r.kind == kindList && r.system == string(SystemSQL):
			refs.sqlList[r.listSize] = r.p50
		}
	}
	return refs
}

// versus is how many times faster r is than the floor and than the SQL
// (0 when there is nothing to compare with): by rate for checks, by p50
// for lists.
func (refs references) versus(r result) (floor, sql float64) {
	switch r.kind {
	case kindCheck, kindBulk:
		return ratio(r.rate, refs.floor), ratio(r.rate, refs.sql)
	case kindList:
		if base := refs.sqlList[r.listSize]; base > 0 && r.p50 > 0 {
			return 0, float64(base) / float64(r.p50)
		}
	}
	return 0, 0
}

func ratio(a, b float64) float64 {
	if b <= 0 {
		return 0
	}
	return a / b
}

// header describes the run: when, where, on what.
type header struct {
	began, ended time.Time
	loadBefore   string
	data         string
	workload     string
	logDir       string
}

func writeTable(w io.Writer, h header, results []result) error {
	var b strings.Builder
	fmt.Fprintf(&b, "## `tenantgate bench`, %s\n\n", h.began.UTC().Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(&b, "- machine: %s; %s %s/%s\n", Machine(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
	fmt.Fprintf(&b, "- load average (1, 5, 15 min): %s before, %s after; the run took %s\n",
		h.loadBefore, LoadAverage(), h.ended.Sub(h.began).Round(time.Second))
	fmt.Fprintf(&b, "- data: %s\n- workload: %s\n", h.data, h.workload)
	fmt.Fprintf(&b, "- every answer was checked against the ground truth; process logs are in %s\n", h.logDir)
	b.WriteString("- ×floor, ×SQL: how many times faster than the floor's and the SQL's single checks (checks/s), or than the SQL's list (p50)\n\n")
	b.WriteString("| system | measure | rate | p50 | p99 | max | ×floor | ×SQL | notes |\n")
	b.WriteString("|---|---|--:|--:|--:|--:|--:|--:|---|\n")
	refs := referencesOf(results)
	for _, r := range results {
		vsFloor, vsSQL := refs.versus(r)
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n",
			r.system, r.measure, rateText(r), durationText(r.p50), durationText(r.p99), durationText(r.max),
			ratioText(vsFloor), ratioText(vsSQL), strings.Join(r.notes, "; "))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func rateText(r result) string {
	if r.rate == 0 {
		return ""
	}
	unit := map[kind]string{kindCheck: "checks/s", kindBulk: "checks/s", kindLag: "changes/s", kindBuild: "rels/s"}[r.kind]
	return thousands(int64(r.rate+0.5)) + " " + unit
}

func durationText(d time.Duration) string {
	ms := float64(d) / float64(time.Millisecond)
	switch {
	case d == 0:
		return ""
	case ms < 10:
		return fmt.Sprintf("%.2f ms", ms)
	case ms < 100:
		return fmt.Sprintf("%.1f ms", ms)
	case ms < 10_000:
		return fmt.Sprintf("%.0f ms", ms)
	}
	return fmt.Sprintf("%.1f s", ms/1000)
}

func ratioText(x float64) string {
	switch {
	case x == 0:
		return ""
	case x < 0.1:
		return fmt.Sprintf("%.3f", x)
	case x < 10:
		return fmt.Sprintf("%.2f", x)
	}
	return fmt.Sprintf("%.0f", x)
}

// thousands writes n with commas between groups of three digits.
func thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// bytesText is a size in MiB, or KiB below one MiB.
func bytesText(n int64) string {
	if n < 1<<20 && n > -1<<20 {
		return fmt.Sprintf("%.0f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%.0f MiB", float64(n)/(1<<20))
}

// LoadAverage is the 1, 5 and 15 minute load average, as /proc/loadavg
// has it.
func LoadAverage() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// Machine names the CPU model, the logical CPUs and the memory.
func Machine() string {
	model, mem := "unknown CPU", "unknown memory"
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.Lines(string(data)) {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	if kb, err := procField("/proc/meminfo", "MemTotal:"); err == nil {
		mem = fmt.Sprintf("%.1f GiB RAM", float64(kb)/(1<<20))
	}
	return fmt.Sprintf("%s, %d logical CPUs, %s", model, runtime.NumCPU(), mem)
}

// procField reads a "Name: <n> kB" line of a /proc file, in kB.
func procField(path, name string) (int64, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(data)) {
		if rest, ok := strings.CutPrefix(line, name); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
		}
	}
	return 0, fmt.Errorf("%s: no %s", path, name)
}

// memory is a process's resident memory now and at its peak (VmRSS and
// VmHWM), as a note.
func memory(pid int) string {
	path := fmt.Sprintf("/proc/%d/status", pid)
	now, err := procField(path, "VmRSS:")
	if err != nil {
		return "RSS unknown: " + err.Error()
	}
	peak, err := procField(path, "VmHWM:")
	if err != nil {
		return "RSS unknown: " + err.Error()
	}
	return fmt.Sprintf("RSS %s (peak %s)", bytesText(now<<10), bytesText(peak<<10))
}

func listSizes(sizes []int) string {
	texts := make([]string, len(sizes))
	for i, n := range sizes {
		texts[i] = thousands(int64(n))
	}
	return strings.Join(texts, ", ")
}

func (r *run) report(out io.Writer) error {
	active := 0
	for _, m := range r.data.Memberships {
		if m.Status == authz.StatusActive {
			active++
		}
	}
	s := r.cfg.Sizes
	h := header{
		began: r.began, ended: time.Now(), loadBefore: r.load, logDir: r.logDir,
		data: fmt.Sprintf("%s companies in trees up to %d deep (the largest holds %s), %s users, %s memberships (%s active), %s relationships; seed %d",
			thousands(int64(s.Companies)), s.Depth, thousands(int64(len(r.truth.Companies(r.data.BigOwners[0], authz.PermRead)))),
			thousands(int64(s.Users)), thousands(int64(len(r.data.Memberships))), thousands(int64(active)), thousands(int64(r.rels)), s.Seed),
		workload: fmt.Sprintf("%s single checks, half allowed, after %s untimed, about %s users with a token each, from %d concurrent clients; bulk: %s calls of %d; lists: users who read %s companies, %d times each after one untimed read, one at a time; each of these stops after %s; lag: %d changes/s for %s on every gateway with its index on",
			thousands(int64(len(r.work.checks))), thousands(int64(len(r.work.warm))), thousands(int64(r.cfg.CheckUsers)), r.cfg.Clients,
			thousands(int64(len(r.work.batches))), r.cfg.BulkSize, listSizes(s.ListSizes), r.cfg.ListRepeats, r.cfg.Budget, r.cfg.LagRate, r.cfg.LagDuration),
	}
	if err := writeTable(out, h, r.results); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	title := fmt.Sprintf("tenantgate bench, %s: %s companies, %s memberships, %d clients", r.began.UTC().Format("2006-01-02"),
		thousands(int64(s.Companies)), thousands(int64(s.Memberships)), r.cfg.Clients)
	if err := writeChart(r.cfg.ChartPath, title, r.results); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	r.log.Info("bench: chart written", "path", r.cfg.ChartPath)
	return nil
}
