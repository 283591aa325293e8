package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/tenantgate/tenantgate/internal/authz"
)

// Manager carries out management requests against the application's
// database, deciding each one by the grant rules on the current rows; the
// store implements it. Writes return the consistency token of their commit.
type Manager interface {
	SetMember(ctx context.Context, actor authz.Actor, m authz.Membership) (authz.Membership, string, error)
	RemoveMember(ctx context.Context, actor authz.Actor, companyID, userID string) (string, error)
	AcceptMembership(ctx context.Context, actor authz.Actor, companyID string) (authz.Membership, string, error)
	DeclineMembership(ctx context.Context, actor authz.Actor, companyID string) (string, error)
	CreateCompany(ctx context.Context, actor authz.Actor, c authz.Company) (authz.Company, string, error)
	UpdateCompany(ctx context.Context, actor authz.Actor, id string, u authz.CompanyUpdate) (authz.Company, string, error)
	Members(ctx context.Context, actor authz.Actor, companyID string) ([]authz.Membership, error)
	Accesses(ctx context.Context, actor authz.Actor, companyID string) ([]authz.Access, error)
	Audit(ctx context.Context, actor authz.Actor, companyID string, limit int, before int64) ([]authz.AuditEntry, error)
}

// UserLookup lists who holds a permission on a company; SpiceDB implements
// it.
type UserLookup interface {
	LookupUsers(ctx context.Context, company string, p authz.Permission, c authz.Consistency) ([]string, error)
}

// maxNameBytes bounds a company name.
const maxNameBytes = 500

// reply lets a handler answer with another status than 200; a nil body
// answers without one.
type reply struct {
	status int
	body   any
}

// written sets the consistency token of a write as a header too, the only
// place a 204 can carry it.
func written(w http.ResponseWriter, token string) {
	w.Header().Set(consistencyHeader, token)
}

// memberPath reads the company and user of a member route. "*" passes as a
// user here so that a caller without rights on the company is refused the
// same way for it as for anybody; the store refuses it to the others.
func memberPath(r *http.Request) (company, user string, err error) {
	company, user = r.PathValue("id"), r.PathValue("user")
	if err := authz.ValidateCompanyID(company); err != nil {
		return "", "", err
	}
	if user != authz.WildcardUser {
		if err := authz.ValidateUserID(user); err != nil {
			return "", "", err
		}
	}
	return company, user, nil
}

type membershipJSON struct {
	UserID    string       `json:"user_id"`
	CompanyID string       `json:"company_id"`
	Role      authz.Role   `json:"role"`
	Status    authz.Status `json:"status"`
}

func membershipOf(m authz.Membership) membershipJSON {
	return membershipJSON{UserID: m.UserID, CompanyID: m.CompanyID, Role: m.Role, Status: m.Status}
}

// putMemberBody is what a caller may set on a membership. The IDs come from
// the path only; naming them in the body is refused rather than ignored, so
// a client that thinks it sets them learns otherwise. They are kept raw and
// not as pointers: encoding/json leaves a pointer nil for a JSON null, which
// would let {"company_id": null} through unnoticed.
type putMemberBody struct {
	Role      string          `json:"role"`
	Status    string          `json:"status"`
	CompanyID json.RawMessage `json:"company_id"`
	UserID    json.RawMessage `json:"user_id"`
}

// Refusals of the member routes are worded by the route, not by the store:
// the store's wording follows facts such as the target's current role
// ("needs manage_owners" for an owner), which a caller without rights on the
// company must not learn, and names the company, which would make a refusal
// for an existing company look different from one for an unknown company.
// The audit trail keeps the precise reason.
var (
	errNeedsManageMembers = fmt.Errorf("%w: this needs manage_members on the company", authz.ErrForbidden)
	errMemberChange       = fmt.Errorf("%w: changing another user's membership needs manage_members on the company, "+
		"and manage_owners when it is or becomes an owner membership", authz.ErrForbidden)
	errOwnMembership = fmt.Errorf("%w: nobody changes their own membership", authz.ErrForbidden)
)

// refusal replaces the wording of a refusal with msg; other errors pass.
func refusal(err, msg error) error {
	if errors.Is(err, authz.ErrForbidden) {
		return msg
	}
	return err
}

type memberResponse struct {
	membershipJSON
	ConsistencyToken string `json:"consistency_token"`
}

func (g *Gateway) handlePutMember(w http.ResponseWriter, r *http.Request, c caller) (any, error) {
	company, user, err := memberPath(r)
	if err != nil {
		return nil, err
	}
	var body putMemberBody
	if err := decodeJSON(w, r, g.cfg.MaxBodyBytes, &body); err != nil {
		return nil, err
	}
	if err := refuseIDs(body.CompanyID, body.UserID); err != nil {
		return nil, err
	}
	m := authz.Membership{UserID: user, CompanyID: company, Status: authz.StatusActive}
	if m.Role, err = authz.ParseRole(body.Role); err != nil {
		return nil, fmt.Errorf("role: %w", err)
	}
	if body.Status != "" {
		if m.Status, err = authz.ParseStatus(body.Status); err != nil {
			return nil, fmt.Errorf("status: %w", err)
		}
	}
	stored, token, err := g.manager.SetMember(r.Context(), c.actor(), m)
	if err != nil {
		if user == c.user {
			return nil, refusal(err, errOwnMembership)
		}
		return nil, refusal(err, errMemberChange)
	}
	written(w, token)
	return memberResponse{membershipJSON: membershipOf(stored), ConsistencyToken: token}, nil
}

func refuseIDs(companyID, userID json.RawMessage) error {
	for _, f := range []struct {
		name string
		raw  json.RawMessage
	}{{"company_id", companyID}, {"user_id", userID}} {
		if f.raw != nil {
			return fmt.Errorf("%w: %s comes from the path and may not be in the body", authz.ErrInvalid, f.name)
		}
	}
	return nil
}

// errNotInvitee refuses an answer to somebody else's invitation.
var errNotInvitee = fmt.Errorf("%w: only the invited user accepts or declines an invitation", authz.ErrForbidden)

// invitation reads the path of an answer to an invitation, which only the
// invited user may give.
func invitation(r *http.Request, c caller) (company string, err error) {
	company, user, err := memberPath(r)
	if err != nil {
		return "", err
	}
	if user != c.user {
		return "", errNotInvitee
	}
	return company, nil
}

func (g *Gateway) handleAcceptMember(w http.ResponseWriter, r *http.Request, c caller) (any, error) {
	company, err := invitation(r, c)
	if err != nil {
		return nil, err
	}
	accepted, token, err := g.manager.AcceptMembership(r.Context(), c.actor(), company)
	if err != nil {
		return nil, err
	}
	written(w, token)
	return memberResponse{membershipJSON: membershipOf(accepted), ConsistencyToken: token}, nil
}

func (g *Gateway) handleDeclineMember(w http.ResponseWriter, r *http.Request, c caller) (any, error) {
	company, err := invitation(r, c)
	if err != nil {
		return nil, err
	}
	token, err := g.manager.DeclineMembership(r.Context(), c.actor(), company)
	if err != nil {
		return nil, err
	}
	written(w, token)
	return reply{status: http.StatusNoContent}, nil
}

func (g *Gateway) handleDeleteMember(w http.ResponseWriter, r *http.Request, c caller) (any, error) {
	company, user, err := memberPath(r)
	if err != nil {
		return nil, err
	}
	token, err := g.manager.RemoveMember(r.Context(), c.actor(), company, user)
	if err != nil {
		// Leaving needs no right, so a refusal is about someone else.
		return nil, refusal(err, errMemberChange)
	}
	written(w, token)
	return reply{status: http.StatusNoContent}, nil
}

type membersResponse struct {
	Members []membershipJSON `json:"members"`
}

// effectiveMember is someone who can act on a company, with the strongest
// role that reaches it and every membership it comes through.
type effectiveMember struct {
	UserID string       `json:"user_id"`
	Role   authz.Role   `json:"role"`
	Via    []accessJSON `json:"via"`
}

type accessJSON struct {
	CompanyID string     `json:"company_id"`
	Role      authz.Role `json:"role"`
	// Inherited is true for a role held on an ancestor.
	Inherited bool `json:"inherited"`
}

type effectiveResponse struct {
	Members          []effectiveMember `json:"members"`
	ConsistencyToken string            `json:"consistency_token,omitempty"`
}

func (g *Gateway) handleListMembers(_ http.ResponseWriter, r *http.Request, c caller) (any, error) {
	company := r.PathValue("id")
	if err := authz.ValidateCompanyID(company); err != nil {
		return nil, err
	}
	q, err := onlyParams(r.URL.RawQuery, "effective")
	if err != nil {
		return nil, err
	}
	effective, err := boolParam(q, "effective")
	if err != nil {
		return nil, err
	}
	if effective {
		return g.effectiveMembers(r, c, company)
	}
	members, err := g.manager.Members(r.Context(), c.actor(), company)
	if err != nil {
		return nil, refusal(err, errNeedsManageMembers)
	}
	resp := membersResponse{Members: make([]membershipJSON, len(members))}
	for i, m := range members {
		resp.Members[i] = membershipOf(m)
	}
	return resp, nil
}

// effectiveMembers lists who SpiceDB says can read the company, each
// explained by the active memberships on it and its ancestors. The rows are
// read first: that also checks the caller may see them. Someone SpiceDB
// lists without a row to explain it (the sync has not caught up with a
// removal) is shown with no role and no path rather than hidden.
func (g *Gateway) effectiveMembers(r *http.Request, c caller, company string) (any, error) {
	accesses, err := g.manager.Accesses(r.Context(), c.actor(), company)
	if err != nil {
		return nil, refusal(err, errNeedsManageMembers)
	}
	// A write's token (a WAL position) is waited for like on every read.
	cons, err := g.consistency(r.Context(), r.Header, "")
	if err != nil {
		return nil, err
	}
	users, err := g.users.LookupUsers(r.Context(), company, authz.PermRead, cons)
	if err != nil {
		return nil, fmt.Errorf("lookup users: %w", err)
	}
	via := map[string][]authz.Access{}
	for _, a := range accesses {
		via[a.UserID] = append(via[a.UserID], a)
	}
	resp := effectiveResponse{Members: make([]effectiveMember, len(users))}
	for i, u := range users {
		em := effectiveMember{UserID: u, Via: []accessJSON{}}
		for _, a := range via[u] {
			em.Role = authz.Strongest(em.Role, a.Role)
			em.Via = append(em.Via, accessJSON{CompanyID: a.CompanyID, Role: a.Role, Inherited: a.Depth > 0})
		}
		resp.Members[i] = em
	}
	return resp, nil
}

// boolParam reads an optional true/false query parameter; absent is false.
func boolParam(q url.Values, name string) (bool, error) {
	v := q.Get(name)
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, fmt.Errorf("%w: %s must be true or false", authz.ErrInvalid, name)
	}
	return b, nil
}

// pageLimit reads the limit parameter of a paged listing.
func (g *Gateway) pageLimit(q url.Values) (int, error) {
	v := q.Get("limit")
	if v == "" {
		return g.cfg.DefaultPageSize, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > g.cfg.MaxPageSize {
		return 0, fmt.Errorf("%w: limit must be an integer from 1 to %d", authz.ErrInvalid, g.cfg.MaxPageSize)
	}
	return n, nil
}

// onlyParams parses a query that may hold only the named parameters, each
// at most once.
func onlyParams(raw string, allowed ...string) (url.Values, error) {
	q, err := url.ParseQuery(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: malformed query string", authz.ErrInvalid)
	}
	for name, values := range q {
		known := false
		for _, a := range allowed {
			known = known || a == name
		}
		switch {
		case !known:
			return nil, fmt.Errorf("%w: unknown query parameter %q", authz.ErrInvalid, name)
		case len(values) > 1:
			return nil, fmt.Errorf("%w: query parameter %q given more than once", authz.ErrInvalid, name)
		}
	}
	return q, nil
}

// createCompanyBody names the new company; the caller becomes its owner.
type createCompanyBody struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	ParentID string `json:"parent_id"`
}

type companyResponse struct {
	companyJSON
	ConsistencyToken string `json:"consistency_token"`
}

func companyOf(co authz.Company, token string) companyResponse {
	resp := companyResponse{companyJSON: companyJSON{ID: co.ID, Name: co.Name}, ConsistencyToken: token}
	if co.ParentID != "" {
		resp.ParentID = &co.ParentID
	}
	return resp
}

// validName refuses what a name shown in other people's screens and logs
// must not hold: control characters (a NUL, which PostgreSQL cannot store
// either, or a line break that forges a log line) and the bidirectional
// formatting characters that make text display in another order than it
// is stored.
func validName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: name is required", authz.ErrInvalid)
	case len(name) > maxNameBytes:
		return fmt.Errorf("%w: name longer than %d bytes", authz.ErrInvalid, maxNameBytes)
	case !utf8.ValidString(name):
		return fmt.Errorf("%w: name is not valid UTF-8", authz.ErrInvalid)
	}
	for _, r := range name {
		switch {
		case unicode.IsControl(r):
			return fmt.Errorf("%w: name contains a control character", authz.ErrInvalid)
		case isBidiFormatting(r):
			return fmt.Errorf("%w: name contains a bidirectional formatting character", authz.ErrInvalid)
		}
	}
	return nil
}

// isBidiFormatting reports the invisible characters that reorder the text
// around them (Unicode's bidirectional embeddings, overrides, isolates and
// marks): "invoice\u202efdp.exe" displays as "invoiceexe.pdf".
func isBidiFormatting(r rune) bool {
	return r >= '\u202a' && r <= '\u202e' || r >= '\u2066' && r <= '\u2069' ||
		r == '\u200e' || r == '\u200f' || r == '\u061c'
}

func (g *Gateway) handleCreateCompany(w http.ResponseWriter, r *http.Request, c caller) (any, error) {
	var body createCompanyBody
	if err := decodeJSON(w, r, g.cfg.MaxBodyBytes, &body); err != nil {
		return nil, err
	}
	if err := validName(body.Name); err != nil {
		return nil, err
	}
	for _, id := range []string{body.ID, body.ParentID} {
		if id == "" {
			continue
		}
		// A parent of such an ID cannot exist: no company gets one.
		if err := authz.ValidateNewCompanyID(id); err != nil {
			return nil, err
		}
	}
	co, token, err := g.manager.CreateCompany(r.Context(), c.actor(), authz.Company{ID: body.ID, Name: body.Name, ParentID: body.ParentID})
	if err != nil {
		return nil, err
	}
	written(w, token)
	w.Header().Set("Location", "/v1/companies/"+url.PathEscape(co.ID))
	return reply{status: http.StatusCreated, body: companyOf(co, token)}, nil
}

// patchCompanyBody changes a company. parent_id is kept raw: absent (empty)
// leaves the parent alone, null makes the company a root. It and id are no
// pointers, because encoding/json sets a pointer to nil for a JSON null,
// which would make a null parent look absent.
type patchCompanyBody struct {
	Name     *string         `json:"name"`
	ParentID json.RawMessage `json:"parent_id"`
	ID       json.RawMessage `json:"id"`
}

func (g *Gateway) handlePatchCompany(w http.ResponseWriter, r *http.Request, c caller) (any, error) {
	id := r.PathValue("id")
	if err := authz.ValidateCompanyID(id); err != nil {
		return nil, err
	}
	var body patchCompanyBody
	if err := decodeJSON(w, r, g.cfg.MaxBodyBytes, &body); err != nil {
		return nil, err
	}
	if body.ID != nil {
		return nil, fmt.Errorf("%w: id comes from the path and may not be in the body", authz.ErrInvalid)
	}
	var u authz.CompanyUpdate
	if body.Name != nil {
		if err := validName(*body.Name); err != nil {
			return nil, err
		}
		u.Name = body.Name
	}
	if body.ParentID != nil {
		parent, err := parentOf(body.ParentID)
		if err != nil {
			return nil, err
		}
		u.ParentID = &parent
	}
	if u.Name == nil && u.ParentID == nil {
		return nil, fmt.Errorf("%w: nothing to change: give name or parent_id", authz.ErrInvalid)
	}
	co, token, err := g.manager.UpdateCompany(r.Context(), c.actor(), id, u)
	if err != nil {
		return nil, err
	}
	written(w, token)
	return companyOf(co, token), nil
}

// parentOf reads a parent_id that is null (no parent) or a company ID.
func parentOf(raw json.RawMessage) (string, error) {
	if bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		return "", nil
	}
	var parent string
	if err := json.Unmarshal(raw, &parent); err != nil {
		return "", fmt.Errorf("%w: parent_id must be a string or null", authz.ErrInvalid)
	}
	if err := authz.ValidateCompanyID(parent); err != nil {
		return "", fmt.Errorf("parent: %w", err)
	}
	return parent, nil
}

type auditJSON struct {
	ID      int64             `json:"id"`
	At      time.Time         `json:"at"`
	Actor   string            `json:"actor"`
	Action  string            `json:"action"`
	Company string            `json:"company_id"`
	Target  string            `json:"target,omitempty"`
	Outcome string            `json:"outcome"`
	Reason  string            `json:"reason"`
	Detail  map[string]string `json:"detail"`
}

type auditResponse struct {
	Entries    []auditJSON `json:"entries"`
	NextCursor string      `json:"next_cursor,omitempty"`
}

func (g *Gateway) handleAudit(_ http.ResponseWriter, r *http.Request, c caller) (any, error) {
	company := r.PathValue("id")
	if err := authz.ValidateCompanyID(company); err != nil {
		return nil, err
	}
	q, err := onlyParams(r.URL.RawQuery, "limit", "cursor")
	if err != nil {
		return nil, err
	}
	limit, err := g.pageLimit(q)
	if err != nil {
		return nil, err
	}
	var before int64
	if v := q.Get("cursor"); v != "" {
		if before, err = strconv.ParseInt(v, 10, 64); err != nil || before < 1 {
			return nil, fmt.Errorf("%w: malformed cursor", authz.ErrInvalid)
		}
	}
	entries, err := g.manager.Audit(r.Context(), c.actor(), company, limit, before)
	if err != nil {
		return nil, refusal(err, errNeedsManageMembers)
	}
	resp := auditResponse{Entries: make([]auditJSON, len(entries))}
	for i, e := range entries {
		resp.Entries[i] = auditJSON{ID: e.ID, At: e.At, Actor: e.Actor, Action: e.Action, Company: e.CompanyID,
			Target: e.Target, Outcome: e.Outcome, Reason: e.Reason, Detail: e.Detail}
	}
	if len(entries) == limit {
		resp.NextCursor = strconv.FormatInt(entries[len(entries)-1].ID, 10)
	}
	return resp, nil
}
