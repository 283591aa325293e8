# The two commands of the README: `make demo` runs the product on sample
# data; `make test` runs every test against real PostgreSQL and SpiceDB.
GO ?= go

.PHONY: demo test build vet fmt-check

demo:
	$(GO) run ./cmd/tenantgate demo

test: fmt-check vet
	$(GO) test -count=1 -timeout 45m ./...

build:
	CGO_ENABLED=0 $(GO) build -trimpath -o bin/tenantgate ./cmd/tenantgate

vet:
	$(GO) vet ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

# Issue 3's measurements (docs/benchmarks.md): backfill against SpiceDB's
# own bulk import, stream rate and lag, against real PostgreSQL and
# `spicedb serve`. Not part of `make test`. About 10 minutes on 2 cores;
# TENANTGATE_BENCH_* (internal/bench/bench_test.go) choose smaller sizes.
.PHONY: bench
bench:
	$(GO) test -v -run '^$$' -bench . -benchtime 1x -count 1 -timeout 40m ./internal/bench/
