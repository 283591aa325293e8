package client

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
)

// Check asks whether a user may do Permission on Company.
type Check struct {
	// Subject is the user asked about, with the service token only (and
	// required with it). With a user's token the question is about that
	// user, and a Subject is refused (403).
	Subject    string
	Permission Permission
	Company    string
	// ConsistencyToken asks for an answer at least as fresh as the token:
	// one of an earlier answer, or of a write, whose effect the answer then
	// reflects.
	ConsistencyToken string
	// Explain asks for Decision.Explanation too.
	Explain bool
}

// Decision is the gateway's answer to a Check.
type Decision struct {
	Allowed bool `json:"allowed"`
	// Subject is the Check's: empty when the caller asked about itself.
	Subject    string     `json:"subject,omitempty"`
	Permission Permission `json:"permission"`
	Company    string     `json:"company"`
	// ConsistencyToken is the revision the answer was read at; pass it on
	// to read at least as fresh.
	ConsistencyToken string `json:"consistency_token"`
	// Explanation is set when the Check asked for it.
	Explanation *Explanation `json:"explanation,omitempty"`
}

// checkBody is the body of POST /v1/check. Subject is a pointer because
// the gateway refuses a user's check that names one, even empty.
type checkBody struct {
	Permission       Permission `json:"permission"`
	Company          string     `json:"company"`
	ConsistencyToken string     `json:"consistency_token,omitempty"`
	Subject          *string    `json:"subject,omitempty"`
	Explain          bool       `json:"explain,omitempty"`
}

type checkAnswer struct {
	Allowed          *bool        `json:"allowed"`
	ConsistencyToken string       `json:"consistency_token"`
	Explanation      *Explanation `json:"explanation"`
}

// Check asks one question. Any failure returns an error and a Decision
// whose Allowed is false.
func (c *Client) Check(ctx context.Context, q Check) (Decision, error) {
	body := checkBody{Permission: q.Permission, Company: q.Company, ConsistencyToken: q.ConsistencyToken,
		Subject: optional(q.Subject), Explain: q.Explain}
	var ans checkAnswer
	if _, err := c.do(ctx, call{op: "check", method: http.MethodPost, path: "/v1/check", body: body, read: true}, &ans); err != nil {
		return Decision{}, err
	}
	// A 200 without "allowed" is not an answer, and certainly no allow.
	if ans.Allowed == nil {
		return Decision{}, fmt.Errorf("tenantgate: check: answer without \"allowed\"")
	}
	if q.Explain && ans.Explanation == nil {
		return Decision{}, fmt.Errorf("tenantgate: check: answer without the explanation asked for")
	}
	return Decision{Allowed: *ans.Allowed, Subject: q.Subject, Permission: q.Permission, Company: q.Company,
		ConsistencyToken: ans.ConsistencyToken, Explanation: ans.Explanation}, nil
}

// optional is nil for an empty string, so that it is left out of a body.
func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// BulkCheck asks many questions about one user at once; all are answered
// or none.
type BulkCheck struct {
	// Subject is as in Check: with the service token only.
	Subject string
	// Items are the questions, at most the gateway's maximum (default
	// 1000).
	Items            []CheckItem
	ConsistencyToken string
}

// CheckItem is one question of a BulkCheck.
type CheckItem struct {
	Permission Permission `json:"permission"`
	Company    string     `json:"company"`
}

// CheckResult is the answer to one CheckItem.
type CheckResult struct {
	Permission Permission `json:"permission"`
	Company    string     `json:"company"`
	Allowed    bool       `json:"allowed"`
}

// BulkDecision is the answer to a BulkCheck: one result per item, in the
// items' order.
type BulkDecision struct {
	Results          []CheckResult `json:"results"`
	ConsistencyToken string        `json:"consistency_token"`
}

// Allowed reports whether the result for perm on company is an allow;
// a question that was not asked is not.
func (d BulkDecision) Allowed(perm Permission, company string) bool {
	for _, r := range d.Results {
		if r.Permission == perm && r.Company == company {
			return r.Allowed
		}
	}
	return false
}

type bulkBody struct {
	Checks           []CheckItem `json:"checks"`
	ConsistencyToken string      `json:"consistency_token,omitempty"`
	Subject          *string     `json:"subject,omitempty"`
}

type bulkAnswer struct {
	Results          []CheckResult `json:"results"`
	ConsistencyToken string        `json:"consistency_token"`
}

// CheckBulk asks every item of q in one request.
func (c *Client) CheckBulk(ctx context.Context, q BulkCheck) (BulkDecision, error) {
	body := bulkBody{Checks: q.Items, ConsistencyToken: q.ConsistencyToken, Subject: optional(q.Subject)}
	if body.Checks == nil {
		body.Checks = []CheckItem{} // the gateway's 400 says what is wrong; null would say less
	}
	var ans bulkAnswer
	if _, err := c.do(ctx, call{op: "check bulk", method: http.MethodPost, path: "/v1/check/bulk", body: body, read: true}, &ans); err != nil {
		return BulkDecision{}, err
	}
	if err := matchResults(q.Items, ans.Results); err != nil {
		return BulkDecision{}, fmt.Errorf("tenantgate: check bulk: %w", err)
	}
	return BulkDecision{Results: ans.Results, ConsistencyToken: ans.ConsistencyToken}, nil
}

// matchResults refuses results that do not answer the items one for one,
// in order: read by position, they could give one question's allow to
// another.
func matchResults(items []CheckItem, results []CheckResult) error {
	if len(results) != len(items) {
		return fmt.Errorf("%d results for %d checks", len(results), len(items))
	}
	for i, it := range items {
		if r := results[i]; r.Permission != it.Permission || r.Company != it.Company {
			return fmt.Errorf("result %d is about %s on %q, not %s on %q", i, r.Permission, r.Company, it.Permission, it.Company)
		}
	}
	return nil
}

// PermissionsQuery asks for every permission the caller holds on one
// company. Users only: the service token gets 403.
type PermissionsQuery struct {
	Company          string
	ConsistencyToken string
	// Explain asks for an explanation of each permission's answer.
	Explain bool
}

// PermissionSet is every permission the caller holds on one company.
type PermissionSet struct {
	Company          string              `json:"company"`
	Permissions      map[Permission]bool `json:"permissions"`
	ConsistencyToken string              `json:"consistency_token"`
	// Explanations are set, one per permission, when the query asked.
	Explanations map[Permission]Explanation `json:"explanations,omitempty"`
}

// Allows reports whether the set holds perm.
func (s PermissionSet) Allows(perm Permission) bool { return s.Permissions[perm] }

// Permissions reads the caller's permission matrix on q.Company.
func (c *Client) Permissions(ctx context.Context, q PermissionsQuery) (PermissionSet, error) {
	var query url.Values
	if q.Explain {
		query = url.Values{"explain": {"true"}}
	}
	path, err := companyPath(q.Company, "permissions")
	if err != nil {
		return PermissionSet{}, fmt.Errorf("tenantgate: permissions: %w", err)
	}
	var ans PermissionSet
	cl := call{op: "permissions", method: http.MethodGet, path: path, query: query, consistency: q.ConsistencyToken}
	if _, err := c.do(ctx, cl, &ans); err != nil {
		return PermissionSet{}, err
	}
	if ans.Company != q.Company {
		return PermissionSet{}, fmt.Errorf("tenantgate: permissions: answer about %q, not %q", ans.Company, q.Company)
	}
	if q.Explain && len(ans.Explanations) != len(AllPermissions()) {
		return PermissionSet{}, fmt.Errorf("tenantgate: permissions: answer without the explanations asked for")
	}
	return ans, nil
}
