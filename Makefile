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
