package loadbench

import (
	"fmt"
	"io"
	"runtime"
	"slices"
	"strings"
	"time"
)

// WriteTable writes the report as markdown: the run, the closed loop's
// steps, and one row per factor of the open loop.
func (rep *OverloadReport) WriteTable(w io.Writer) error {
	var b strings.Builder
	cfg := rep.cfg
	fmt.Fprintf(&b, "## Overload, index %s, %s\n\n", onOff(cfg.Index), rep.began.UTC().Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(&b, "- machine: %s; %s %s/%s\n", Machine(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
	fmt.Fprintf(&b, "- load average (1, 5, 15 min): %s before, %s after; the run took %s\n",
		rep.loadBefore, LoadAverage(), rep.ended.Sub(rep.began).Round(time.Second))
	fmt.Fprintf(&b, "- data: %s\n", rep.data)
	fmt.Fprintf(&b, "- gateway: `tenantgate serve --index=%t` (embedded SpiceDB) as a process on loopback, the load generator in the test process on the same machine; process logs are in %s\n", cfg.Index, rep.logDir)
	fmt.Fprintf(&b, "- capacity: a closed loop of single checks (half allowed) by %s users with a token each, on a gateway without limits, doubling the clients every %s until throughput rose by less than %.0f %%: **%s checks/s** at %d clients\n\n",
		thousands(int64(cfg.Users)), cfg.Step, minGain*100, thousands(int64(rep.capacity.rate+0.5)), rep.capacity.clients)
	b.WriteString("| clients | checks/s | p50 | p99 |\n|--:|--:|--:|--:|\n")
	for _, s := range rep.steps {
		fmt.Fprintf(&b, "| %d | %s | %s | %s |\n", s.clients, thousands(int64(s.rate+0.5)), durationText(s.p50), durationText(s.p99))
	}
	fmt.Fprintf(&b, "\n- overload: a second gateway with `--max-in-flight=%d` (the best clients) and `--rate-limit-user=%g` (bursts of twice as many); %d hot user asks %.0f %% of the arrivals, %.0f × the limit at the lowest factor, the %s others far less than it; the gateway is not warmed, so each user's first check verifies its token\n",
		rep.maxInFlight, rep.rateLimit, hotUsers, hotShare*100, rep.capacity.rate*slices.Min(cfg.Factors)*hotShare/hotUsers/rep.rateLimit, thousands(int64(cfg.Users)))
	fmt.Fprintf(&b, "- open loop: Poisson arrivals at each factor of the capacity for %s; every 200 checked against the ground truth, every 429 and 503 for its Retry-After; at most %s calls in flight, an arrival beyond that not sent; latency from the call to its answer, *late* how long after its scheduled time the generator made the call; peak RSS is the gateway's VmHWM since it started, *logged* what it wrote to its log (JSON, info level) during the phase\n\n",
		cfg.Duration, thousands(maxOutstanding))
	b.WriteString("| factor | arrivals/s | 200 | 429 | 503 | other | wrong | not sent | 200/s | p50 (200) | p99 (200) | p50 (all) | p99 (all) | late p99 | CPU gateway, generator | peak RSS | logged |\n")
	b.WriteString("|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	for _, p := range rep.phases {
		c := p.counts
		fmt.Fprintf(&b, "| %g× | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %.2f, %.2f | %s | %s |\n",
			p.factor, thousands(int64(p.offered+0.5)), count(c[outAnswered]), count(c[outLimited]), count(c[outShed]),
			count(c[outFailed]), count(c[outWrong]), count(c[outDropped]), thousands(int64(p.answered.perSecond(p.answered.calls)+0.5)),
			durationText(p.answered.percentile(50)), durationText(p.answered.percentile(99)),
			durationText(p.all.percentile(50)), durationText(p.all.percentile(99)), durationText(p.late.percentile(99)),
			p.gatewayCPU, p.generatorCPU, bytesText(p.peakRSS), bytesText(p.logBytes))
	}
	for _, p := range rep.phases {
		for _, f := range p.failures {
			fmt.Fprintf(&b, "\n- %g×: %s", p.factor, f)
		}
	}
	b.WriteString("\n")
	_, err := io.WriteString(w, b.String())
	return err
}

func count(n int) string { return thousands(int64(n)) }

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}
