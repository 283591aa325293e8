package client_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tenantgate/tenantgate/client"
)

// aheadToken is a WAL position no test database reaches: a read given it
// is refused at once (400), which shows the token reached the gateway.
const aheadToken = "FFFFFFFF/FFFFFFFF"

func TestProblems(t *testing.T) {
	t.Parallel()
	g := startGateway(t, treeSeed)
	bob := g.as(t, "bob")

	for _, tc := range []struct {
		name       string
		call       func(t *testing.T) error
		status     int
		sentinel   error
		is         func(error) bool
		wantDetail string
	}{
		{
			name: "403 promoting oneself",
			call: func(t *testing.T) error {
				_, err := bob.PutMember(t.Context(), "france", "bob", client.RoleOwner, "")
				return err
			},
			status: http.StatusForbidden, sentinel: client.ErrForbidden, is: client.IsForbidden,
			wantDetail: "nobody changes their own membership",
		},
		{
			name: "403 a user naming a subject",
			call: func(t *testing.T) error {
				_, err := bob.Check(t.Context(), client.Check{Subject: "alice", Permission: client.PermRead, Company: "paris"})
				return err
			},
			status: http.StatusForbidden, sentinel: client.ErrForbidden, is: client.IsForbidden,
			wantDetail: "subject may only be set by a trusted service",
		},
		{
			name: "403 the service token on a users' route",
			call: func(t *testing.T) error {
				_, err := g.service(t).Permissions(t.Context(), client.PermissionsQuery{Company: "paris"})
				return err
			},
			status: http.StatusForbidden, sentinel: client.ErrForbidden, is: client.IsForbidden,
		},
		{
			name: "401 a token the gateway does not trust",
			call: func(t *testing.T) error {
				_, err := g.client(t).As("not-a-jwt").Check(t.Context(), client.Check{Permission: client.PermRead, Company: "paris"})
				return err
			},
			status: http.StatusUnauthorized, sentinel: client.ErrUnauthorized, is: client.IsUnauthorized,
		},
		{
			name: "401 a token of another issuer",
			call: func(t *testing.T) error {
				other := newIssuer(t)
				tok, err := other.Mint("bob", time.Hour, nil)
				if err != nil {
					t.Fatal(err)
				}
				_, err = g.client(t).As(tok).Check(t.Context(), client.Check{Permission: client.PermRead, Company: "paris"})
				return err
			},
			status: http.StatusUnauthorized, sentinel: client.ErrUnauthorized, is: client.IsUnauthorized,
		},
		{
			name: "400 an invalid company id",
			call: func(t *testing.T) error {
				_, err := bob.Check(t.Context(), client.Check{Permission: client.PermRead, Company: "bad\x01id"})
				return err
			},
			status: http.StatusBadRequest, sentinel: client.ErrBadRequest, is: client.IsBadRequest,
			wantDetail: "company id",
		},
		{
			name: "400 an unknown permission",
			call: func(t *testing.T) error {
				_, err := bob.Check(t.Context(), client.Check{Permission: "fly", Company: "paris"})
				return err
			},
			status: http.StatusBadRequest, sentinel: client.ErrBadRequest, is: client.IsBadRequest,
		},
		{
			name: "400 the service token without a subject",
			call: func(t *testing.T) error {
				_, err := g.service(t).Check(t.Context(), client.Check{Permission: client.PermRead, Company: "paris"})
				return err
			},
			status: http.StatusBadRequest, sentinel: client.ErrBadRequest, is: client.IsBadRequest,
			wantDetail: "subject is required",
		},
		{
			name: "400 a consistency token ahead of the database",
			call: func(t *testing.T) error {
				_, err := bob.Check(t.Context(), client.Check{Permission: client.PermRead, Company: "paris", ConsistencyToken: aheadToken})
				return err
			},
			status: http.StatusBadRequest, sentinel: client.ErrBadRequest, is: client.IsBadRequest, wantDetail: "ahead",
		},
		{
			name: "400 a consistency token ahead, in a bulk check's body",
			call: func(t *testing.T) error {
				_, err := bob.CheckBulk(t.Context(), client.BulkCheck{ConsistencyToken: aheadToken, Items: []client.CheckItem{{Permission: client.PermRead, Company: "paris"}}})
				return err
			},
			status: http.StatusBadRequest, sentinel: client.ErrBadRequest, is: client.IsBadRequest, wantDetail: "ahead",
		},
		{
			name: "400 a consistency token ahead, in the header of permissions",
			call: func(t *testing.T) error {
				_, err := bob.Permissions(t.Context(), client.PermissionsQuery{Company: "paris", ConsistencyToken: aheadToken})
				return err
			},
			status: http.StatusBadRequest, sentinel: client.ErrBadRequest, is: client.IsBadRequest, wantDetail: "ahead",
		},
		{
			name: "400 a consistency token ahead, in the header of a listing",
			call: func(t *testing.T) error {
				_, err := bob.ListCompanies(t.Context(), client.CompaniesQuery{ConsistencyToken: aheadToken}, "")
				return err
			},
			status: http.StatusBadRequest, sentinel: client.ErrBadRequest, is: client.IsBadRequest, wantDetail: "ahead",
		},
		{
			name: "400 a consistency token ahead, in the header of effective members",
			call: func(t *testing.T) error {
				_, err := bob.EffectiveMembers(t.Context(), "paris", aheadToken)
				return err
			},
			status: http.StatusBadRequest, sentinel: client.ErrBadRequest, is: client.IsBadRequest, wantDetail: "ahead",
		},
		{
			name: "409 an id that exists",
			call: func(t *testing.T) error {
				_, err := g.as(t, "zoe").CreateCompany(t.Context(), client.NewCompany{ID: "globex", Name: "Mine"})
				return err
			},
			status: http.StatusConflict, sentinel: client.ErrConflict, is: client.IsConflict,
		},
		{
			name: "404 a membership that does not exist",
			call: func(t *testing.T) error {
				_, err := g.as(t, "alice").DeleteMember(t.Context(), "paris", "nobody")
				return err
			},
			status: http.StatusNotFound, sentinel: client.ErrNotFound, is: client.IsNotFound,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call(t)
			e, ok := errors.AsType[*client.Error](err)
			if !ok {
				t.Fatalf("error %v (%T), want a *client.Error", err, err)
			}
			if e.Status != tc.status || e.Title != http.StatusText(tc.status) || e.Type != "about:blank" {
				t.Errorf("error %+v, want status %d", e, tc.status)
			}
			if e.RequestID == "" || !strings.Contains(e.Error(), e.RequestID) {
				t.Errorf("error %q without its request id %q", e.Error(), e.RequestID)
			}
			if !strings.Contains(e.Detail, tc.wantDetail) {
				t.Errorf("detail %q, want it to hold %q", e.Detail, tc.wantDetail)
			}
			if !errors.Is(err, tc.sentinel) || !tc.is(err) {
				t.Errorf("errors.Is(%v, %v) is false", err, tc.sentinel)
			}
			for _, other := range []error{client.ErrForbidden, client.ErrUnauthorized, client.ErrBadRequest, client.ErrConflict, client.ErrNotFound, client.ErrUnavailable} {
				if other != tc.sentinel && errors.Is(err, other) {
					t.Errorf("%v is also %v", err, other)
				}
			}
		})
	}
}

func TestNoCredentials(t *testing.T) {
	t.Parallel()
	var asked atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { asked.Store(true) }))
	t.Cleanup(srv.Close)
	c, err := client.New(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	for name, cl := range map[string]*client.Client{"no bearer": c, "empty user token": c.As("")} {
		t.Run(name, func(t *testing.T) {
			d, err := cl.Check(t.Context(), client.Check{Permission: client.PermRead, Company: "paris"})
			if !errors.Is(err, client.ErrNoCredentials) || d.Allowed {
				t.Errorf("check: %+v, %v; want ErrNoCredentials", d, err)
			}
		})
	}
	if asked.Load() {
		t.Error("a request went out without credentials")
	}
}

func TestNew(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		url  string
		opts []client.Option
		ok   bool
	}{
		{"http://localhost:8080", nil, true},
		{"https://authz.example/prefix/", nil, true},
		{"", nil, false},
		{"localhost:8080", nil, false},
		{"ftp://host", nil, false},
		{"http://host?x=1", nil, false},
		{"http://user:pw@host", nil, false},
		{"http://host", []client.Option{client.WithServiceToken("")}, false},
		{"http://host", []client.Option{client.WithServiceToken("two words")}, false},
		{"http://host", []client.Option{client.WithTimeout(-time.Second)}, false},
		{"http://host", []client.Option{client.WithTimeout(0), client.WithHTTPClient(nil), client.WithLogger(nil)}, true},
	} {
		t.Run(tc.url, func(t *testing.T) {
			_, err := client.New(tc.url, tc.opts...)
			if (err == nil) != tc.ok {
				t.Errorf("New(%q) = %v, want ok=%v", tc.url, err, tc.ok)
			}
		})
	}
}

func TestPathPrefixAndEscaping(t *testing.T) {
	t.Parallel()
	var gotPath string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotPath = r.URL.EscapedPath()
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"company":"a/b c","permissions":{},"consistency_token":"t"}`))
	}))
	t.Cleanup(srv.Close)
	c, err := client.New(srv.URL+"/authz/", client.WithServiceToken(serviceToken))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Permissions(t.Context(), client.PermissionsQuery{Company: "a/b c"}); err != nil {
		t.Fatal(err)
	}
	if want := "/authz/v1/companies/a%2Fb%20c/permissions"; gotPath != want {
		t.Errorf("path %q, want %q", gotPath, want)
	}
	for _, id := range []string{"", ".", ".."} {
		if _, err := c.Permissions(t.Context(), client.PermissionsQuery{Company: id}); !client.IsBadRequest(err) {
			t.Errorf("company %q: %v, want a bad request", id, err)
		}
	}
}

// TestTransportFailures are calls that get no answer: the context's
// deadline or the client's timeout ends a call the gateway holds, and a
// gateway that is down is the transport's error, wrapped.
func TestTransportFailures(t *testing.T) {
	t.Parallel()
	hanging := hangingServer(t)
	check := client.Check{Subject: "bob", Permission: client.PermRead, Company: "paris"}

	t.Run("context deadline", func(t *testing.T) {
		c, err := client.New(hanging.URL, client.WithServiceToken(serviceToken), client.WithTimeout(0))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
		defer cancel()
		d, err := c.Check(ctx, check)
		if !errors.Is(err, context.DeadlineExceeded) || d.Allowed {
			t.Errorf("check: %+v, %v; want a deadline exceeded", d, err)
		}
	})

	t.Run("client timeout", func(t *testing.T) {
		c, err := client.New(hanging.URL, client.WithServiceToken(serviceToken), client.WithTimeout(100*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		d, err := c.Check(t.Context(), check)
		if !errors.Is(err, context.DeadlineExceeded) || d.Allowed {
			t.Errorf("check: %+v, %v; want a deadline exceeded", d, err)
		}
	})

	t.Run("unreachable", func(t *testing.T) {
		c, err := client.New(closedURL(t), client.WithServiceToken(serviceToken))
		if err != nil {
			t.Fatal(err)
		}
		d, err := c.Check(t.Context(), check)
		if _, isNet := errors.AsType[*net.OpError](err); !isNet || d.Allowed {
			t.Errorf("check: %+v, %v; want the transport's error, wrapped", d, err)
		}
	})
}

// TestMalformedAnswers is a gateway (or whatever answers in its place)
// whose answers cannot be trusted: none of them may become an allow.
func TestMalformedAnswers(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name        string
		status      int
		contentType string
		body        string
		bulk        bool
		wantStatus  int // of the *client.Error; 0 for another error
	}{
		{"no allowed", 200, "application/json", `{"consistency_token":"t"}`, false, 0},
		{"not JSON", 200, "application/json", `allowed: true`, false, 0},
		{"empty 204", 204, "", ``, false, 0},
		{"a proxy's error page", 502, "text/html", `<h1>{"allowed":true}</h1>`, false, 502},
		{"a problem", 503, "application/problem+json", `{"type":"about:blank","title":"Service Unavailable","status":503}`, false, 503},
		{"fewer results", 200, "application/json", `{"results":[{"permission":"read","company":"a","allowed":true}],"consistency_token":"t"}`, true, 0},
		{"results out of order", 200, "application/json", `{"results":[{"permission":"read","company":"b","allowed":true},{"permission":"read","company":"a","allowed":true}],"consistency_token":"t"}`, true, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				if tc.contentType != "" {
					w.Header().Set("Content-Type", tc.contentType)
				}
				w.Header().Set("Retry-After", "3")
				w.WriteHeader(tc.status)
				_, _ = w.Write([]byte(tc.body))
			}))
			t.Cleanup(srv.Close)
			c, err := client.New(srv.URL, client.WithServiceToken(serviceToken))
			if err != nil {
				t.Fatal(err)
			}
			if tc.bulk {
				d, err := c.CheckBulk(t.Context(), client.BulkCheck{Subject: "bob", Items: []client.CheckItem{
					{Permission: client.PermRead, Company: "a"}, {Permission: client.PermRead, Company: "b"},
				}})
				if err == nil || d.Allowed(client.PermRead, "a") || len(d.Results) != 0 {
					t.Errorf("bulk: %+v, %v; want an error and no result", d, err)
				}
				return
			}
			d, err := c.Check(t.Context(), client.Check{Subject: "bob", Permission: client.PermRead, Company: "a"})
			if err == nil || d.Allowed {
				t.Fatalf("check: %+v, %v; want an error and no allow", d, err)
			}
			e, isProblem := errors.AsType[*client.Error](err)
			switch {
			case tc.wantStatus == 0 && isProblem:
				t.Errorf("error %v is a *client.Error", err)
			case tc.wantStatus != 0 && (!isProblem || e.Status != tc.wantStatus || e.RetryAfter != 3*time.Second):
				t.Errorf("error %#v, want status %d, retry after 3s", err, tc.wantStatus)
			}
		})
	}
}
