package client_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net/http"
	"time"

	"github.com/tenantgate/tenantgate/client"
)

// An application guards its routes with Require: the company comes from
// the path, the caller is the bearer of the request, and the handlers run
// only for allowed requests, with the decision in their context.
func ExampleClient_Require() {
	tg, err := client.New("http://tenantgate:8080",
		client.WithTimeout(2*time.Second),
		client.WithLogger(slog.Default()))
	if err != nil {
		log.Fatal(err)
	}
	company := func(r *http.Request) (string, error) { return r.PathValue("company"), nil }

	mux := http.NewServeMux()
	mux.Handle("GET /companies/{company}/invoices",
		tg.Require(client.PermRead, company)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			d, _ := client.DecisionFrom(r.Context())
			fmt.Fprintf(w, "invoices of %s\n", d.Company)
		})))
	mux.Handle("PUT /companies/{company}/members/{user}",
		tg.Require(client.PermManageMembers, company)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			// Writes go through the gateway as the caller: it applies the
			// grant rules (no self-promotion, owners need manage_owners).
			token, _ := client.BearerToken(r) // Require checked it
			m, err := tg.As(token).PutMember(r.Context(), r.PathValue("company"), r.PathValue("user"), client.RoleViewer, "")
			if e, ok := errors.AsType[*client.Error](err); ok && e.Status < 500 {
				http.Error(w, e.Detail, e.Status) // the gateway's words, for the caller
				return
			}
			if err != nil {
				http.Error(w, "try again later", http.StatusServiceUnavailable)
				return
			}
			// The token lets the next read (a check, a listing) see it.
			w.Header().Set("Consistency-Token", m.ConsistencyToken)
		})))
	log.Fatal(http.ListenAndServe(":8000", mux))
}

// A backend that holds the service token asks about any user.
func ExampleClient_Check() {
	tg, err := client.New("http://tenantgate:8080", client.WithServiceToken("the-service-token"))
	if err != nil {
		log.Fatal(err)
	}
	d, err := tg.Check(context.Background(), client.Check{Subject: "bob", Permission: client.PermUpdate, Company: "acme"})
	switch {
	case client.IsUnauthorized(err):
		log.Fatal("the gateway does not know our service token")
	case err != nil:
		log.Fatal(err) // never an allow
	case d.Allowed:
		fmt.Println("bob may update acme")
	}
}

// Companies follows the pages of a listing.
func ExampleClient_Companies() {
	tg, err := client.New("http://tenantgate:8080")
	if err != nil {
		log.Fatal(err)
	}
	userToken := "the user's bearer token"
	for co, err := range tg.As(userToken).Companies(context.Background(), client.CompaniesQuery{Permission: client.PermManageMembers}) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(co.ID, co.Name)
	}
}
