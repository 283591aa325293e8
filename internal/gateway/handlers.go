package gateway

import (
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/tenantgate/tenantgate/internal/authz"
)

// checkItem is one question of a check: a permission on a company.
type checkItem struct {
	Permission string `json:"permission"`
	Company    string `json:"company"`
}

func (it checkItem) request(user string) (authz.CheckRequest, error) {
	if it.Permission == "" {
		return authz.CheckRequest{}, fmt.Errorf("%w: permission is required", authz.ErrInvalid)
	}
	p, err := authz.ParsePermission(it.Permission)
	if err != nil {
		return authz.CheckRequest{}, fmt.Errorf("permission: %w", err)
	}
	if err := authz.ValidateCompanyID(it.Company); err != nil {
		return authz.CheckRequest{}, err
	}
	return authz.CheckRequest{User: user, Permission: p, Company: it.Company}, nil
}

type checkBody struct {
	Permission       string `json:"permission"`
	Company          string `json:"company"`
	ConsistencyToken string `json:"consistency_token"`
	// Subject is kept raw so that a user who sends it at all, even empty
	// or null, is refused: encoding/json leaves a pointer nil for null,
	// which would look absent.
	Subject json.RawMessage `json:"subject"`
	Explain bool            `json:"explain"`
}

type checkResponse struct {
	Allowed          bool             `json:"allowed"`
	ConsistencyToken string           `json:"consistency_token"`
	Explanation      *explanationJSON `json:"explanation,omitempty"`
}

func (g *Gateway) handleCheck(w http.ResponseWriter, r *http.Request, c caller) (any, error) {
	var body checkBody
	if err := decodeJSON(w, r, g.cfg.MaxBodyBytes, &body); err != nil {
		return nil, err
	}
	user, err := c.subject(body.Subject)
	if err != nil {
		return nil, err
	}
	req, err := checkItem{Permission: body.Permission, Company: body.Company}.request(user)
	if err != nil {
		return nil, err
	}
	cons, err := g.consistency(r.Context(), r.Header, body.ConsistencyToken)
	if err != nil {
		return nil, err
	}
	platform := c.platformFor(user)
	allowed, token, err := g.svc.check(r.Context(), req, cons, platform)
	if err != nil {
		return nil, err
	}
	resp := checkResponse{Allowed: allowed, ConsistencyToken: token}
	if body.Explain {
		ex, err := g.svc.explain(r.Context(), user, req.Company, token, platform, map[authz.Permission]bool{req.Permission: allowed})
		if err != nil {
			return nil, err
		}
		resp.Explanation = explanationOf(ex[req.Permission])
	}
	return resp, nil
}

type bulkBody struct {
	Checks           []checkItem     `json:"checks"`
	ConsistencyToken string          `json:"consistency_token"`
	Subject          json.RawMessage `json:"subject"` // raw, as in checkBody
}

type bulkResult struct {
	Permission authz.Permission `json:"permission"`
	Company    string           `json:"company"`
	Allowed    bool             `json:"allowed"`
}

type bulkResponse struct {
	Results          []bulkResult `json:"results"`
	ConsistencyToken string       `json:"consistency_token"`
}

func (g *Gateway) handleCheckBulk(w http.ResponseWriter, r *http.Request, c caller) (any, error) {
	var body bulkBody
	if err := decodeJSON(w, r, g.cfg.MaxBodyBytes, &body); err != nil {
		return nil, err
	}
	user, err := c.subject(body.Subject)
	if err != nil {
		return nil, err
	}
	if n := len(body.Checks); n < 1 || n > g.cfg.MaxBulkChecks {
		return nil, fmt.Errorf("%w: checks must hold 1 to %d items, not %d", authz.ErrInvalid, g.cfg.MaxBulkChecks, n)
	}
	reqs := make([]authz.CheckRequest, len(body.Checks))
	for i, it := range body.Checks {
		if reqs[i], err = it.request(user); err != nil {
			return nil, fmt.Errorf("checks[%d]: %w", i, err)
		}
	}
	cons, err := g.consistency(r.Context(), r.Header, body.ConsistencyToken)
	if err != nil {
		return nil, err
	}
	allowed, token, err := g.svc.checkBulk(r.Context(), reqs, cons, c.platformFor(user))
	if err != nil {
		return nil, err
	}
	results := make([]bulkResult, len(reqs))
	for i, req := range reqs {
		results[i] = bulkResult{Permission: req.Permission, Company: req.Company, Allowed: allowed[i]}
	}
	return bulkResponse{Results: results, ConsistencyToken: token}, nil
}

type companyJSON struct {
	ID       string  `json:"id"`
	Name     string  `json:"name"`
	ParentID *string `json:"parent_id"` // null for a root company
}

type companiesResponse struct {
	Companies  []companyJSON `json:"companies"`
	NextCursor string        `json:"next_cursor,omitempty"`
}

// listQuery is the parsed query of GET /v1/companies.
type listQuery struct {
	permission authz.Permission
	limit      int
	cursor     string // the Authorizer's cursor, unwrapped
	// all is true when the caller's platform role grants permission: the
	// listing is then of every company.
	all bool
}

// parseListQuery refuses unknown and repeated parameters, as the JSON
// decoder refuses unknown fields. An empty value counts as absent, so that
// clients may build the query from empty variables.
func (g *Gateway) parseListQuery(raw string, platform authz.PlatformGrant) (listQuery, error) {
	q, err := onlyParams(raw, "permission", "limit", "cursor")
	if err != nil {
		return listQuery{}, err
	}
	lq := listQuery{permission: authz.PermRead, limit: g.cfg.DefaultPageSize}
	if v := q.Get("permission"); v != "" {
		if lq.permission, err = authz.ParsePermission(v); err != nil {
			return listQuery{}, fmt.Errorf("permission: %w", err)
		}
	}
	if lq.limit, err = g.pageLimit(q); err != nil {
		return listQuery{}, err
	}
	lq.all = platform.Grants(lq.permission)
	if v := q.Get("cursor"); v != "" {
		if lq.cursor, err = decodeCursor(v, lq.permission, lq.all); err != nil {
			return listQuery{}, err
		}
	}
	return lq, nil
}

func (g *Gateway) handleListCompanies(_ http.ResponseWriter, r *http.Request, c caller) (any, error) {
	lq, err := g.parseListQuery(r.URL.RawQuery, c.platform)
	if err != nil {
		return nil, err
	}
	cons, err := g.consistency(r.Context(), r.Header, "")
	if err != nil {
		return nil, err
	}
	companies, next, err := g.svc.listCompanies(r.Context(), c.user, lq.permission, cons, lq.limit, lq.cursor, c.platform)
	if err != nil {
		return nil, err
	}
	resp := companiesResponse{Companies: make([]companyJSON, len(companies))}
	for i, co := range companies {
		resp.Companies[i] = companyJSON{ID: co.ID, Name: co.Name}
		if co.ParentID != "" {
			resp.Companies[i].ParentID = &co.ParentID
		}
	}
	if next != "" {
		resp.NextCursor = encodeCursor(lq.permission, lq.all, next)
	}
	return resp, nil
}

type permissionsResponse struct {
	Company          string                                `json:"company"`
	Permissions      map[authz.Permission]bool             `json:"permissions"`
	ConsistencyToken string                                `json:"consistency_token"`
	Explanations     map[authz.Permission]*explanationJSON `json:"explanations,omitempty"`
}

func (g *Gateway) handlePermissions(_ http.ResponseWriter, r *http.Request, c caller) (any, error) {
	// PathValue is already unescaped: "a.b%40c" arrives as "a.b@c".
	company := r.PathValue("id")
	if err := authz.ValidateCompanyID(company); err != nil {
		return nil, err
	}
	q, err := onlyParams(r.URL.RawQuery, "explain")
	if err != nil {
		return nil, err
	}
	explain, err := boolParam(q, "explain")
	if err != nil {
		return nil, err
	}
	cons, err := g.consistency(r.Context(), r.Header, "")
	if err != nil {
		return nil, err
	}
	perms, token, err := g.svc.permissions(r.Context(), c.user, company, cons, c.platform)
	if err != nil {
		return nil, err
	}
	resp := permissionsResponse{Company: company, Permissions: perms, ConsistencyToken: token}
	if explain {
		ex, err := g.svc.explain(r.Context(), c.user, company, token, c.platform, perms)
		if err != nil {
			return nil, err
		}
		resp.Explanations = make(map[authz.Permission]*explanationJSON, len(ex))
		for p, e := range ex {
			resp.Explanations[p] = explanationOf(e)
		}
	}
	return resp, nil
}

type statusResponse struct {
	Status string `json:"status"`
}

func handleHealthz(w http.ResponseWriter, _ *http.Request) {
	writeDocument(w, http.StatusOK, jsonContentType, statusResponse{Status: "ok"})
}

// handleReadyz does not log when not ready: probes ask every few seconds
// during start-up and the reason is already in the logs of what is starting.
func (g *Gateway) handleReadyz(w http.ResponseWriter, r *http.Request) {
	if !g.ready() || g.stale() {
		writeProblem(w, r, http.StatusServiceUnavailable, "")
		return
	}
	writeDocument(w, http.StatusOK, jsonContentType, statusResponse{Status: "ok"})
}

func handleOpenAPI(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/yaml")
	_, _ = w.Write(openAPIDocument)
}
