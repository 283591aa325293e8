package gateway

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/tenantgate/tenantgate/internal/authz"
)

// errRateLimited is a caller over its rate limit: 429 with Retry-After.
var errRateLimited = errors.New("too many requests")

// rateLimitedError carries how long the caller should wait.
type rateLimitedError struct {
	scope string
	wait  time.Duration
}

func (e *rateLimitedError) Error() string {
	return fmt.Sprintf("%s: the %s rate limit is reached; retry in %s", errRateLimited, e.scope, e.wait.Round(time.Millisecond))
}

func (e *rateLimitedError) Unwrap() error { return errRateLimited }

// retryAfterSeconds is what a Retry-After header says for wait: whole
// seconds, at least one, since 0 would invite a retry at once.
func retryAfterSeconds(wait time.Duration) string {
	return strconv.Itoa(max(1, int(math.Ceil(wait.Seconds()))))
}

// limiterSet holds a token bucket per key (a user, an address), so that
// one caller's burst spends its own budget and nobody else's. It holds at
// most max keys: past that, an arbitrary key is dropped, which only hands
// that key a fresh bucket, so memory stays bounded whatever the number of
// addresses an attacker has.
type limiterSet struct {
	limit rate.Limit
	burst int
	max   int

	mu       sync.Mutex
	limiters map[string]*rate.Limiter
}

// newLimiterSet allows perSecond requests a second to each key, with bursts
// of burst; nil (no limit) when perSecond is 0.
func newLimiterSet(perSecond float64, burst, maxKeys int) *limiterSet {
	if perSecond <= 0 {
		return nil
	}
	return &limiterSet{limit: rate.Limit(perSecond), burst: max(1, burst), max: maxKeys, limiters: map[string]*rate.Limiter{}}
}

// allow takes a token of key's bucket, or says how long until one is there.
func (s *limiterSet) allow(key string, now time.Time) (ok bool, wait time.Duration) {
	if s == nil {
		return true, 0
	}
	s.mu.Lock()
	l, found := s.limiters[key]
	if !found {
		if len(s.limiters) >= s.max {
			for k := range s.limiters { // map order is random: no key is always the victim
				delete(s.limiters, k)
				break
			}
		}
		l = rate.NewLimiter(s.limit, s.burst)
		s.limiters[key] = l
	}
	s.mu.Unlock()
	r := l.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d
	}
	return true, 0
}

func (s *limiterSet) size() int {
	if s == nil {
		return 0
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.limiters)
}

// limits are the gateway's rate limits and its bound on work in flight.
type limits struct {
	address, user, service *limiterSet
	// inFlight holds a token per API request being served; nil: no bound.
	inFlight chan struct{}
	now      func() time.Time
}

// maxLimiterKeys bounds each limiter set's memory (about 100 bytes a key).
const maxLimiterKeys = 100_000

func newLimits(cfg Config) *limits {
	l := &limits{
		address: newLimiterSet(cfg.RateLimitAddress, int(math.Ceil(2*cfg.RateLimitAddress)), maxLimiterKeys),
		user:    newLimiterSet(cfg.RateLimitUser, int(math.Ceil(2*cfg.RateLimitUser)), maxLimiterKeys),
		service: newLimiterSet(cfg.RateLimitService, int(math.Ceil(2*cfg.RateLimitService)), 1),
		now:     time.Now,
	}
	if cfg.MaxInFlight > 0 {
		l.inFlight = make(chan struct{}, cfg.MaxInFlight)
	}
	return l
}

// addressKey is the rate-limit key of a client address: the IP, and for
// IPv6 its /64, which one host can fill with addresses.
func addressKey(remoteAddr string) string {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	ip := net.ParseIP(host)
	if ip == nil {
		return host
	}
	if ip.To4() == nil {
		return ip.Mask(net.CIDRMask(64, 128)).String() + "/64"
	}
	return ip.String()
}

// beforeAuth applies the per-address limit, which keeps one address from
// making the gateway verify tokens without end.
func (l *limits) beforeAuth(r *http.Request) error {
	if ok, wait := l.address.allow(addressKey(r.RemoteAddr), l.now()); !ok {
		return &rateLimitedError{scope: "per-address", wait: wait}
	}
	return nil
}

// afterAuth applies the caller's own limit: the service token's, or the
// user's.
func (l *limits) afterAuth(c caller) error {
	set, key, scope := l.user, "user:"+c.user, "per-user"
	if c.service {
		set, key, scope = l.service, "service", "service token"
	}
	if ok, wait := set.allow(key, l.now()); !ok {
		return &rateLimitedError{scope: scope, wait: wait}
	}
	return nil
}

// admit takes a slot of work in flight, or fails at once: a gateway that
// queued requests past its capacity would answer all of them late, and
// authorization answers that come late are timeouts to their callers.
func (l *limits) admit() (release func(), err error) {
	if l.inFlight == nil {
		return func() {}, nil
	}
	select {
	case l.inFlight <- struct{}{}:
		return func() { <-l.inFlight }, nil
	default:
		return nil, fmt.Errorf("%w: the gateway is at its bound of %d requests in flight", errOverloaded, cap(l.inFlight))
	}
}

// errOverloaded is load shed: 503 with Retry-After, like any outage.
var errOverloaded = fmt.Errorf("%w: overloaded", authz.ErrUnavailable)
