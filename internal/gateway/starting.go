package gateway

import (
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"
)

// Starting is the handler of a port that listens before the gateway
// behind it exists: while its process starts (waiting for SpiceDB,
// Postgres or the key set), /healthz answers 200, so the orchestrator does
// not restart it, and /readyz and everything else 503 with Retry-After, so
// no load balancer sends it traffic. Ready swaps the real handler in.
type Starting struct {
	h atomic.Pointer[http.Handler]
}

// Ready makes every later request go to h.
func (s *Starting) Ready(h http.Handler) { s.h.Store(&h) }

func (s *Starting) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h := s.h.Load(); h != nil {
		(*h).ServeHTTP(w, r)
		return
	}
	if r.Method == http.MethodGet && r.URL.Path == "/healthz" {
		handleHealthz(w, r)
		return
	}
	writeProblem(w, r, http.StatusServiceUnavailable, "starting: not ready yet")
}

// NewServer returns an http.Server for addr serving h with every timeout
// set, since the zero http.Server lets a slow client hold a connection
// forever. It is the gateway's server before the gateway exists.
func NewServer(cfg Config, addr string, h http.Handler, logger *slog.Logger) *http.Server {
	cfg = cfg.withDefaults()
	const readTimeout = 15 * time.Second
	return &http.Server{
		Addr:              addr,
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       readTimeout,
		// The write deadline runs from the end of the headers, so it must
		// cover reading the body and the backend calls, or a slow but
		// correct answer would be cut off.
		WriteTimeout:   readTimeout + cfg.RequestTimeout + 5*time.Second,
		IdleTimeout:    2 * time.Minute,
		MaxHeaderBytes: 64 << 10, // room for large JWTs
		ErrorLog:       slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
}
