package gateway_test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tenantgate/tenantgate/internal/gateway"
)

// Slow clients against the server gw.Server configures, on a real
// listener. Its timeouts are constants of seconds, so the test shortens
// the two it exercises on the server Server returned; everything else
// (handler, write and idle timeouts, header size) is as in production.

const (
	slowHeaderTimeout = 300 * time.Millisecond
	slowReadTimeout   = 1 * time.Second
	// slack covers a loaded machine: the server's deadline has fired by
	// then, or it never will.
	slowSlack = 3 * time.Second
)

// startSlowServer serves e's gateway as gw.Server does, with short read
// timeouts, and returns its address.
func startSlowServer(t *testing.T, e *env) string {
	t.Helper()
	real := e.gw.Server("127.0.0.1:0")
	if real.ReadHeaderTimeout <= 0 || real.ReadTimeout <= 0 || real.ReadHeaderTimeout > real.ReadTimeout {
		t.Fatalf("gw.Server: ReadHeaderTimeout %v, ReadTimeout %v: a slow client could hold a connection", real.ReadHeaderTimeout, real.ReadTimeout)
	}
	srv := e.gw.Server("127.0.0.1:0")
	srv.ReadHeaderTimeout, srv.ReadTimeout = slowHeaderTimeout, slowReadTimeout
	ln, err := net.Listen("tcp", srv.Addr)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		_ = srv.Close()
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
	})
	return ln.Addr().String()
}

// trickle writes data one byte every interval until it is all sent or a
// write fails (the server closed the connection), and reports how many
// bytes went out.
func trickle(conn net.Conn, data string, interval time.Duration) <-chan int {
	sent := make(chan int, 1)
	go func() {
		tick := time.NewTicker(interval)
		defer tick.Stop()
		n := 0
		for ; n < len(data); n++ {
			<-tick.C
			_ = conn.SetWriteDeadline(time.Now().Add(slowSlack))
			if _, err := conn.Write([]byte{data[n]}); err != nil {
				break
			}
		}
		sent <- n
	}()
	return sent
}

// readUntilClosed reads what the server sends until it closes the
// connection, failing the test if that takes until deadline.
func readUntilClosed(t *testing.T, conn net.Conn, deadline time.Time) (answer string, closedAfter time.Duration) {
	t.Helper()
	start := time.Now()
	if err := conn.SetReadDeadline(deadline); err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(conn)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the server still holds the connection after %v; it answered %q", time.Since(start).Round(time.Millisecond), b)
	}
	// EOF or a reset: either way the server is done with it.
	return string(b), time.Since(start)
}

// TestSlowHeadersAreCutOff: a client that sends its headers a byte at a
// time, each byte well within any per-read wait, loses its connection once
// ReadHeaderTimeout has passed, before the headers are complete, with at
// most net/http's own 4xx; nothing reaches the handler.
func TestSlowHeadersAreCutOff(t *testing.T) {
	e := newEnv(t, gateway.Config{})
	addr := startSlowServer(t, e)
	request := "POST /v1/check HTTP/1.1\r\nHost: tenantgate\r\nAuthorization: Bearer " + aliceToken +
		"\r\nContent-Type: application/json\r\nContent-Length: 38\r\n\r\n" + `{"permission":"read","company":"acme"}`
	start := time.Now()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// 20 ms a byte: the headers take about 2.5 s, ReadHeaderTimeout 0.3 s.
	sent := trickle(conn, request, 20*time.Millisecond)
	answer, _ := readUntilClosed(t, conn, start.Add(slowHeaderTimeout+slowSlack))
	elapsed := time.Since(start)
	if elapsed < slowHeaderTimeout {
		t.Errorf("cut off after %v, before ReadHeaderTimeout", elapsed)
	}
	if answer != "" {
		// net/http's own plain answer, never the gateway's.
		resp, err := http.ReadResponse(bufio.NewReader(strings.NewReader(answer)), nil)
		if err != nil || resp.StatusCode < 400 || resp.StatusCode >= 500 {
			t.Errorf("answered a request whose headers never arrived: %q", answer)
		}
	}
	conn.Close()
	if n := <-sent; n >= strings.Index(request, "\r\n\r\n") {
		t.Errorf("all %d bytes of the headers went out before the cut", n)
	}
	if e.authn.calls.Load() != 0 || e.authz.calls() != 0 {
		t.Error("a request whose headers never arrived reached the handler")
	}
}

// TestSlowBodiesAreCutOff: a client whose headers are complete but whose
// body stalls, or trickles in a byte at a time, loses its connection once
// ReadTimeout has passed since it connected. The handler, whose read fails,
// answers with a 4xx problem at most: never an allow, never a 5xx.
func TestSlowBodiesAreCutOff(t *testing.T) {
	body := `{"permission":"read","company":"acme"}`
	headers := "POST /v1/check HTTP/1.1\r\nHost: tenantgate\r\nAuthorization: Bearer " + aliceToken +
		"\r\nContent-Type: application/json\r\nContent-Length: " + fmt.Sprint(len(body)+1000) + "\r\n\r\n"
	for _, tt := range []struct {
		name string
		send func(conn net.Conn) <-chan int
	}{
		{"stalled", func(conn net.Conn) <-chan int {
			sent := make(chan int, 1)
			_, err := io.WriteString(conn, headers+body[:10])
			if err != nil {
				t.Fatal(err)
			}
			sent <- len(headers) + 10
			return sent // and nothing more
		}},
		{"trickling", func(conn net.Conn) <-chan int {
			if _, err := io.WriteString(conn, headers); err != nil {
				t.Fatal(err)
			}
			// 50 ms a byte: the body would take a minute.
			return trickle(conn, body+strings.Repeat(" ", 1000), 50*time.Millisecond)
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, gateway.Config{})
			allowAlice(e)
			addr := startSlowServer(t, e)
			start := time.Now()
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			sent := tt.send(conn)
			answer, _ := readUntilClosed(t, conn, start.Add(slowReadTimeout+slowSlack))
			if elapsed := time.Since(start); elapsed < slowReadTimeout {
				t.Errorf("cut off after %v, before ReadTimeout", elapsed)
			}
			conn.Close()
			<-sent
			if answer != "" {
				resp, err := http.ReadResponse(bufio.NewReader(strings.NewReader(answer)), nil)
				if err != nil {
					t.Fatalf("answer %q: %v", answer, err)
				}
				defer resp.Body.Close()
				b, _ := io.ReadAll(resp.Body)
				if resp.StatusCode < 400 || resp.StatusCode >= 500 {
					t.Errorf("a cut-off body was answered %d: %s", resp.StatusCode, b)
				}
				assertProblem(t, resp.StatusCode, resp.Header, b)
				t.Logf("answered %d: %s", resp.StatusCode, b)
			}
			if e.authz.calls() != 0 {
				t.Error("a body that never arrived reached the authorizer")
			}
		})
	}
}
