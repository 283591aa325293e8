package spicedb

import (
	"slices"
	"testing"
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
