package loadbench

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tenantgate/tenantgate/internal/authz"
)

// FloorCommand is the hidden tenantgate command that serves the floor; the
// bench starts it as a process of its own, like every other system.
const FloorCommand = "bench-floor"

// Authenticator verifies a bearer token and returns the caller it names, as
// *identity.Verifier does for the gateway.
type Authenticator interface {
	Authenticate(ctx context.Context, token string) (authz.Principal, error)
}

// readTimeout bounds reading every row for the floor.
const readTimeout = 5 * time.Minute

// FloorHandler is the floor every system is measured against: POST
// /v1/check answered from the ground truth in memory, behind the same JWT
// verification (and verified-token cache) as the gateway, and nothing
// else. No HTTP service that verifies its caller can answer faster on this
// machine. It reads every company and membership from databaseURL first.
func FloorHandler(ctx context.Context, databaseURL string, authn Authenticator, logger *slog.Logger) (http.Handler, error) {
	began := time.Now()
	companies, memberships, err := readRows(ctx, databaseURL)
	if err != nil {
		return nil, fmt.Errorf("floor: %w", err)
	}
	truth := NewTruth(companies, memberships)
	logger.InfoContext(ctx, "floor: ground truth loaded", "companies", len(companies), "memberships", len(memberships), "took", time.Since(began))
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/check", func(w http.ResponseWriter, r *http.Request) {
		floorCheck(w, r, authn, truth)
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("ok\n"))
	})
	return mux, nil
}

func floorCheck(w http.ResponseWriter, r *http.Request, authn Authenticator, truth *Truth) {
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		http.Error(w, "missing bearer token", http.StatusUnauthorized)
		return
	}
	caller, err := authn.Authenticate(r.Context(), token)
	if err != nil {
		http.Error(w, "invalid token", http.StatusUnauthorized)
		return
	}
	var body struct {
		Permission string `json:"permission"`
		Company    string `json:"company"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		http.Error(w, "malformed body", http.StatusBadRequest)
		return
	}
	p, err := authz.ParsePermission(body.Permission)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]bool{"allowed": truth.Allowed(caller.Subject, p, body.Company)})
}

// readRows reads every company and membership.
func readRows(ctx context.Context, databaseURL string) ([]authz.Company, []authz.Membership, error) {
	ctx, cancel := context.WithTimeout(ctx, readTimeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, databaseURL)
	if err != nil {
		return nil, nil, fmt.Errorf("read rows: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	rows, _ := conn.Query(ctx, `SELECT id, name, coalesce(parent_id, '') FROM companies`)
	companies, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (authz.Company, error) {
		var c authz.Company
		err := row.Scan(&c.ID, &c.Name, &c.ParentID)
		return c, err
	})
	if err != nil {
		return nil, nil, fmt.Errorf("read companies: %w", err)
	}
	rows, _ = conn.Query(ctx, `SELECT user_id, company_id, role, status FROM company_memberships`)
	memberships, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (authz.Membership, error) {
		var m authz.Membership
		err := row.Scan(&m.UserID, &m.CompanyID, &m.Role, &m.Status)
		return m, err
	})
	if err != nil {
		return nil, nil, fmt.Errorf("read memberships: %w", err)
	}
	return companies, memberships, nil
}
