package loadbench

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The shape of an overload run's traffic.
const (
	// hotUsers ask hotShare of all arrivals between them, far over their
	// per-user rate limit: the 429 path. Everyone else asks well under it,
	// so what the limit absorbs is theirs alone and the rest is the
	// in-flight bound's to shed.
	hotUsers = 1
	hotShare = 0.25
	// hotOverLimit is how many times its limit each hot user asks at the
	// lowest factor of the run. The in-flight bound comes first: of what
	// a hot user asks, only what is not shed reaches its limit, and at
	// five times the capacity four fifths are shed.
	hotOverLimit = 20
	// minUserLimit is the lowest per-user limit a run sets: bursts of two,
	// so that an ordinary user's two checks in a row are not refused.
	minUserLimit = 1
	// checksPerUser sizes the pool of checks drawn for the ordinary users.
	checksPerUser = 4
	// warmUpClients ask the pool for a step before capacity is measured.
	warmUpClients = 4
	// maxClients ends the closed loop's doubling of concurrency; minGain is
	// the rise in throughput below which doubling stops.
	maxClients = 256
	minGain    = 0.05
	// maxClosedLoopRate sizes the closed loop's supply of calls per step,
	// above anything a gateway on loopback answers.
	maxClosedLoopRate = 200_000
	// maxOutstanding bounds the open loop's calls in flight, and so its
	// memory and connections; an arrival beyond it is not sent, and the
	// table says how many were not.
	maxOutstanding = 2048
	// failureSamples is how many failures a phase quotes.
	failureSamples = 5
)

// OverloadConfig is what an overload run drives and how hard.
type OverloadConfig struct {
	Sizes Sizes
	// Index is the gateway's --index: on, a check costs little more than
	// its HTTP; off, every check is SpiceDB's work.
	Index bool
	// Users are the ordinary users the checks are about, each with a
	// token; keep them under the gateway's token cache (10,000).
	Users int
	// Step is how long the closed loop runs at each concurrency while the
	// capacity is measured.
	Step time.Duration
	// Factors are the arrival rates driven, as multiples of the measured
	// capacity, each for Duration, one after the other.
	Factors  []float64
	Duration time.Duration
	// LogDir keeps every process's log and the key set; empty makes a new
	// temporary one. TenantgateBin is the binary run as `tenantgate serve`.
	LogDir        string
	TenantgateBin string
}

// Validate checks what cannot be driven.
func (c OverloadConfig) Validate() error {
	var errs []error
	if err := c.Sizes.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.Users < 1 || c.Users+hotUsers > c.Sizes.Users {
		errs = append(errs, fmt.Errorf("users: want 1 to %d (the data set's users less %d hot ones), not %d", c.Sizes.Users-hotUsers, hotUsers, c.Users))
	}
	if c.Step <= 0 || c.Duration <= 0 {
		errs = append(errs, errors.New("step and duration must be positive"))
	}
	if len(c.Factors) == 0 {
		errs = append(errs, errors.New("no factor to drive"))
	}
	for _, k := range c.Factors {
		if k <= 0 {
			errs = append(errs, fmt.Errorf("factor %g: must be positive", k))
		}
	}
	return errors.Join(errs...)
}

// outcome is what became of one arrival.
type outcome uint8

const (
	outAnswered outcome = iota // 200, as the ground truth says
	outWrong                   // 200, against the ground truth
	outLimited                 // 429 with Retry-After
	outShed                    // 503 with Retry-After
	outFailed                  // anything else: another status, no Retry-After, no answer in time
	outDropped                 // not sent: the generator was at its bound
	numOutcomes
)

// capacityStep is the closed loop at one concurrency.
type capacityStep struct {
	clients  int
	rate     float64 // checks per second
	p50, p99 time.Duration
}

// phase is the open loop at one factor of the capacity.
type phase struct {
	factor  float64
	offered float64 // arrivals per second, as scheduled
	counts  [numOutcomes]int
	// answered are the latencies of the 200s, all those of every call
	// made, sorted, from the call to its answer or failure.
	answered, all timing
	// late is how late the generator made the calls, against the schedule.
	late timing
	// peakRSS is the gateway's VmHWM after the phase, in bytes: its peak
	// since it started.
	peakRSS int64
	// gatewayCPU and generatorCPU are the cores each process kept busy,
	// on average over the phase: with both on one machine, the load the
	// generator can make is what the gateway leaves it.
	gatewayCPU, generatorCPU float64
	// logBytes is what the gateway logged during the phase.
	logBytes int64
	failures []string
}

// OverloadReport is what an overload run measured.
type OverloadReport struct {
	began, ended time.Time
	loadBefore   string
	logDir       string
	data         string
	cfg          OverloadConfig
	steps        []capacityStep
	capacity     capacityStep
	// maxInFlight and rateLimit are the overload gateway's flags.
	maxInFlight int
	rateLimit   float64
	phases      []phase
}

// overloadRun is one overload run: the bench's run for the data set, the
// database and the tokens, and the checks it asks.
type overloadRun struct {
	*run
	cfg OverloadConfig
	// pool is asked by the ordinary users, hot by the hot ones.
	pool, hot []Check
	rng       *rand.Rand
}

// RunOverload measures the capacity of `tenantgate serve` (embedded
// SpiceDB, the index as cfg says) on a generated data set in a closed
// loop, then drives arrivals at each factor of it in an open loop against
// a second gateway whose in-flight bound and per-user rate limit are set
// from that capacity, and records every answer. It fails only when it cannot run; what it found is
// the report's, for the caller to judge.
func RunOverload(ctx context.Context, cfg OverloadConfig, logger *slog.Logger) (rep *OverloadReport, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("overload: %w", err)
	}
	o := &overloadRun{cfg: cfg, rng: rand.New(rand.NewPCG(cfg.Sizes.Seed, 0x0e71a4)), run: &run{
		cfg: Config{Sizes: cfg.Sizes, Clients: 1, LogDir: cfg.LogDir, TenantgateBin: cfg.TenantgateBin},
		log: logger, began: time.Now(), load: LoadAverage(),
	}}
	defer func() {
		cleanupCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		defer cancel()
		err = errors.Join(err, o.close(cleanupCtx))
	}()
	if err := o.prepare(ctx); err != nil {
		return nil, err
	}
	rep = &OverloadReport{began: o.began, loadBefore: o.load, logDir: o.logDir, cfg: cfg, data: o.describeData()}
	if rep.steps, rep.capacity, err = o.measureCapacity(ctx); err != nil {
		return nil, err
	}
	if err := o.overload(ctx, rep); err != nil {
		return nil, err
	}
	rep.ended = time.Now()
	return rep, nil
}

// prepare loads the data set, draws the checks of the ordinary and the
// hot users, and mints their tokens.
func (o *overloadRun) prepare(ctx context.Context) error {
	if err := o.setUp(ctx); err != nil {
		return err
	}
	users := askingUsers(o.rng, o.data, hotUsers+o.cfg.Users)
	hot, ordinary := users[:hotUsers], users[hotUsers:]
	var err error
	if o.pool, err = newPicker(o.rng, o.data, o.truth, ordinary).checks(checksPerUser * len(ordinary)); err != nil {
		return fmt.Errorf("overload: %w", err)
	}
	// The hot users ask a tenth of all arrivals: as many different checks
	// as the rest have, so that none is asked over and over.
	if o.hot, err = newPicker(o.rng, o.data, o.truth, hot).checks(len(o.pool)); err != nil {
		return fmt.Errorf("overload: %w", err)
	}
	return o.mintTokens(ctx, users)
}

func (o *overloadRun) describeData() string {
	s := o.cfg.Sizes
	return fmt.Sprintf("%s companies in trees up to %d deep, %s users, %s memberships, %s relationships; seed %d",
		thousands(int64(s.Companies)), s.Depth, thousands(int64(s.Users)), thousands(int64(s.Memberships)), thousands(int64(o.rels)), s.Seed)
}

// startGateway starts `tenantgate serve` called name with args and waits
// for its index; conns are the connections its client keeps.
func (o *overloadRun) startGateway(ctx context.Context, name string, conns int, args ...string) (*child, *apiClient, error) {
	args = append(args, "--index="+strconv.FormatBool(o.cfg.Index))
	done := o.step(ctx, "starting tenantgate serve", "system", name, "args", args)
	proc, base, err := o.startServe(ctx, name, args...)
	if err != nil {
		return nil, nil, err
	}
	api := newAPIClient(base, conns, o.tokens)
	if o.cfg.Index {
		if err := o.awaitIndex(ctx, base+"/metrics"); err != nil {
			api.close()
			return nil, nil, errors.Join(err, proc.stop(context.WithoutCancel(ctx)))
		}
	}
	done()
	return proc, api, nil
}

// measureCapacity doubles the concurrency of a closed loop of checks
// against a gateway without limits until throughput stops rising, and
// returns every step and the best. Every answer must be a right 200.
func (o *overloadRun) measureCapacity(ctx context.Context) (steps []capacityStep, best capacityStep, err error) {
	const name = "unlimited"
	proc, api, err := o.startGateway(ctx, name, maxClients, "--rate-limit-user=0", "--max-in-flight=0")
	if err != nil {
		return nil, best, err
	}
	defer func() { err = errors.Join(err, proc.stop(context.WithoutCancel(ctx))) }()
	defer api.close()
	// Each run of the loop goes on through the pool where the last one
	// stopped: a check asked again would be answered from SpiceDB's cache.
	items := make([]int, int(maxClosedLoopRate*o.cfg.Step.Seconds()))
	for i := range items {
		items[i] = i
	}
	asked := 0
	loop := func(clients int) (timing, error) {
		call := verified(name, api.check)
		t, err := drive(ctx, clients, o.cfg.Step, items, func(ctx context.Context, i int) error {
			return call(ctx, o.pool[(asked+i)%len(o.pool)])
		})
		asked += t.calls
		return t, err
	}
	// Untimed, so that most tokens are verified once and cached, as on a
	// gateway that has run a while.
	if _, err := loop(warmUpClients); err != nil {
		return nil, best, fmt.Errorf("overload: warm-up: %w", err)
	}
	for clients := 1; clients <= maxClients; clients *= 2 {
		t, err := loop(clients)
		if err != nil {
			return nil, best, fmt.Errorf("overload: capacity: %w", err)
		}
		s := capacityStep{clients: clients, rate: t.perSecond(t.calls), p50: t.percentile(50), p99: t.percentile(99)}
		steps = append(steps, s)
		o.log.InfoContext(ctx, "overload: closed loop", "clients", clients, "checks/s", int(s.rate), "p50", s.p50, "p99", s.p99)
		if s.rate < best.rate*(1+minGain) {
			break
		}
		best = s
	}
	return steps, best, nil
}

// overload starts a gateway whose bounds derive from the capacity and
// drives each factor of the run against it.
func (o *overloadRun) overload(ctx context.Context, rep *OverloadReport) (err error) {
	// The closed loop's best concurrency is all the work in flight the
	// gateway needs to answer at capacity: more only waits, or, with
	// SpiceDB's memory datastore, slows every check down.
	rep.maxInFlight = rep.capacity.clients
	rep.rateLimit = perUserLimit(rep.capacity.rate, slices.Min(o.cfg.Factors))
	const name = "limited"
	// Not warmed: a warm-up would spend the per-user budgets, and the
	// first check of each user, which verifies its token, is a small part
	// of a phase.
	proc, api, err := o.startGateway(ctx, name, maxOutstanding,
		"--max-in-flight="+strconv.Itoa(rep.maxInFlight), "--rate-limit-user="+strconv.FormatFloat(rep.rateLimit, 'f', -1, 64))
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, proc.stop(context.WithoutCancel(ctx))) }()
	defer api.close()
	for _, k := range o.cfg.Factors {
		done := o.step(ctx, "open loop", "factor", k, "arrivals/s", int(k*rep.capacity.rate), "for", o.cfg.Duration)
		cpu, err := startCPU(proc.pid())
		if err != nil {
			return fmt.Errorf("overload: %w", err)
		}
		logged := proc.logSize()
		p := o.drivePhase(ctx, api, k, k*rep.capacity.rate)
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("overload: %w", context.Cause(ctx))
		}
		p.logBytes = proc.logSize() - logged
		if p.gatewayCPU, p.generatorCPU, err = cpu.cores(); err != nil {
			return fmt.Errorf("overload: %w", err)
		}
		if p.peakRSS, err = peakRSS(proc.pid()); err != nil {
			return fmt.Errorf("overload: %w", err)
		}
		done()
		o.log.InfoContext(ctx, "overload: phase", "factor", k, "200", p.counts[outAnswered], "429", p.counts[outLimited],
			"503", p.counts[outShed], "failed", p.counts[outFailed], "wrong", p.counts[outWrong], "dropped", p.counts[outDropped])
		rep.phases = append(rep.phases, p)
	}
	return nil
}

// perUserLimit is the gateway's --rate-limit-user, in hundredths, for a
// run whose lowest factor is minFactor: each hot user then asks
// hotOverLimit times it (fewer times on a gateway too slow for
// minUserLimit), and an ordinary user a small fraction of it.
func perUserLimit(capacity, minFactor float64) float64 {
	return max(minUserLimit, math.Round(capacity*minFactor*hotShare/hotUsers/hotOverLimit*100)/100)
}

// arrival is one call of the open loop: when, after the phase began, and
// what.
type arrival struct {
	at    time.Duration
	check *Check
}

// schedule draws the arrivals of rate a second for d: a Poisson process,
// as independent callers make, each arrival a hot user's with probability
// hotShare.
func (o *overloadRun) schedule(rate float64, d time.Duration) []arrival {
	out := make([]arrival, 0, int(rate*d.Seconds()*1.1))
	for at := time.Duration(0); ; {
		at += time.Duration(o.rng.ExpFloat64() / rate * float64(time.Second))
		if at >= d {
			return out
		}
		pool := o.pool
		if o.rng.Float64() < hotShare {
			pool = o.hot
		}
		out = append(out, arrival{at: at, check: &pool[o.rng.IntN(len(pool))]})
	}
}

// callResult is what the open loop records of one arrival.
type callResult struct {
	outcome outcome
	// latency runs from the call to its answer; late is how long after
	// its scheduled time the call was made.
	latency, late time.Duration
}

// drivePhase makes the calls of one schedule, each at its time whatever
// the answers to earlier ones (an open loop: callers who do not wait for
// each other), and sums up what became of them.
func (o *overloadRun) drivePhase(ctx context.Context, api *apiClient, factor, rate float64) phase {
	arrivals := o.schedule(rate, o.cfg.Duration)
	results := make([]callResult, len(arrivals))
	var failures sampler
	slots := make(chan struct{}, maxOutstanding)
	var wg sync.WaitGroup
	began := time.Now()
	for i, a := range arrivals {
		if wait := time.Until(began.Add(a.at)); wait > 0 {
			time.Sleep(wait) // the schedule's own pace, not a synchronisation
		}
		if ctx.Err() != nil {
			break
		}
		select {
		case slots <- struct{}{}:
		default:
			results[i].outcome = outDropped
			continue
		}
		wg.Go(func() {
			defer func() { <-slots }()
			results[i] = call(ctx, api, a, began, &failures)
		})
	}
	wg.Wait()
	return summarize(factor, rate, time.Since(began), results, failures.taken())
}

// call makes one arrival's check and classifies the answer.
func call(ctx context.Context, api *apiClient, a arrival, began time.Time, failures *sampler) callResult {
	sent := time.Now()
	allowed, err := api.check(ctx, *a.check)
	r := callResult{latency: time.Since(sent), late: sent.Sub(began.Add(a.at))}
	var why string
	r.outcome, why = classify(*a.check, allowed, err)
	if why != "" {
		failures.add(why)
	}
	return r
}

// classify says what an answer is, and for a failure or a wrong answer
// why. A 429 or 503 must say when to come back.
func classify(c Check, allowed bool, err error) (outcome, string) {
	if err == nil {
		if allowed != c.Want {
			return outWrong, (&WrongAnswerError{System: "gateway", Check: c, Got: allowed}).Error()
		}
		return outAnswered, ""
	}
	se, ok := errors.AsType[*statusError](err)
	if !ok || (se.status != http.StatusTooManyRequests && se.status != http.StatusServiceUnavailable) {
		return outFailed, err.Error()
	}
	if n, perr := strconv.Atoi(se.retryAfter); perr != nil || n < 1 {
		return outFailed, fmt.Sprintf("%v: Retry-After %q, want whole seconds, at least 1", err, se.retryAfter)
	}
	if se.status == http.StatusTooManyRequests {
		return outLimited, ""
	}
	return outShed, ""
}

func summarize(factor, rate float64, took time.Duration, results []callResult, failures []string) phase {
	p := phase{factor: factor, offered: rate, failures: failures}
	var answered, all, late []time.Duration
	for _, r := range results {
		p.counts[r.outcome]++
		if r.outcome == outDropped {
			continue
		}
		if r.outcome == outAnswered || r.outcome == outWrong {
			answered = append(answered, r.latency)
		}
		all = append(all, r.latency)
		late = append(late, r.late)
	}
	for _, l := range [][]time.Duration{answered, all, late} {
		slices.Sort(l)
	}
	p.answered = timing{calls: len(answered), took: took, latencies: answered}
	p.all = timing{calls: len(all), took: took, latencies: all}
	p.late = timing{calls: len(late), took: took, latencies: late}
	return p
}

// sampler keeps the first few of many messages, safe for concurrent use.
type sampler struct {
	mu   sync.Mutex
	msgs []string
}

func (s *sampler) add(msg string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.msgs) < failureSamples {
		s.msgs = append(s.msgs, msg)
	}
}

func (s *sampler) taken() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.msgs)
}

// peakRSS is a process's peak resident memory (VmHWM) in bytes.
func peakRSS(pid int) (int64, error) {
	kb, err := procField(fmt.Sprintf("/proc/%d/status", pid), "VmHWM:")
	if err != nil {
		return 0, fmt.Errorf("peak RSS: %w", err)
	}
	return kb << 10, nil
}

// cpuSpan measures the CPU time the gateway and this process use from its
// start.
type cpuSpan struct {
	pid                int
	began              time.Time
	gateway, generator time.Duration
}

func startCPU(pid int) (cpuSpan, error) {
	s := cpuSpan{pid: pid, began: time.Now()}
	var err error
	if s.gateway, err = cpuTime(strconv.Itoa(pid)); err == nil {
		s.generator, err = cpuTime("self")
	}
	return s, err
}

// cores are the cores each kept busy since the span began, on average.
func (s cpuSpan) cores() (gateway, generator float64, err error) {
	took := time.Since(s.began).Seconds()
	gw, err := cpuTime(strconv.Itoa(s.pid))
	if err != nil {
		return 0, 0, err
	}
	gen, err := cpuTime("self")
	if err != nil {
		return 0, 0, err
	}
	return (gw - s.gateway).Seconds() / took, (gen - s.generator).Seconds() / took, nil
}

// userHZ is the unit of the CPU times in /proc/<pid>/stat: fixed at 100
// a second for user space, whatever the kernel's own tick.
const userHZ = 100

// cpuTime is the user and system CPU time of every thread of process pid
// ("self" for this one) so far.
func cpuTime(pid string) (time.Duration, error) {
	path := "/proc/" + pid + "/stat"
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("cpu time: %w", err)
	}
	// The command name, in parentheses, may hold spaces; utime and stime
	// are the 14th and 15th fields, the 12th and 13th after it.
	_, rest, _ := strings.Cut(string(data), ") ")
	f := strings.Fields(rest)
	if len(f) < 13 {
		return 0, fmt.Errorf("cpu time: %s: too few fields", path)
	}
	var ticks int64
	for _, field := range f[11:13] {
		n, err := strconv.ParseInt(field, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("cpu time: %s: %w", path, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / userHZ, nil
}
