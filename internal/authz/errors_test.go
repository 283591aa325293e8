package authz

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"testing"
)

func TestHideKeepsTheCauseOutOfTheMessage(t *testing.T) {
	cause := &fs.PathError{Op: "open", Path: "/secret/path", Err: fs.ErrNotExist}
	err := fmt.Errorf("create company: %w", Hide(ErrInvalid, "a value the database cannot store", cause))
	if got, want := err.Error(), "create company: invalid argument: a value the database cannot store"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	var pathErr *fs.PathError
	if !errors.Is(err, ErrInvalid) || !errors.Is(err, fs.ErrNotExist) || !errors.As(err, &pathErr) {
		t.Errorf("%v lost its kind or its cause", err)
	}
	if got := Cause(err); !strings.Contains(got, "/secret/path") {
		t.Errorf("Cause = %q, want the cause's text", got)
	}
	if got := Cause(fmt.Errorf("plain: %w", ErrInvalid)); got != "" {
		t.Errorf("Cause of an error without a hidden cause = %q", got)
	}
}

func TestValidateNewCompanyID(t *testing.T) {
	tests := []struct {
		id      string
		newOK   bool
		checkOK bool // ValidateCompanyID: an existing ID may be anything valid
	}{
		{"acme", true, true},
		{".", false, true},
		{"..", false, true},
		{"...", true, true},
		{"./a", true, true},
		{"", false, false},
		{"a\x00b", false, false},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%q", tt.id), func(t *testing.T) {
			if err := ValidateNewCompanyID(tt.id); (err == nil) != tt.newOK || (err != nil && !errors.Is(err, ErrInvalid)) {
				t.Errorf("ValidateNewCompanyID = %v, want ok=%v", err, tt.newOK)
			}
			if err := ValidateCompanyID(tt.id); (err == nil) != tt.checkOK {
				t.Errorf("ValidateCompanyID = %v, want ok=%v", err, tt.checkOK)
			}
		})
	}
}
