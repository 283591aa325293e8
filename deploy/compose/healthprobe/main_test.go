package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestProbe(t *testing.T) {
	handler := http.NewServeMux()
	handler.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("ready\n"))
	})
	handler.HandleFunc("GET /starting", func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "not ready: initial snapshot not applied", http.StatusServiceUnavailable)
	})
	handler.HandleFunc("GET /hang", func(_ http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
	})
	srv := httptest.NewServer(handler)
	defer srv.Close()
	closed := httptest.NewServer(handler)
	closed.Close()

	tests := []struct {
		name    string
		url     string
		wantErr string
	}{
		{"healthy", srv.URL + "/readyz", ""},
		{"unhealthy answer shows why", srv.URL + "/starting", "status 503: not ready: initial snapshot not applied"},
		{"unknown path", srv.URL + "/nope", "status 404"},
		{"nobody listening", closed.URL + "/readyz", "probe:"},
		{"hung server times out", srv.URL + "/hang", "deadline exceeded"},
		{"not a URL", "::", "missing protocol scheme"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
			defer cancel()
			err := probe(ctx, srv.Client(), tt.url)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("probe: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}
