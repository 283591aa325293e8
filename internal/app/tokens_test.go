package app_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tenantgate/tenantgate/internal/authz"
	"github.com/tenantgate/tenantgate/internal/testutil"
)

// tokenSeed is one company, its child, and eve, an editor there whose
// membership the tests revoke.
const tokenSeed = `
INSERT INTO companies (id, name, parent_id) VALUES ('vault', 'Vault', NULL);
INSERT INTO companies (id, name, parent_id) VALUES ('vault-kid', 'Vault Kid', 'vault');
INSERT INTO company_memberships (user_id, company_id, role) VALUES
  ('keeper', 'vault', 'owner'), ('eve', 'vault', 'editor');`

// TestOldTokenNeverReadsOlderThanTheFloor: a consistency token can make a
// read fresher, never older than the last change the sync applied. A user
// whose membership was revoked replays the token of an answer that allowed
// them; once the sync applied the revocation, every read that takes a token
// denies, for longer than SpiceDB's 5 s revision quantization.
func TestOldTokenNeverReadsOlderThanTheFloor(t *testing.T) {
	forEachBackend(t, func(t *testing.T, start startFunc) {
		s := start(t, tokenSeed)
		eve := s.token("eve")
		var granted checkAnswer
		if code := s.do("POST", "/v1/check", eve, map[string]string{"permission": "update", "company": "vault-kid"}, &granted); code != http.StatusOK || !granted.Allowed {
			t.Fatalf("eve before the revocation: status %d, %+v; want allowed", code, granted)
		}
		old := granted.ConsistencyToken

		s.exec(`delete from company_memberships where user_id = 'eve'`)
		s.awaitFloor(t)

		header := http.Header{"Consistency-Token": {old}}
		deadline := time.Now().Add(6 * time.Second)
		n := 0
		for ; n < 50 || time.Now().Before(deadline); n++ {
			var ans checkAnswer
			if code := s.do("POST", "/v1/check", eve, map[string]string{"permission": "update", "company": "vault-kid", "consistency_token": old}, &ans); code != http.StatusOK || ans.Allowed {
				t.Fatalf("replay %d on check: status %d, %+v; want a deny", n, code, ans)
			}
			var bulk struct {
				Results []struct{ Allowed bool } `json:"results"`
			}
			body := map[string]any{"consistency_token": old, "checks": []map[string]string{
				{"permission": "read", "company": "vault"}, {"permission": "update", "company": "vault-kid"}}}
			if code := s.do("POST", "/v1/check/bulk", eve, body, &bulk); code != http.StatusOK || len(bulk.Results) != 2 || bulk.Results[0].Allowed || bulk.Results[1].Allowed {
				t.Fatalf("replay %d on bulk: status %d, %+v; want denies", n, code, bulk)
			}
			a := s.mustSend(t, "GET", "/v1/companies?permission=read", eve, nil, header)
			var page companyPage
			decodeAnswer(t, a, &page)
			if a.status != http.StatusOK || len(page.Companies) != 0 {
				t.Fatalf("replay %d on list: status %d, %s; want no company", n, a.status, a.body)
			}
			a = s.mustSend(t, "GET", "/v1/companies/vault-kid/permissions", eve, nil, header)
			var perms struct {
				Permissions map[string]bool `json:"permissions"`
			}
			decodeAnswer(t, a, &perms)
			if a.status != http.StatusOK || perms.Permissions["read"] || perms.Permissions["update"] {
				t.Fatalf("replay %d on permissions: status %d, %s; want no permission", n, a.status, a.body)
			}
			time.Sleep(50 * time.Millisecond) // pacing: spread the replays over the window
		}
		t.Logf("%d replays of the old token, each on check, bulk, list and permissions: all denied", n)
	})
}

// awaitFloor returns once every replica reads at least as fresh as what
// the application committed before: a check carrying the WAL position as
// its token waits for the sync, and each replica's floor then covers the
// sync's newest checkpoint (a remote replica learns it by polling).
func (s *stack) awaitFloor(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var lsn string
	if err := s.db.QueryRow(ctx, `select pg_current_wal_insert_lsn()::text`).Scan(&lsn); err != nil {
		t.Fatal(err)
	}
	for range s.baseURLs {
		if code := s.do("POST", "/v1/check", s.token("keeper"), map[string]string{"permission": "read", "company": "vault", "consistency_token": lsn}, nil); code != http.StatusOK {
			t.Fatalf("check at %s: status %d", lsn, code)
		}
	}
	var want authz.LSN
	if err := s.db.QueryRow(ctx, `select coalesce(max(lsn), '0/0') from tenantgate.sync_checkpoints`).Scan(&want); err != nil {
		t.Fatal(err)
	}
	for _, base := range s.baseURLs {
		testutil.Eventually(t, time.Minute, func() error {
			floor, err := metric(base, "tenantgate_gateway_floor_lsn")
			if err != nil {
				return err
			}
			if authz.LSN(floor) < want {
				return fmt.Errorf("%s reads at least as fresh as %s, want %s", base, authz.LSN(floor), want)
			}
			return nil
		})
	}
}

// metric reads one unlabelled metric of a gateway or sync.
func metric(base, name string) (float64, error) {
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Get(base + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			return strconv.ParseFloat(v, 64)
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("%s/metrics has no %s", base, name)
}

// TestConsistencyTokenFromTheFutureIsRefused: a WAL position beyond what
// the database has written is no token any write answered with; it is a
// 400 at once, not a wait for the whole --consistency-wait and a 503.
func TestConsistencyTokenFromTheFutureIsRefused(t *testing.T) {
	forEachBackend(t, func(t *testing.T, start startFunc) {
		s := start(t, tokenSeed)
		keeper := s.token("keeper")
		for _, future := range []string{"FFFFFFFF/FFFFFFFF", "FFFF/0"} {
			header := http.Header{"Consistency-Token": {future}}
			for _, req := range []struct {
				name, method, path string
				body               any
				header             http.Header
			}{
				{"check", "POST", "/v1/check", map[string]string{"permission": "read", "company": "vault", "consistency_token": future}, nil},
				{"bulk", "POST", "/v1/check/bulk", map[string]any{"consistency_token": future,
					"checks": []map[string]string{{"permission": "read", "company": "vault"}}}, nil},
				{"list", "GET", "/v1/companies?" + url.Values{"permission": {"read"}}.Encode(), nil, header},
				{"permissions", "GET", "/v1/companies/vault/permissions", nil, header},
				{"effective members", "GET", membersPath("vault") + "?effective=true", nil, header},
			} {
				t.Run(future+"/"+req.name, func(t *testing.T) {
					var raw []byte
					if req.body != nil {
						raw = jsonBody(t, req.body)
					}
					a := s.mustSend(t, req.method, req.path, keeper, raw, req.header)
					var doc struct {
						Status int    `json:"status"`
						Detail string `json:"detail"`
					}
					if err := json.Unmarshal(a.body, &doc); err != nil || a.status != http.StatusBadRequest || doc.Status != a.status {
						t.Fatalf("status %d, %s; want a 400 problem document", a.status, a.body)
					}
					if !strings.Contains(doc.Detail, "ahead of the database") {
						t.Errorf("detail %q does not say the token is ahead of the database", doc.Detail)
					}
				})
			}
		}
	})
}
