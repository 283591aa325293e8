package store_test

import (
	"sync/atomic"
	"testing"

	"github.com/tenantgate/tenantgate/internal/store"
	"github.com/tenantgate/tenantgate/internal/testutil"
)

// TestWithPasswordIsAskedForEveryNewConnection: the pool logs in with the
// password as it is when it connects, so a password rotated in a file is
// used by new connections. The test cluster trusts every login, so this
// shows the hook is asked, not that the server checks the answer.
func TestWithPasswordIsAskedForEveryNewConnection(t *testing.T) {
	t.Parallel()
	var asked atomic.Int32
	s, err := store.Open(t.Context(), testutil.NewTestDatabase(t), nil, store.WithPassword(func() string {
		asked.Add(1)
		return "rotated"
	}))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// Open pinged through a new connection; one more held open forces a
	// second.
	c1, err := s.Pool().Acquire(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer c1.Release()
	c2, err := s.Pool().Acquire(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Release()
	if n := asked.Load(); n < 2 {
		t.Errorf("password asked %d times for 2 connections", n)
	}
}
