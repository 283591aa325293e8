package outagetest

import (
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// proxy forwards TCP connections to a target and plays the network's part
// in an outage: it delays what it forwards, cuts the connections it holds,
// and refuses new ones, until told to resume.
type proxy struct {
	ln         net.Listener
	target     string
	forwarding sync.WaitGroup

	mu      sync.Mutex
	latency time.Duration
	// changed is closed, and replaced, when the latency changes or
	// connections are cut, so that chunks held back are weighed again.
	changed  chan struct{}
	refusing bool
	conns    map[net.Conn]struct{}
	closed   bool
}

// startProxy listens on a loopback port for connections to forward to
// target; it stops, closing every connection, when the test ends.
func startProxy(t *testing.T, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target, changed: make(chan struct{}), conns: map[net.Conn]struct{}{}}
	var accepting sync.WaitGroup
	accepting.Go(p.accept)
	t.Cleanup(func() {
		p.mu.Lock()
		p.closed = true
		p.mu.Unlock()
		ln.Close()
		accepting.Wait()
		p.cut()
		p.forwarding.Wait()
	})
	return p
}

// addr is the address to dial instead of the target's.
func (p *proxy) addr() string { return p.ln.Addr().String() }

// setLatency holds every chunk read from either side for d before it is
// passed on, chunks already held included; 0 passes them on at once.
func (p *proxy) setLatency(d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.latency = d
	p.signalLocked()
}

// signalLocked wakes every held chunk; p.mu must be held.
func (p *proxy) signalLocked() {
	close(p.changed)
	p.changed = make(chan struct{})
}

// refuse resets every new connection at once and cuts those open: the
// target is unreachable. The port stays the proxy's, so resume cannot
// lose it to another process.
func (p *proxy) refuse() {
	p.mu.Lock()
	p.refusing = true
	p.mu.Unlock()
	p.cut()
}

// resume forwards new connections again, without latency.
func (p *proxy) resume() {
	p.mu.Lock()
	p.refusing = false
	p.mu.Unlock()
	p.setLatency(0)
}

// cut closes every connection the proxy holds, both sides.
func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.Close()
	}
	clear(p.conns)
	p.signalLocked()
}

func (p *proxy) accept() {
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return // closed when the test ends
		}
		p.forwarding.Go(func() { p.forward(client) })
	}
}

// forward copies between client and a fresh connection to the target
// until either side ends or the proxy cuts them.
func (p *proxy) forward(client net.Conn) {
	if !p.track(client) {
		if tcp, ok := client.(*net.TCPConn); ok {
			_ = tcp.SetLinger(0) // a reset, as from a host with nothing listening
		}
		client.Close()
		return
	}
	server, err := net.Dial("tcp", p.target)
	if err != nil || !p.track(server) {
		if err == nil {
			server.Close()
		}
		p.untrack(client)
		return
	}
	var copying sync.WaitGroup
	copying.Go(func() { p.copy(server, client) })
	copying.Go(func() { p.copy(client, server) })
	copying.Wait()
	p.untrack(client)
	p.untrack(server)
}

// track registers c, unless the proxy refuses connections or has stopped.
func (p *proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.refusing || p.closed {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *proxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	c.Close()
}

// copy passes chunks from src to dst, each after the latency, and closes
// both when either fails, so the other direction ends too.
func (p *proxy) copy(dst, src net.Conn) {
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if !p.hold(time.Now(), src) {
				return
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// hold waits until a chunk read at readAt is due under the current
// latency, and reports false once the proxy has cut src.
func (p *proxy) hold(readAt time.Time, src net.Conn) bool {
	for {
		p.mu.Lock()
		due, changed := readAt.Add(p.latency), p.changed
		_, open := p.conns[src]
		p.mu.Unlock()
		wait := time.Until(due)
		if !open {
			return false
		}
		if wait <= 0 {
			return true
		}
		timer := time.NewTimer(wait)
		select {
		case <-timer.C:
		case <-changed:
			timer.Stop()
		}
	}
}

// TestProxy checks each of the proxy's powers against an echo server.
func TestProxy(t *testing.T) {
	t.Parallel()
	echo, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { echo.Close() })
	go func() {
		for {
			c, err := echo.Accept()
			if err != nil {
				return
			}
			go func() { _, _ = io.Copy(c, c); c.Close() }()
		}
	}()
	px := startProxy(t, echo.Addr().String())
	// roundTrip sends a byte and waits for it to come back, at most wait.
	roundTrip := func(c net.Conn, wait time.Duration) (time.Duration, error) {
		began := time.Now()
		if err := c.SetDeadline(began.Add(wait)); err != nil {
			return 0, err
		}
		if _, err := c.Write([]byte{1}); err != nil {
			return 0, err
		}
		_, err := io.ReadFull(c, make([]byte, 1))
		return time.Since(began), err
	}

	// dialTrip is a round trip on a new connection.
	dialTrip := func() error {
		c, err := net.Dial("tcp", px.addr())
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = roundTrip(c, 5*time.Second)
		return err
	}

	c, err := net.Dial("tcp", px.addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := roundTrip(c, 5*time.Second); err != nil {
		t.Fatalf("forwarding: %v", err)
	}
	const latency = 200 * time.Millisecond
	px.setLatency(latency)
	if took, err := roundTrip(c, 5*time.Second); err != nil || took < 2*latency {
		t.Errorf("with %v of latency each way: round trip %v, %v; want at least %v", latency, took, err, 2*latency)
	}
	// A chunk held under a long latency goes on as soon as it is lifted.
	px.setLatency(time.Hour)
	lifted := time.AfterFunc(100*time.Millisecond, func() { px.setLatency(0) })
	t.Cleanup(func() { lifted.Stop() })
	if took, err := roundTrip(c, 5*time.Second); err != nil || took < 50*time.Millisecond {
		t.Errorf("latency lifted after 100ms: round trip %v, %v; want it held until then, not longer", took, err)
	}
	px.cut()
	if _, err := roundTrip(c, 5*time.Second); err == nil {
		t.Error("a cut connection still forwards")
	}
	px.refuse()
	if err := dialTrip(); err == nil {
		t.Error("a new connection is forwarded while the proxy refuses")
	}
	px.resume()
	if err := dialTrip(); err != nil {
		t.Errorf("after resume: %v", err)
	}
}
