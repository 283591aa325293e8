package app_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tenantgate/tenantgate/internal/app"
	"github.com/tenantgate/tenantgate/internal/testutil"
)

// qualifiedPositionSQL is what docs/operations.md gives an application that
// writes rows itself to read the token of its write with the timeline.
const qualifiedPositionSQL = `select lsn::text || '@' || ('x' || left(pg_walfile_name(lsn), 8))::bit(32)::bigint
from (select pg_current_wal_insert_lsn() as lsn) as current`

// TestConsistencyTokenOfAnEarlierTimelineIsRefused: after a failover or a
// restore the database continues on a new timeline, whose WAL soon passes
// the positions of writes the old one had and the new one may have lost. A
// token a write answered with before is refused with a 400 saying so, even
// once the database's WAL is past it; one of the new timeline is waited for
// as ever, and so is a bare LSN, which names no timeline.
func TestConsistencyTokenOfAnEarlierTimelineIsRefused(t *testing.T) {
	ctx := t.Context()
	// A cluster of the test's own, since it moves to a new timeline.
	pg := testutil.NewTestPostgres(t)
	testutil.NewAppDatabase(t, pg)
	s := startEmbeddedStackWith(t, func(cfg *app.Config) { cfg.DatabaseURL = pg.URL("app") })
	// The stack's pool is on the database the harness made; the rows are
	// in this one.
	pool, err := pgxpool.New(ctx, pg.URL("app"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	s.db = pool
	s.exec(tokenSeed)

	before := s.putMember(t, "keeper", "vault", "ann", `{"role":"viewer"}`)
	if !regexp.MustCompile(`^[0-9A-F]{1,8}/[0-9A-F]{1,8}@1$`).MatchString(before) {
		t.Fatalf("token of a write %q, want a WAL position on timeline 1", before)
	}
	// A read compares it with the database's position, as a client reading
	// its write does just before a failover.
	s.eventuallyReadsAt(t, "ann", before)

	if err := pg.NewTimeline(ctx); err != nil {
		t.Fatal(err)
	}
	// The test's connections ended with the server.
	pool.Reset()
	// The gateway's connections ended with the server; the first writes
	// may meet that.
	var after string
	testutil.Eventually(t, 2*time.Minute, func() error {
		a, err := s.send("PUT", memberPath("vault", "bob"), s.token("keeper"), []byte(`{"role":"viewer"}`), nil)
		if err != nil || a.status != http.StatusOK {
			return fmt.Errorf("write after the failover: %v, status %d: %s", err, a.status, a.body)
		}
		var m struct {
			ConsistencyToken string `json:"consistency_token"`
		}
		if err := json.Unmarshal(a.body, &m); err != nil {
			return err
		}
		after = m.ConsistencyToken
		return nil
	})
	if !strings.HasSuffix(after, "@2") {
		t.Fatalf("token of a write after the failover %q, want a WAL position on timeline 2", after)
	}
	var passed bool
	if err := s.db.QueryRow(ctx, `select pg_current_wal_insert_lsn() > $1::pg_lsn`, strings.TrimSuffix(before, "@1")).Scan(&passed); err != nil || !passed {
		t.Fatalf("the database's WAL is not past %s (%v): the test shows nothing", before, err)
	}

	t.Run("a token of the earlier timeline is refused", func(t *testing.T) {
		checkBefore := jsonBody(t, map[string]string{"permission": "read", "company": "vault", "consistency_token": before})
		// The gateway trusts the position it read before the failover for
		// a second (app.reachedTrust), less than a failover that loses
		// writes takes; this one may have taken less.
		testutil.Eventually(t, time.Minute, func() error {
			if a, err := s.send("POST", "/v1/check", s.token("ann"), checkBefore, nil); err != nil || a.status != http.StatusBadRequest {
				return fmt.Errorf("read with %s: %v, status %d: %s", before, err, a.status, a.body)
			}
			return nil
		})
		header := http.Header{"Consistency-Token": {before}}
		for _, req := range []struct {
			name, method, path string
			body               []byte
			header             http.Header
		}{
			{"check", "POST", "/v1/check", checkBefore, nil},
			{"permissions", "GET", "/v1/companies/vault/permissions", nil, header},
		} {
			t.Run(req.name, func(t *testing.T) {
				a := s.mustSend(t, req.method, req.path, s.token("ann"), req.body, req.header)
				detail, _ := problemOf(t, a, http.StatusBadRequest)["detail"].(string)
				for _, want := range []string{"earlier database history", "timeline 1", "timeline 2 since a failover or restore", "may have been lost"} {
					if !strings.Contains(detail, want) {
						t.Errorf("detail %q does not say %q", detail, want)
					}
				}
			})
		}
	})
	t.Run("a token of the new timeline is waited for", func(t *testing.T) {
		// Until the sync has followed the server through its restart the
		// wait may run out (503).
		s.eventuallyReadsAt(t, "bob", after)
	})
	t.Run("a bare LSN names no timeline", func(t *testing.T) {
		var lsn string
		if err := s.db.QueryRow(ctx, `select pg_current_wal_insert_lsn()::text`).Scan(&lsn); err != nil {
			t.Fatal(err)
		}
		s.eventuallyReadsAt(t, "bob", lsn)
	})
	t.Run("the documented query gives a token of the new timeline", func(t *testing.T) {
		var token string
		if err := s.db.QueryRow(ctx, qualifiedPositionSQL).Scan(&token); err != nil {
			t.Fatal(err)
		}
		if !strings.HasSuffix(token, "@2") {
			t.Fatalf("%q, want a WAL position on timeline 2", token)
		}
		s.eventuallyReadsAt(t, "bob", token)
	})
	t.Run("a token of a later timeline is ahead", func(t *testing.T) {
		a := s.mustSend(t, "POST", "/v1/check", s.token("bob"),
			jsonBody(t, map[string]string{"permission": "read", "company": "vault", "consistency_token": "0/1@3"}), nil)
		if detail, _ := problemOf(t, a, http.StatusBadRequest)["detail"].(string); !strings.Contains(detail, "ahead of the database") {
			t.Errorf("detail %q does not say the token is ahead of the database", detail)
		}
	})
}

// eventuallyReadsAt waits until user, whose membership of vault the write
// of token made, may read vault at token.
func (s *stack) eventuallyReadsAt(t *testing.T, user, token string) {
	t.Helper()
	testutil.Eventually(t, 2*time.Minute, func() error {
		var ans checkAnswer
		code, err := s.call("POST", "/v1/check", s.token(user), map[string]string{"permission": "read", "company": "vault", "consistency_token": token}, &ans)
		if err != nil || code != http.StatusOK || !ans.Allowed {
			return fmt.Errorf("read at %s: %v, status %d, %+v", token, err, code, ans)
		}
		return nil
	})
}
