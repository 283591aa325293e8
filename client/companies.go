package client

import (
	"context"
	"encoding/json"
	"fmt"
	"iter"
	"net/http"
	"net/url"
	"strconv"
)

// CompaniesQuery lists the companies the caller holds a permission on.
// Users only: the service token gets 403.
type CompaniesQuery struct {
	// Permission defaults to read.
	Permission Permission
	// PageSize is the most companies a page holds; zero is the gateway's
	// default (100). A page may hold fewer and still not be the last.
	PageSize int
	// ConsistencyToken is sent with every page.
	ConsistencyToken string
}

// CompanyPage is one page of a listing, sorted by ID.
type CompanyPage struct {
	Companies []Company `json:"companies"`
	// NextCursor asks for the next page; empty on the last one.
	NextCursor string `json:"next_cursor"`
}

// ListCompanies reads the page of q that cursor names; an empty cursor is
// the first page. Companies is the same without the bookkeeping.
func (c *Client) ListCompanies(ctx context.Context, q CompaniesQuery, cursor string) (CompanyPage, error) {
	query := url.Values{}
	if q.Permission != "" {
		query.Set("permission", string(q.Permission))
	}
	if q.PageSize != 0 {
		query.Set("limit", strconv.Itoa(q.PageSize))
	}
	if cursor != "" {
		query.Set("cursor", cursor)
	}
	var page CompanyPage
	cl := call{op: "list companies", method: http.MethodGet, path: "/v1/companies", query: query, consistency: q.ConsistencyToken}
	if _, err := c.do(ctx, cl, &page); err != nil {
		return CompanyPage{}, err
	}
	return page, nil
}

// Companies iterates over every company of q, following the pages. A
// failure is yielded once, with a zero Company, and ends the iteration:
//
//	for co, err := range c.As(token).Companies(ctx, client.CompaniesQuery{}) {
//		if err != nil {
//			return err
//		}
//		...
//	}
func (c *Client) Companies(ctx context.Context, q CompaniesQuery) iter.Seq2[Company, error] {
	return pages(func(cursor string) ([]Company, string, error) {
		page, err := c.ListCompanies(ctx, q, cursor)
		return page.Companies, page.NextCursor, err
	})
}

// pages iterates over the items of a cursor-paged listing. A cursor that
// comes back unchanged is an error: following it would never end.
func pages[T any](next func(cursor string) ([]T, string, error)) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		var zero T
		cursor := ""
		for {
			items, nextCursor, err := next(cursor)
			if err != nil {
				yield(zero, err)
				return
			}
			for _, it := range items {
				if !yield(it, nil) {
					return
				}
			}
			switch {
			case nextCursor == "":
				return
			case nextCursor == cursor:
				yield(zero, fmt.Errorf("tenantgate: listing: the gateway answered the same cursor again"))
				return
			}
			cursor = nextCursor
		}
	}
}

// NewCompany is a company to create; the caller becomes its active owner.
type NewCompany struct {
	// ID is optional: without it the gateway generates one. An ID that
	// exists is 409.
	ID   string `json:"id,omitempty"`
	Name string `json:"name"`
	// ParentID makes the company a child, which needs create on the parent.
	ParentID string `json:"parent_id,omitempty"`
}

// WrittenCompany is a company as a write left it, with the write's
// consistency token.
type WrittenCompany struct {
	Company
	ConsistencyToken string `json:"consistency_token"`
}

// CreateCompany creates a company.
func (c *Client) CreateCompany(ctx context.Context, co NewCompany) (WrittenCompany, error) {
	var ans WrittenCompany
	if _, err := c.do(ctx, call{op: "create company", method: http.MethodPost, path: "/v1/companies", body: co}, &ans); err != nil {
		return WrittenCompany{}, err
	}
	return ans, nil
}

// CompanyPatch changes a company: its name, its place in the tree, or
// both.
type CompanyPatch struct {
	// Name is the new name; empty leaves it.
	Name string
	// Move changes the parent to ParentID; an empty ParentID makes the
	// company a root. A move needs manage_owners on the current parent (on
	// the company itself when it is a root) and create on the new one.
	Move     bool
	ParentID string
}

// MarshalJSON writes parent_id as null for a move to the root, and leaves
// out what the patch does not change.
func (p CompanyPatch) MarshalJSON() ([]byte, error) {
	body := map[string]any{}
	if p.Name != "" {
		body["name"] = p.Name
	}
	if p.Move {
		body["parent_id"] = optional(p.ParentID)
	}
	return json.Marshal(body)
}

// UpdateCompany applies patch to company id.
func (c *Client) UpdateCompany(ctx context.Context, id string, patch CompanyPatch) (WrittenCompany, error) {
	path, err := companyPath(id)
	if err != nil {
		return WrittenCompany{}, fmt.Errorf("tenantgate: update company: %w", err)
	}
	var ans WrittenCompany
	if _, err := c.do(ctx, call{op: "update company", method: http.MethodPatch, path: path, body: patch}, &ans); err != nil {
		return WrittenCompany{}, err
	}
	return ans, nil
}
