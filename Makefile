# The two commands of the README: `make demo` runs the product on sample
# data; `make test` runs every test against real PostgreSQL and SpiceDB.
GO ?= go

.PHONY: demo test build vet fmt-check

demo:
	$(GO) run ./cmd/tenantgate demo

test: fmt-check vet
	$(GO) test -count=1 -timeout 45m ./...

# The fuzz targets past their seed corpora, FUZZTIME each (default 5s);
# CI runs it after `make test`.
.PHONY: fuzz
fuzz:
	.ci/fuzz

# Regenerate the TypeScript client's types after a change to
# internal/gateway/openapi.yaml; `make test` fails while they are stale.
.PHONY: ts-generate
ts-generate:
	cd clients/typescript && npm ci && npm run generate

build:
	CGO_ENABLED=0 $(GO) build -trimpath -o bin/tenantgate ./cmd/tenantgate

vet:
	$(GO) vet ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

# Issue 3's measurements (docs/benchmarks.md): backfill against SpiceDB's
# own bulk import, stream rate and lag, against real PostgreSQL and
# `spicedb serve`. Not part of `make test`. About 5 minutes on 2 cores
# (more on a busy machine); TENANTGATE_BENCH_* (docs/benchmarks.md) choose
# sizes, repeats and a noisy neighbour.
.PHONY: bench
bench:
	$(GO) test -v -run '^$$' -bench . -benchtime 1x -count 1 -timeout 40m ./internal/bench/

# Issue 12's comparison: `tenantgate bench` measures the gateway (embedded,
# on a Postgres datastore, against a remote SpiceDB; index on and off)
# against a floor, the recursive SQL and SpiceDB itself, every one a process
# on loopback, on generated data in a throwaway PostgreSQL. The markdown
# table goes to stdout, the chart to docs/. Not part of `make test`; about
# 10 minutes on 2 cores after SpiceDB is built (minutes, once).
.PHONY: bench-gateway
bench-gateway: build
	$(GO) build -o bin/spicedb github.com/authzed/spicedb/cmd/spicedb
	bin/tenantgate bench --bench-spicedb-bin bin/spicedb --bench-chart docs/benchmarks-gateway.svg

# The crash test of internal/app at ten times its CI size: 200,000 random
# changes and 200 SIGKILLs of the sync, with the PostgreSQL restart and the
# SpiceDB outage of the short run.
.PHONY: soak
soak:
	TENANTGATE_CRASH_CHANGES=200000 TENANTGATE_CRASH_KILLS=200 \
		$(GO) test -v -count=1 -run '^TestCrashSafeSync$$' -timeout 2h ./internal/app/

# Issue 15's overload run (docs/benchmarks.md, "Overload"): measures the
# capacity of `tenantgate serve` on loopback, then drives two and five
# times it for a minute each, index off and on, and prints the table.
# `make test` runs the same test at twice the capacity for 5 s. About
# 10 minutes on 2 cores.
.PHONY: overload
overload:
	TENANTGATE_OVERLOAD_FACTORS=2,5 TENANTGATE_OVERLOAD_SECONDS=60 TENANTGATE_OVERLOAD_STEP_SECONDS=5 \
		$(GO) test -v -count=1 -run '^TestOverload$$' -timeout 60m ./internal/loadbench/
