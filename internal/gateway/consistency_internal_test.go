package gateway

import (
	"errors"
	"testing"

	"github.com/tenantgate/tenantgate/internal/authz"
)

// TestLSNTokenKinds: what tells a WAL position from a ZedToken is its
// characters: an '@', which standard base64 never holds, or nothing but hex
// digits around one '/'.
func TestLSNTokenKinds(t *testing.T) {
	tests := []struct {
		token   string
		want    authz.Position
		isLSN   bool
		invalid bool
	}{
		{token: "Gh8KEzE3OTU2MDg0Mjg5NDUyOTYwODgSCGU1MjVmZDY5"},
		{token: "GhUKEz/+E3OTU2MDg0Mj=="},
		{token: "zed/abc"},
		{token: "0/1/2"},
		{token: "0/16B3748", want: authz.Position{LSN: 0x16B3748}, isLSN: true},
		{token: "0/16B3748@1", want: authz.Position{LSN: 0x16B3748, Timeline: 1}, isLSN: true},
		{token: "ab/cd@4294967295", want: authz.Position{LSN: 0xAB000000CD, Timeline: 1<<32 - 1}, isLSN: true},
		{token: "123456789/0", invalid: true},
		{token: "0/1@", invalid: true},
		{token: "0/1@0", invalid: true},
		{token: "0/1@-1", invalid: true},
		{token: "0/1@ 2", invalid: true},
		{token: "0/1@99999999999", invalid: true},
		{token: "0/1@2@3", invalid: true},
		{token: "zed@1", invalid: true},
	}
	for _, tt := range tests {
		t.Run(tt.token, func(t *testing.T) {
			got, isLSN, err := lsnToken(tt.token)
			if tt.invalid {
				if !errors.Is(err, authz.ErrInvalid) || isLSN {
					t.Fatalf("lsnToken(%q) = %+v, %v, %v; want an invalid argument", tt.token, got, isLSN, err)
				}
				return
			}
			if err != nil || isLSN != tt.isLSN || got != tt.want {
				t.Fatalf("lsnToken(%q) = %+v, %v, %v; want %+v, %v", tt.token, got, isLSN, err, tt.want, tt.isLSN)
			}
		})
	}
}
