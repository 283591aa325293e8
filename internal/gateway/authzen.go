package gateway

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"sort"
	"strings"

	"github.com/tenantgate/tenantgate/internal/authz"
)

// The OpenID AuthZEN Authorization API 1.0 on the gateway's port. It asks
// the same questions as /v1 through the same service, so consistency,
// fail-closed answers, platform roles and metrics are those of /v1. What
// the standard leaves to the PDP, tenantgate decides as follows (README,
// "AuthZEN"):
//
//   - subjects are {"type":"user"}, resources {"type":"company"}, actions
//     the permissions of the model; a question about another type or an
//     unknown action is a deny with a reason, and finds nothing in a search;
//   - properties are accepted and ignored: the decision rests on the
//     relationships alone;
//   - the context may carry "consistency_token" (as /v1's body does) and
//     "explain": true;
//   - a user token may only ask about itself, as in /v1.

// The entity types tenantgate's model knows.
const (
	authzenSubjectType  = "user"
	authzenResourceType = "company"
)

// The AuthZEN routes, relative to the gateway's URL.
const (
	authzenEvaluationPath     = "/access/v1/evaluation"
	authzenEvaluationsPath    = "/access/v1/evaluations"
	authzenSearchSubjectPath  = "/access/v1/search/subject"
	authzenSearchResourcePath = "/access/v1/search/resource"
	authzenSearchActionPath   = "/access/v1/search/action"
	authzenConfigurationPath  = "/.well-known/authzen-configuration"
)

// azEntity is a subject or a resource. Pointers tell a missing field from
// an empty one: missing is the standard's 400.
type azEntity struct {
	Type       *string         `json:"type"`
	ID         *string         `json:"id"`
	Properties json.RawMessage `json:"properties"`
}

type azAction struct {
	Name       *string         `json:"name"`
	Properties json.RawMessage `json:"properties"`
}

// azContext is the request context; of its keys only tenantgate's own are
// read.
type azContext struct {
	ConsistencyToken *string `json:"consistency_token"`
	Explain          bool    `json:"explain"`
}

func (c *azContext) token() string {
	if c == nil || c.ConsistencyToken == nil {
		return ""
	}
	return *c.ConsistencyToken
}

func (c *azContext) explain() bool { return c != nil && c.Explain }

// azEvaluation is one access evaluation request.
type azEvaluation struct {
	Subject  *azEntity  `json:"subject"`
	Action   *azAction  `json:"action"`
	Resource *azEntity  `json:"resource"`
	Context  *azContext `json:"context"`
}

type azOptions struct {
	EvaluationsSemantic *string `json:"evaluations_semantic"`
}

// azEvaluations is the boxcarred request: its top-level entities are the
// defaults of every item. Items stay raw so that one that cannot be read
// fails alone.
type azEvaluations struct {
	azEvaluation
	Evaluations []json.RawMessage `json:"evaluations"`
	Options     *azOptions        `json:"options"`
}

type azPage struct {
	Token *string `json:"token"`
	Limit *int    `json:"limit"`
}

type azSearch struct {
	azEvaluation
	Page *azPage `json:"page"`
}

// Every AuthZEN body ignores unknown fields, as the standard requires.
func (azEntity) ignoresUnknownFields()      {}
func (azAction) ignoresUnknownFields()      {}
func (azContext) ignoresUnknownFields()     {}
func (azEvaluation) ignoresUnknownFields()  {}
func (azOptions) ignoresUnknownFields()     {}
func (azEvaluations) ignoresUnknownFields() {}
func (azPage) ignoresUnknownFields()        {}
func (azSearch) ignoresUnknownFields()      {}

// azDecision is a Decision; its context carries the consistency token of
// the answer, the reason for a deny that needed no question, an item's
// error, and the explanation when asked for.
type azDecision struct {
	Decision bool               `json:"decision"`
	Context  *azDecisionContext `json:"context,omitempty"`
}

type azDecisionContext struct {
	ConsistencyToken string           `json:"consistency_token,omitempty"`
	Reason           string           `json:"reason,omitempty"`
	Error            *azError         `json:"error,omitempty"`
	Explanation      *explanationJSON `json:"explanation,omitempty"`
}

type azError struct {
	Status  int    `json:"status"`
	Message string `json:"message"`
}

type azEvaluationsResponse struct {
	Evaluations []azDecision       `json:"evaluations"`
	Context     *azDecisionContext `json:"context,omitempty"`
}

// decodeAuthZEN is decodeJSON for the AuthZEN routes: unknown fields are
// ignored (the types say so), and a body that is not declared JSON is a
// 400, as the standard's certification asks, not /v1's 415.
func decodeAuthZEN(w http.ResponseWriter, r *http.Request, maxBytes int64, dst any) error {
	err := decodeJSON(w, r, maxBytes, dst)
	if errors.Is(err, errUnsupportedMediaType) {
		return fmt.Errorf("%w: %s", authz.ErrInvalid, strings.TrimPrefix(err.Error(), errUnsupportedMediaType.Error()+": "))
	}
	return err
}

// decodeItem reads one raw evaluation of a boxcar by the rules of a whole
// body.
func decodeItem(raw json.RawMessage, dst *azEvaluation) error {
	if err := checkKeys(raw, reflect.TypeOf(dst)); err != nil {
		return bodyError(err)
	}
	if err := json.Unmarshal(raw, dst); err != nil {
		return bodyError(err)
	}
	return nil
}

func missing(field string) error {
	return fmt.Errorf("%w: %s is required", authz.ErrInvalid, field)
}

// entity checks that e holds what a request needs of it: a type, and an id
// unless it is what a search looks for. Properties, when given, must be an
// object.
func (e *azEntity) check(name string, needID bool) error {
	switch {
	case e == nil:
		return missing(name)
	case e.Type == nil:
		return missing(name + ".type")
	case needID && e.ID == nil:
		return missing(name + ".id")
	}
	return objectOrAbsent(name+".properties", e.Properties)
}

func (a *azAction) check() error {
	switch {
	case a == nil:
		return missing("action")
	case a.Name == nil:
		return missing("action.name")
	}
	return objectOrAbsent("action.properties", a.Properties)
}

func objectOrAbsent(field string, raw json.RawMessage) error {
	trimmed := strings.TrimSpace(string(raw))
	if trimmed == "" || trimmed == "null" || strings.HasPrefix(trimmed, "{") {
		return nil
	}
	return fmt.Errorf("%w: %s must be an object", authz.ErrInvalid, field)
}

// azQuestion is an evaluation in the model's terms. A question tenantgate
// can answer without asking (another entity type, an unknown action) has
// a denyReason instead.
type azQuestion struct {
	req        authz.CheckRequest
	denyReason string
}

// subjectOf is the user a request is about: a user token may only name
// itself, as in /v1. ok is false for a subject of another type, about
// whom tenantgate knows nothing.
func (c caller) azSubject(e *azEntity) (user string, ok bool, err error) {
	if *e.Type != authzenSubjectType {
		return "", false, nil
	}
	if err := authz.ValidateUserID(*e.ID); err != nil {
		return "", false, fmt.Errorf("subject.id: %w", err)
	}
	if !c.service && *e.ID != c.user {
		return "", false, fmt.Errorf("%w: a user token may only ask about its own subject", authz.ErrForbidden)
	}
	return *e.ID, true, nil
}

// azCompany is the company a resource names; ok is false for another type.
func azCompany(e *azEntity) (company string, ok bool, err error) {
	if *e.Type != authzenResourceType {
		return "", false, nil
	}
	if err := authz.ValidateCompanyID(*e.ID); err != nil {
		return "", false, fmt.Errorf("resource.id: %w", err)
	}
	return *e.ID, true, nil
}

func (c caller) azResolve(ev azEvaluation) (azQuestion, error) {
	if err := ev.Subject.check("subject", true); err != nil {
		return azQuestion{}, err
	}
	if err := ev.Action.check(); err != nil {
		return azQuestion{}, err
	}
	if err := ev.Resource.check("resource", true); err != nil {
		return azQuestion{}, err
	}
	user, ok, err := c.azSubject(ev.Subject)
	if err != nil {
		return azQuestion{}, err
	}
	if !ok {
		return azQuestion{denyReason: fmt.Sprintf("unknown subject type %q: subjects are of type %q", *ev.Subject.Type, authzenSubjectType)}, nil
	}
	company, ok, err := azCompany(ev.Resource)
	if err != nil {
		return azQuestion{}, err
	}
	if !ok {
		return azQuestion{denyReason: fmt.Sprintf("unknown resource type %q: resources are of type %q", *ev.Resource.Type, authzenResourceType)}, nil
	}
	p, err := authz.ParsePermission(*ev.Action.Name)
	if err != nil {
		return azQuestion{denyReason: fmt.Sprintf("unknown action %q", *ev.Action.Name)}, nil
	}
	return azQuestion{req: authz.CheckRequest{User: user, Permission: p, Company: company}}, nil
}

func (g *Gateway) handleEvaluation(w http.ResponseWriter, r *http.Request, c caller) (any, error) {
	var body azEvaluation
	if err := decodeAuthZEN(w, r, g.cfg.MaxBodyBytes, &body); err != nil {
		return nil, err
	}
	return g.evaluate(r, c, body)
}

// evaluate answers one evaluation; it fails only for what would fail the
// whole request.
func (g *Gateway) evaluate(r *http.Request, c caller, ev azEvaluation) (azDecision, error) {
	q, err := c.azResolve(ev)
	if err != nil {
		return azDecision{}, err
	}
	if q.denyReason != "" {
		return azDecision{Context: &azDecisionContext{Reason: q.denyReason}}, nil
	}
	cons, err := g.consistency(r.Context(), r.Header, ev.Context.token())
	if err != nil {
		return azDecision{}, err
	}
	return g.decide(r, c, q, cons, ev.Context.explain())
}

// decide asks one resolved question.
func (g *Gateway) decide(r *http.Request, c caller, q azQuestion, cons authz.Consistency, explain bool) (azDecision, error) {
	platform := c.platformFor(q.req.User)
	allowed, token, err := g.svc.check(r.Context(), q.req, cons, platform)
	if err != nil {
		return azDecision{}, err
	}
	d := azDecision{Decision: allowed, Context: &azDecisionContext{ConsistencyToken: token}}
	if explain {
		if err := g.attachExplanation(r, q.req, token, platform, &d); err != nil {
			return azDecision{}, err
		}
	}
	return d, nil
}

func (g *Gateway) attachExplanation(r *http.Request, req authz.CheckRequest, token string, platform authz.PlatformGrant, d *azDecision) error {
	ex, err := g.svc.explain(r.Context(), req.User, req.Company, token, platform, map[authz.Permission]bool{req.Permission: d.Decision})
	if err != nil {
		return err
	}
	d.Context.Explanation = explanationOf(ex[req.Permission])
	return nil
}

// The evaluations semantics of the standard.
const (
	executeAll          = "execute_all"
	denyOnFirstDeny     = "deny_on_first_deny"
	permitOnFirstPermit = "permit_on_first_permit"
)

func semanticOf(o *azOptions) (string, error) {
	if o == nil || o.EvaluationsSemantic == nil {
		return executeAll, nil
	}
	switch s := *o.EvaluationsSemantic; s {
	case executeAll, denyOnFirstDeny, permitOnFirstPermit:
		return s, nil
	default:
		return "", fmt.Errorf("%w: options.evaluations_semantic %q: want %s, %s or %s", authz.ErrInvalid, s, executeAll, denyOnFirstDeny, permitOnFirstPermit)
	}
}

// itemFailure is the decision of an item that cannot be evaluated: a deny
// that says why, without failing the others.
func itemFailure(err error) azDecision {
	status, detail := statusOf(err)
	if detail == "" {
		detail = http.StatusText(status)
	}
	return azDecision{Context: &azDecisionContext{Error: &azError{Status: status, Message: detail}}}
}

// withDefaults fills what an item leaves out from the request's top level.
func withDefaults(item, top azEvaluation) azEvaluation {
	if item.Subject == nil {
		item.Subject = top.Subject
	}
	if item.Action == nil {
		item.Action = top.Action
	}
	if item.Resource == nil {
		item.Resource = top.Resource
	}
	if item.Context == nil {
		item.Context = top.Context
	}
	return item
}

func (g *Gateway) handleEvaluations(w http.ResponseWriter, r *http.Request, c caller) (any, error) {
	var body azEvaluations
	if err := decodeAuthZEN(w, r, g.cfg.MaxBodyBytes, &body); err != nil {
		return nil, err
	}
	semantic, err := semanticOf(body.Options)
	if err != nil {
		return nil, err
	}
	if len(body.Evaluations) == 0 {
		return g.evaluate(r, c, body.azEvaluation)
	}
	if n := len(body.Evaluations); n > g.cfg.MaxBulkChecks {
		return nil, fmt.Errorf("%w: evaluations must hold at most %d items, not %d", authz.ErrInvalid, g.cfg.MaxBulkChecks, n)
	}
	// One consistency for the whole boxcar: the top level's. An item may
	// repeat it but not ask for another, which would need a read per item.
	cons, err := g.consistency(r.Context(), r.Header, body.Context.token())
	if err != nil {
		return nil, err
	}
	out := make([]azDecision, len(body.Evaluations))
	questions := make([]*azQuestion, len(body.Evaluations))
	explain := make([]bool, len(body.Evaluations))
	for i, raw := range body.Evaluations {
		q, ex, err := g.evaluationItem(raw, body.azEvaluation, c)
		switch {
		case err != nil:
			out[i] = itemFailure(fmt.Errorf("evaluations[%d]: %w", i, err))
		case q.denyReason != "":
			out[i] = azDecision{Context: &azDecisionContext{Reason: q.denyReason}}
		default:
			questions[i], explain[i] = &q, ex
		}
	}
	if semantic == executeAll {
		token, err := g.decideAll(r, c, questions, cons, out, explain)
		if err != nil {
			return nil, err
		}
		return azEvaluationsResponse{Evaluations: out, Context: &azDecisionContext{ConsistencyToken: token}}, nil
	}
	return g.decideUntil(r, c, semantic == permitOnFirstPermit, questions, cons, out, explain)
}

// evaluationItem reads and resolves item i of a boxcar.
func (g *Gateway) evaluationItem(raw json.RawMessage, top azEvaluation, c caller) (azQuestion, bool, error) {
	var item azEvaluation
	if err := decodeItem(raw, &item); err != nil {
		return azQuestion{}, false, err
	}
	if item.Context != nil && item.Context.ConsistencyToken != nil && item.Context.token() != top.Context.token() {
		return azQuestion{}, false, fmt.Errorf("%w: context.consistency_token of an item must be the request's own", authz.ErrInvalid)
	}
	ev := withDefaults(item, top)
	q, err := c.azResolve(ev)
	return q, ev.Context.explain(), err
}

// decideAll asks every resolved question in one bulk call and fills out.
func (g *Gateway) decideAll(r *http.Request, c caller, questions []*azQuestion, cons authz.Consistency, out []azDecision, explain []bool) (string, error) {
	var reqs []authz.CheckRequest
	for _, q := range questions {
		if q != nil {
			reqs = append(reqs, q.req)
		}
	}
	if len(reqs) == 0 {
		return "", nil
	}
	// Every subject of a user's boxcar is the user itself, and the
	// service's have no platform role, so one grant serves all.
	platform := c.platformFor(c.user)
	allowed, token, err := g.svc.checkBulk(r.Context(), reqs, cons, platform)
	if err != nil {
		return "", err
	}
	next := 0
	for i, q := range questions {
		if q == nil {
			continue
		}
		out[i] = azDecision{Decision: allowed[next]}
		next++
		if explain[i] {
			out[i].Context = &azDecisionContext{ConsistencyToken: token}
			if err := g.attachExplanation(r, q.req, token, platform, &out[i]); err != nil {
				return "", err
			}
		}
	}
	return token, nil
}

// decideUntil asks the questions in order and stops after the first
// decision equal to stopAt (true: permit_on_first_permit), returning the
// decisions up to it, as the standard's short-circuit semantics do. An
// item that cannot be evaluated counts as a deny.
func (g *Gateway) decideUntil(r *http.Request, c caller, stopAt bool, questions []*azQuestion, cons authz.Consistency, out []azDecision, explain []bool) (azEvaluationsResponse, error) {
	reason := denyOnFirstDeny
	if stopAt {
		reason = permitOnFirstPermit
	}
	for i, q := range questions {
		if q != nil {
			d, err := g.decide(r, c, *q, cons, explain[i])
			if err != nil {
				return azEvaluationsResponse{}, err
			}
			out[i] = d
		}
		if out[i].Decision == stopAt {
			if out[i].Context == nil {
				out[i].Context = &azDecisionContext{}
			}
			if out[i].Context.Reason == "" {
				out[i].Context.Reason = reason
			}
			return azEvaluationsResponse{Evaluations: out[:i+1]}, nil
		}
	}
	return azEvaluationsResponse{Evaluations: out}, nil
}

// The search routes.

type azSearchResponse struct {
	Page    azPageResponse     `json:"page"`
	Context *azDecisionContext `json:"context,omitempty"`
	Results []any              `json:"results"`
}

type azPageResponse struct {
	NextToken string `json:"next_token"`
	Count     int    `json:"count"`
}

type azResourceResult struct {
	Type       string              `json:"type"`
	ID         string              `json:"id"`
	Properties azCompanyProperties `json:"properties"`
}

type azCompanyProperties struct {
	Name     string  `json:"name"`
	ParentID *string `json:"parent_id"`
}

type azSubjectResult struct {
	Type string `json:"type"`
	ID   string `json:"id"`
}

type azActionResult struct {
	Name string `json:"name"`
}

// azPageToken is what a search's next_token holds: where the next page
// starts, the page size, and a digest of the search it belongs to, since
// the standard asks a PDP to refuse a token sent with a changed request.
// The limit travels in the token because the standard's own examples, and
// its certification, send a follow-up with the token alone.
type azPageToken struct {
	Search string `json:"s"`
	After  string `json:"a"`
	Limit  int    `json:"l"`
	All    bool   `json:"all,omitempty"`
}

// searchKey is the digest of what a page token is bound to.
func searchKey(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		// Length-prefixed, so that no two part lists digest alike.
		fmt.Fprintf(h, "%d:%s;", len(p), p)
	}
	return base64.RawURLEncoding.EncodeToString(h.Sum(nil)[:12])
}

// next is the token of the page after the one that ended at after.
func (t azPageToken) next(after string, all bool) string {
	t.After, t.All = after, all
	b, _ := json.Marshal(t) // strings, an int and a bool cannot fail
	return base64.RawURLEncoding.EncodeToString(b)
}

// pageOf reads a search's page object: where to start and how many to
// return. A limit absent or 0 is the default page size, one above the
// largest page size that size (the standard lets a PDP return fewer); a
// follow-up takes its token's limit, and may repeat it but not change it.
func (g *Gateway) pageOf(p *azPage, key string) (start azPageToken, err error) {
	start = azPageToken{Search: key, Limit: g.cfg.DefaultPageSize}
	if p == nil {
		return start, nil
	}
	if p.Limit != nil {
		switch n := *p.Limit; {
		case n < 0:
			return start, fmt.Errorf("%w: page.limit must not be negative", authz.ErrInvalid)
		case n > 0:
			start.Limit = min(n, g.cfg.MaxPageSize)
		}
	}
	if p.Token == nil || *p.Token == "" {
		return start, nil
	}
	asked := start.Limit
	invalid := fmt.Errorf("%w: malformed page.token: pass next_token from the previous page as it is", authz.ErrInvalid)
	if len(*p.Token) > maxCursorBytes {
		return start, invalid
	}
	b, err := base64.RawURLEncoding.DecodeString(*p.Token)
	if err != nil || json.Unmarshal(b, &start) != nil || start.After == "" || start.Limit < 1 || start.Limit > g.cfg.MaxPageSize {
		return start, invalid
	}
	if start.Search != key || (p.Limit != nil && asked != start.Limit) {
		return start, fmt.Errorf("%w: page.token belongs to another search: every entity and the limit must stay as they were on the first page", authz.ErrInvalid)
	}
	return start, nil
}

// pageAfter pages through sorted: the first limit items after after.
func pageAfter(sorted []string, after string, limit int) (page []string, next string) {
	start := 0
	if after != "" {
		start = sort.SearchStrings(sorted, after)
		if start < len(sorted) && sorted[start] == after {
			start++
		}
	}
	end := min(start+limit, len(sorted))
	page = sorted[start:end]
	if end < len(sorted) {
		next = page[len(page)-1]
	}
	return page, next
}

func emptySearch() azSearchResponse { return azSearchResponse{Results: []any{}} }

func (g *Gateway) handleSearchResource(w http.ResponseWriter, r *http.Request, c caller) (any, error) {
	var body azSearch
	if err := decodeAuthZEN(w, r, g.cfg.MaxBodyBytes, &body); err != nil {
		return nil, err
	}
	if err := body.Subject.check("subject", true); err != nil {
		return nil, err
	}
	if err := body.Action.check(); err != nil {
		return nil, err
	}
	if err := body.Resource.check("resource", false); err != nil {
		return nil, err
	}
	user, ok, err := c.azSubject(body.Subject)
	if err != nil {
		return nil, err
	}
	p, perr := authz.ParsePermission(*body.Action.Name)
	if !ok || perr != nil || *body.Resource.Type != authzenResourceType {
		return emptySearch(), nil
	}
	platform := c.platformFor(user)
	start, err := g.pageOf(body.Page, searchKey("resource", user, string(p)))
	if err != nil {
		return nil, err
	}
	if start.After != "" && start.All != platform.Grants(p) {
		return nil, fmt.Errorf("%w: page.token belongs to another search: your platform role changed; start again without a token", authz.ErrInvalid)
	}
	cons, err := g.consistency(r.Context(), r.Header, body.Context.token())
	if err != nil {
		return nil, err
	}
	companies, next, err := g.svc.listCompanies(r.Context(), user, p, cons, start.Limit, start.After, platform)
	if err != nil {
		return nil, err
	}
	resp := azSearchResponse{Results: make([]any, len(companies)), Page: azPageResponse{Count: len(companies)}}
	for i, co := range companies {
		props := azCompanyProperties{Name: co.Name}
		if co.ParentID != "" {
			props.ParentID = &co.ParentID
		}
		resp.Results[i] = azResourceResult{Type: authzenResourceType, ID: co.ID, Properties: props}
	}
	if next != "" {
		resp.Page.NextToken = start.next(next, platform.Grants(p))
	}
	return resp, nil
}

func (g *Gateway) handleSearchSubject(w http.ResponseWriter, r *http.Request, c caller) (any, error) {
	var body azSearch
	if err := decodeAuthZEN(w, r, g.cfg.MaxBodyBytes, &body); err != nil {
		return nil, err
	}
	// The subject is what is searched for: its id, if any, is ignored.
	if err := body.Subject.check("subject", false); err != nil {
		return nil, err
	}
	if err := body.Action.check(); err != nil {
		return nil, err
	}
	if err := body.Resource.check("resource", true); err != nil {
		return nil, err
	}
	company, ok, err := azCompany(body.Resource)
	if err != nil {
		return nil, err
	}
	p, perr := authz.ParsePermission(*body.Action.Name)
	if !ok || perr != nil || *body.Subject.Type != authzenSubjectType {
		return emptySearch(), nil
	}
	start, err := g.pageOf(body.Page, searchKey("subject", company, string(p)))
	if err != nil {
		return nil, err
	}
	cons, err := g.consistency(r.Context(), r.Header, body.Context.token())
	if err != nil {
		return nil, err
	}
	// Who can act on a company is its managers' business, as the members
	// list is.
	if !c.service {
		may, _, err := g.svc.check(r.Context(), authz.CheckRequest{User: c.user, Permission: authz.PermManageMembers, Company: company}, cons, c.platform)
		if err != nil {
			return nil, err
		}
		if !may {
			return nil, errNeedsManageMembers
		}
	}
	users, err := g.svc.users.LookupUsers(r.Context(), company, p, cons)
	if err != nil {
		return nil, fmt.Errorf("lookup users: %w", err)
	}
	slices.Sort(users)
	users = slices.Compact(users)
	page, next := pageAfter(users, start.After, start.Limit)
	resp := azSearchResponse{Results: make([]any, len(page)), Page: azPageResponse{Count: len(page)}}
	for i, u := range page {
		resp.Results[i] = azSubjectResult{Type: authzenSubjectType, ID: u}
	}
	if next != "" {
		resp.Page.NextToken = start.next(next, false)
	}
	return resp, nil
}

func (g *Gateway) handleSearchAction(w http.ResponseWriter, r *http.Request, c caller) (any, error) {
	var body azSearch
	if err := decodeAuthZEN(w, r, g.cfg.MaxBodyBytes, &body); err != nil {
		return nil, err
	}
	// The action is what is searched for; one sent anyway is ignored.
	if err := body.Subject.check("subject", true); err != nil {
		return nil, err
	}
	if err := body.Resource.check("resource", true); err != nil {
		return nil, err
	}
	user, ok, err := c.azSubject(body.Subject)
	if err != nil {
		return nil, err
	}
	company, okCompany, err := azCompany(body.Resource)
	if err != nil {
		return nil, err
	}
	if !ok || !okCompany {
		return emptySearch(), nil
	}
	start, err := g.pageOf(body.Page, searchKey("action", user, company))
	if err != nil {
		return nil, err
	}
	cons, err := g.consistency(r.Context(), r.Header, body.Context.token())
	if err != nil {
		return nil, err
	}
	perms, token, err := g.svc.permissions(r.Context(), user, company, cons, c.platformFor(user))
	if err != nil {
		return nil, err
	}
	var held []string
	for p, allowed := range perms {
		if allowed {
			held = append(held, string(p))
		}
	}
	slices.Sort(held)
	page, next := pageAfter(held, start.After, start.Limit)
	resp := azSearchResponse{Results: make([]any, len(page)), Page: azPageResponse{Count: len(page)},
		Context: &azDecisionContext{ConsistencyToken: token}}
	for i, p := range page {
		resp.Results[i] = azActionResult{Name: p}
	}
	if next != "" {
		resp.Page.NextToken = start.next(next, false)
	}
	return resp, nil
}

// azConfiguration is the PDP metadata document.
type azConfiguration struct {
	PolicyDecisionPoint       string `json:"policy_decision_point"`
	AccessEvaluationEndpoint  string `json:"access_evaluation_endpoint"`
	AccessEvaluationsEndpoint string `json:"access_evaluations_endpoint"`
	SearchSubjectEndpoint     string `json:"search_subject_endpoint,omitempty"`
	SearchResourceEndpoint    string `json:"search_resource_endpoint"`
	SearchActionEndpoint      string `json:"search_action_endpoint"`
}

// handleAuthZENConfiguration names the gateway as the PDP at the URL the
// document was fetched from, or the configured external URL: a PEP
// refuses metadata whose identifier differs from the URL it asked. The
// request's own URL is never taken from X-Forwarded headers, which any
// client can send; behind a proxy, configure the external URL.
func (g *Gateway) handleAuthZENConfiguration(w http.ResponseWriter, r *http.Request) {
	base := strings.TrimSuffix(g.cfg.ExternalURL, "/")
	if base == "" {
		scheme := "http"
		if r.TLS != nil {
			scheme = "https"
		}
		base = scheme + "://" + r.Host
	}
	doc := azConfiguration{
		PolicyDecisionPoint:       base,
		AccessEvaluationEndpoint:  base + authzenEvaluationPath,
		AccessEvaluationsEndpoint: base + authzenEvaluationsPath,
		SearchResourceEndpoint:    base + authzenSearchResourcePath,
		SearchActionEndpoint:      base + authzenSearchActionPath,
	}
	if g.svc.users != nil {
		doc.SearchSubjectEndpoint = base + authzenSearchSubjectPath
	}
	writeDocument(w, http.StatusOK, jsonContentType, doc)
}
