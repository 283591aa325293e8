package spicedb

import (
	"slices"
	"testing"

	"github.com/tenantgate/tenantgate/internal/authz"
)

func TestKeepSmallest(t *testing.T) {
	var page []string
	for _, id := range []string{"m", "c", "x", "c", "a", "b", "z", "d", "a"} {
		page = keepSmallest(page, id, "a", 3)
	}
	if want := []string{"b", "c", "d"}; !slices.Equal(page, want) {
		t.Errorf("page = %v, want %v", page, want)
	}
}

func TestWriteRequestsBoundUpdatesAndDeletes(t *testing.T) {
	upd := func(touches, deletes int) []authz.Update {
		var us []authz.Update
		for range touches {
			us = append(us, authz.Update{Op: authz.OpTouch})
		}
		for range deletes {
			us = append(us, authz.Update{Op: authz.OpDelete})
		}
		return us
	}
	for _, tc := range []struct {
		name    string
		updates []authz.Update
		want    []int // request sizes
	}{
		{"empty", nil, nil},
		{"touches fill whole requests", upd(2500, 0), []int{1000, 1000, 500}},
		{"deletes cut early", upd(0, 250), []int{100, 100, 50}},
		{"mixed", slices.Concat(upd(950, 0), upd(0, 150)), []int{1000, 100}},
		{"deletes first", slices.Concat(upd(0, 150), upd(950, 0)), []int{100, 1000}},
		{"exactly one request", upd(900, 100), []int{1000}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []int
			total := 0
			for req := range writeRequests(tc.updates) {
				got = append(got, len(req))
				deletes := 0
				for _, u := range req {
					if u.Op == authz.OpDelete {
						deletes++
					}
				}
				if deletes > maxDeletesPerWrite {
					t.Errorf("request with %d deletes", deletes)
				}
				total += len(req)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("request sizes = %v, want %v", got, tc.want)
			}
			if total != len(tc.updates) {
				t.Errorf("requests carry %d updates, want %d", total, len(tc.updates))
			}
		})
	}
}
