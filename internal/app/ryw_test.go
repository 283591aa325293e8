package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"testing"
	"time"
)

// execLSN runs stmt on one connection, as an application writing rows
// itself would, and returns the WAL position read on that connection once
// the commit returned: the consistency token of the write. fn is the
// position function; pg_current_wal_lsn() covers the commit only when it was
// synchronous, so with it the statement runs with synchronous_commit on (the
// test cluster commits asynchronously).
func (s *stack) execLSN(fn, stmt string) string {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := s.db.Acquire(ctx)
	if err != nil {
		s.t.Fatal(err)
	}
	defer conn.Release()
	if fn == "pg_current_wal_lsn" {
		if _, err := conn.Exec(ctx, `SET synchronous_commit = on`); err != nil {
			s.t.Fatal(err)
		}
		defer func() {
			if _, err := conn.Exec(context.Background(), `RESET synchronous_commit`); err != nil {
				s.t.Error(err)
			}
		}()
	}
	if _, err := conn.Exec(ctx, stmt); err != nil {
		s.t.Fatalf("exec %q: %v", stmt, err)
	}
	var lsn string
	if err := conn.QueryRow(ctx, "SELECT "+fn+"()::text").Scan(&lsn); err != nil {
		s.t.Fatal(err)
	}
	return lsn
}

// noise writes to a table outside the publication every few milliseconds
// until the returned function is called.
func (s *stack) noise() (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		ticker := time.NewTicker(3 * time.Millisecond)
		defer ticker.Stop()
		for n := 0; ; n++ {
			if _, err := s.db.Exec(ctx, `INSERT INTO noise VALUES ($1)`, n); err != nil && ctx.Err() == nil {
				s.t.Errorf("noise: %v", err)
				return
			}
			select {
			case <-ctx.Done():
				return
			case <-ticker.C:
			}
		}
	}()
	return func() {
		cancel()
		<-done
	}
}

// request is do with extra headers; it returns the status, the body and
// the response's headers.
func (s *stack) request(method, path, bearer string, body any, headers map[string]string) (int, []byte, http.Header) {
	s.t.Helper()
	var raw []byte
	if body != nil {
		raw = jsonBody(s.t, body)
	}
	header := http.Header{}
	for k, v := range headers {
		header.Set(k, v)
	}
	a := s.mustSend(s.t, method, path, bearer, raw, header)
	return a.status, a.body, a.header
}

// TestReadYourWritesWithLSNTokens writes memberships straight into Postgres
// and reads right after, with no pause, carrying the position read after the
// commit as the consistency token: every read must reflect its write.
func TestReadYourWritesWithLSNTokens(t *testing.T) {
	const rounds = 30
	forEachBackend(t, func(t *testing.T, startStack startFunc) {
		s := startStack(t, `INSERT INTO companies (id, name) VALUES ('acme', 'ACME'), ('globex', 'Globex')`,
			`CREATE TABLE noise (n int)`)
		// Other sessions keep writing WAL the sync has nothing to apply
		// for, so the position read after a commit usually lies past the
		// commit's end: only the sync confirming the stream's end (not
		// just its last commit) can answer such a token.
		stopNoise := s.noise()
		defer stopNoise()
		// How long reads waited, by recipe.
		waits := map[string][]time.Duration{}
		for i := range rounds {
			user := fmt.Sprintf("ryw%d@example.com", i)
			// Both recipes: the insert position after any commit, the write
			// position after a synchronous one.
			fn := "pg_current_wal_insert_lsn"
			if i%3 == 2 {
				fn = "pg_current_wal_lsn"
			}

			lsn := s.execLSN(fn, fmt.Sprintf(`INSERT INTO company_memberships (user_id, company_id, role) VALUES ('%s', 'acme', 'viewer')`, user))
			started := time.Now()
			code, raw, _ := s.request("GET", "/v1/companies?permission=read", s.token(user), nil, map[string]string{"Consistency-Token": lsn})
			waits[fn] = append(waits[fn], time.Since(started))
			if code != http.StatusOK {
				t.Fatalf("round %d: list after grant at %s: status %d: %s", i, lsn, code, raw)
			}
			var page companyPage
			if err := json.Unmarshal(raw, &page); err != nil {
				t.Fatal(err)
			}
			if len(page.Companies) != 1 || page.Companies[0].ID != "acme" {
				t.Fatalf("round %d: %s lists %s right after the grant at %s, want acme", i, user, raw, lsn)
			}

			// A revocation alternates between a delete and a status change.
			revoke := fmt.Sprintf(`DELETE FROM company_memberships WHERE user_id = '%s'`, user)
			if i%2 == 1 {
				revoke = fmt.Sprintf(`UPDATE company_memberships SET status = 'inactive' WHERE user_id = '%s'`, user)
			}
			lsn = s.execLSN(fn, revoke)
			started = time.Now()
			code, raw, _ = s.request("POST", "/v1/check", s.token(user),
				map[string]string{"permission": "read", "company": "acme", "consistency_token": lsn}, nil)
			waits[fn] = append(waits[fn], time.Since(started))
			if code != http.StatusOK {
				t.Fatalf("round %d: check after revoke at %s: status %d: %s", i, lsn, code, raw)
			}
			var ans checkAnswer
			if err := json.Unmarshal(raw, &ans); err != nil {
				t.Fatal(err)
			}
			if ans.Allowed {
				t.Fatalf("round %d: %s still allowed right after the revocation at %s", i, user, lsn)
			}
		}
		for fn, ds := range waits {
			t.Logf("reads with a token from %s(): %s", fn, summarize(ds))
		}

		// A position the database has not reached is no write's token: 400
		// at once (TestConsistencyTokenFromTheFutureIsRefused covers every
		// read); a position not applied in time is 503 (the gateway's
		// TestLSNTokenNotAppliedInTimeIs503).
		t.Run("position ahead of the database is 400", func(t *testing.T) {
			// late is allowed, so an answer that skipped the wait would be
			// allowed:true.
			lsn := s.execLSN("pg_current_wal_insert_lsn", `INSERT INTO company_memberships (user_id, company_id, role) VALUES ('late', 'globex', 'owner')`)
			code, raw, _ := s.request("POST", "/v1/check", s.token("late"),
				map[string]string{"permission": "read", "company": "globex", "consistency_token": lsn}, nil)
			if code != http.StatusOK || !bytes.Contains(raw, []byte(`"allowed":true`)) {
				t.Fatalf("check after grant: status %d: %s", code, raw)
			}
			if err := s.db.QueryRow(context.Background(), `SELECT (pg_current_wal_insert_lsn() + 1073741824)::text`).Scan(&lsn); err != nil {
				t.Fatal(err)
			}
			started := time.Now()
			code, raw, header := s.request("POST", "/v1/check", s.token("late"),
				map[string]string{"permission": "read", "company": "globex", "consistency_token": lsn}, nil)
			if code != http.StatusBadRequest || bytes.Contains(raw, []byte(`"allowed"`)) || header.Get("Content-Type") != "application/problem+json" {
				t.Fatalf("check at a future position: status %d, body %s; want a 400 problem", code, raw)
			}
			t.Logf("400 after %v", time.Since(started).Round(time.Millisecond))
		})
	})
}

// summarize gives the median and the largest of ds.
func summarize(ds []time.Duration) string {
	sorted := slices.Clone(ds)
	slices.Sort(sorted)
	return fmt.Sprintf("median %v, max %v over %d", sorted[len(sorted)/2].Round(time.Millisecond), sorted[len(sorted)-1].Round(time.Millisecond), len(sorted))
}

// TestReadYourWritesThroughTheAPI grants and revokes through the management
// API and reads right after with the token each write answered with: a
// grant is always listed, a revocation never allowed.
func TestReadYourWritesThroughTheAPI(t *testing.T) {
	const rounds = 20
	forEachBackend(t, func(t *testing.T, startStack startFunc) {
		s := startStack(t, `INSERT INTO companies (id, name) VALUES ('acme', 'ACME')`,
			`INSERT INTO company_memberships (user_id, company_id, role) VALUES ('boss@acme.example', 'acme', 'owner')`)
		boss := s.token("boss@acme.example")
		for i := range rounds {
			user := fmt.Sprintf("api-ryw%d@example.com", i)
			path := "/v1/companies/acme/members/" + url.PathEscape(user)
			var granted struct {
				ConsistencyToken string `json:"consistency_token"`
			}
			if code := s.do("PUT", path, boss, map[string]string{"role": "editor"}, &granted); code != http.StatusOK || granted.ConsistencyToken == "" {
				t.Fatalf("round %d: grant: status %d, token %q", i, code, granted.ConsistencyToken)
			}
			code, raw, _ := s.request("GET", "/v1/companies?permission=update", s.token(user), nil,
				map[string]string{"Consistency-Token": granted.ConsistencyToken})
			if code != http.StatusOK || !bytes.Contains(raw, []byte(`"id":"acme"`)) {
				t.Fatalf("round %d: list right after the grant at %s: status %d: %s", i, granted.ConsistencyToken, code, raw)
			}

			code, _, header := s.request("DELETE", path, boss, nil, nil)
			token := header.Get("Consistency-Token")
			if code != http.StatusNoContent || token == "" {
				t.Fatalf("round %d: revoke: status %d, token %q", i, code, token)
			}
			code, raw, _ = s.request("POST", "/v1/check", s.token(user),
				map[string]string{"permission": "read", "company": "acme", "consistency_token": token}, nil)
			if code != http.StatusOK || !bytes.Contains(raw, []byte(`"allowed":false`)) {
				t.Fatalf("round %d: check right after the revocation at %s: status %d: %s", i, token, code, raw)
			}
		}
	})
}
