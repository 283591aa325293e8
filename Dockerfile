# syntax=docker/dockerfile:1
#
# tenantgate's image: one static binary on distroless, running as a non-root
# user. The last stage, `tenantgate`, is what a plain `docker build .` makes;
# `--target devissuer` makes the development token issuer of the compose
# stack (docker-compose.yml), which must never ship anywhere else.

# The Go version of go.mod's go directive, so the image builds what CI tests.
FROM golang:1.26.8-alpine AS build
# Fail rather than download another toolchain should go.mod ever ask for one.
ENV GOTOOLCHAIN=local CGO_ENABLED=0
WORKDIR /src
# Modules first, so a source change does not download them again. go.mod's
# spicedb `tool` is never built here: tenantgate embeds SpiceDB as a library.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod \
    go mod download
COPY . .
# -trimpath keeps build paths out of the binaries; -s -w drops the symbol
# table and DWARF (stack traces keep function names and lines).
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    go build -trimpath -ldflags="-s -w" -o /out/ \
        ./cmd/tenantgate ./cmd/devissuer ./deploy/compose/healthprobe
# The devissuer's key directory, owned by the nonroot user (65532) so that a
# fresh named volume mounted there inherits an owner who may write to it.
RUN mkdir -p /out/devissuer-data

# Development token issuer, for docker-compose.yml only.
FROM gcr.io/distroless/static-debian12:nonroot AS devissuer
COPY --from=build /out/devissuer /out/healthprobe /usr/local/bin/
COPY --from=build --chown=65532:65532 /out/devissuer-data /var/lib/devissuer
# Numeric, so Kubernetes' runAsNonRoot can check it without a passwd file.
USER 65532:65532
# 8081: HTTP, /.well-known/jwks.json and /token?sub=USER.
EXPOSE 8081
ENTRYPOINT ["/usr/local/bin/devissuer"]

# tenantgate itself: `serve`, `sync`, `migrate` (and `demo`).
FROM gcr.io/distroless/static-debian12:nonroot AS tenantgate
# healthprobe is the compose healthcheck: the image has no shell or curl.
COPY --from=build /out/tenantgate /out/healthprobe /usr/local/bin/
# Numeric, so Kubernetes' runAsNonRoot can check it without a passwd file.
USER 65532:65532
# 8080: REST gateway of `tenantgate serve` (--http-addr).
EXPOSE 8080
# 9090: /metrics, /healthz and /readyz of `tenantgate sync` (--metrics-addr).
EXPOSE 9090
ENTRYPOINT ["/usr/local/bin/tenantgate"]
CMD ["serve"]
