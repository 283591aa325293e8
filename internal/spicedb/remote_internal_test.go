package spicedb

import (
	"context"
	"testing"
)

// TestBearerSendsTheCurrentKey: every call carries the key as it is when
// the call is made, so a key rotated in a file is sent without a redial.
func TestBearerSendsTheCurrentKey(t *testing.T) {
	key := "old"
	b := bearer{token: currentToken(RemoteConfig{Token: "flag", CurrentToken: func() string { return key }})}
	for _, want := range []string{"old", "new"} {
		key = want
		md, err := b.GetRequestMetadata(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if got := md["authorization"]; got != "Bearer "+want {
			t.Errorf("authorization = %q, want Bearer %s", got, want)
		}
	}
	if md, _ := (bearer{token: currentToken(RemoteConfig{Token: "flag"})}).GetRequestMetadata(context.Background()); md["authorization"] != "Bearer flag" {
		t.Errorf("without CurrentToken: authorization = %q, want the flag's key", md["authorization"])
	}
}
