package client

import (
	"context"
	"fmt"
	"iter"
	"net/http"
	"net/url"
	"strconv"
)

// The management calls are the users' own (the service token gets 403) and
// are decided by the gateway on the current database rows: changing another
// user's membership needs manage_members, and manage_owners when it is or
// becomes an owner membership; nobody changes their own membership, though
// anyone may leave.

type membersAnswer struct {
	Members []Membership `json:"members"`
}

// Members lists the direct memberships of a company; it needs
// manage_members.
func (c *Client) Members(ctx context.Context, company string) ([]Membership, error) {
	path, err := companyPath(company, "members")
	if err != nil {
		return nil, fmt.Errorf("tenantgate: members: %w", err)
	}
	var ans membersAnswer
	if _, err := c.do(ctx, call{op: "members", method: http.MethodGet, path: path}, &ans); err != nil {
		return nil, err
	}
	return ans.Members, nil
}

type effectiveAnswer struct {
	Members []EffectiveMember `json:"members"`
}

// EffectiveMembers lists everyone who can read a company, through a
// membership on it or on a company above it; it needs manage_members.
// consistencyToken (may be empty) is the token of a write the list must
// reflect.
func (c *Client) EffectiveMembers(ctx context.Context, company, consistencyToken string) ([]EffectiveMember, error) {
	path, err := companyPath(company, "members")
	if err != nil {
		return nil, fmt.Errorf("tenantgate: effective members: %w", err)
	}
	var ans effectiveAnswer
	cl := call{op: "effective members", method: http.MethodGet, path: path,
		query: url.Values{"effective": {"true"}}, consistency: consistencyToken}
	if _, err := c.do(ctx, cl, &ans); err != nil {
		return nil, err
	}
	return ans.Members, nil
}

// WrittenMembership is a membership as a write stored it, with the write's
// consistency token.
type WrittenMembership struct {
	Membership
	ConsistencyToken string `json:"consistency_token"`
}

type putMemberBody struct {
	Role   Role   `json:"role"`
	Status Status `json:"status,omitempty"`
}

// PutMember gives user the role in company, replacing the membership it
// has; an empty status is active.
func (c *Client) PutMember(ctx context.Context, company, user string, role Role, status Status) (WrittenMembership, error) {
	path, err := companyPath(company, "members", user)
	if err != nil {
		return WrittenMembership{}, fmt.Errorf("tenantgate: put member: %w", err)
	}
	var ans WrittenMembership
	cl := call{op: "put member", method: http.MethodPut, path: path, body: putMemberBody{Role: role, Status: status}}
	if _, err := c.do(ctx, cl, &ans); err != nil {
		return WrittenMembership{}, err
	}
	return ans, nil
}

// DeleteMember removes user's membership of company (or, for the caller's
// own, leaves the company) and returns the write's consistency token.
func (c *Client) DeleteMember(ctx context.Context, company, user string) (consistencyToken string, err error) {
	path, err := companyPath(company, "members", user)
	if err != nil {
		return "", fmt.Errorf("tenantgate: delete member: %w", err)
	}
	h, err := c.do(ctx, call{op: "delete member", method: http.MethodDelete, path: path}, nil)
	if err != nil {
		return "", err
	}
	// A 204 has no body: its token is only in the header.
	token := h.Get(consistencyHeader)
	if token == "" {
		return "", fmt.Errorf("tenantgate: delete member: answer without a consistency token")
	}
	return token, nil
}

// AuditPage is one page of a company's audit trail, newest first.
type AuditPage struct {
	Entries []AuditEntry `json:"entries"`
	// NextCursor asks for older entries; empty on the last page.
	NextCursor string `json:"next_cursor"`
}

// ListAudit reads the page of company's audit trail that cursor names (an
// empty cursor: the newest); it needs manage_members. pageSize zero is the
// gateway's default.
func (c *Client) ListAudit(ctx context.Context, company string, pageSize int, cursor string) (AuditPage, error) {
	path, err := companyPath(company, "audit")
	if err != nil {
		return AuditPage{}, fmt.Errorf("tenantgate: audit: %w", err)
	}
	query := url.Values{}
	if pageSize != 0 {
		query.Set("limit", strconv.Itoa(pageSize))
	}
	if cursor != "" {
		query.Set("cursor", cursor)
	}
	var page AuditPage
	if _, err := c.do(ctx, call{op: "audit", method: http.MethodGet, path: path, query: query}, &page); err != nil {
		return AuditPage{}, err
	}
	return page, nil
}

// Audit iterates over company's whole audit trail, newest first, pageSize
// entries a request. A failure is yielded once and ends the iteration.
func (c *Client) Audit(ctx context.Context, company string, pageSize int) iter.Seq2[AuditEntry, error] {
	return pages(func(cursor string) ([]AuditEntry, string, error) {
		page, err := c.ListAudit(ctx, company, pageSize, cursor)
		return page.Entries, page.NextCursor, err
	})
}
