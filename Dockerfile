# syntax=docker/dockerfile:1
# smartlayer: both binaries (authz, reporter) in one static, distroless, non-root image.
#   docker build -t smartlayer:dev .
ARG GO_VERSION=1.26
# VERSION ends up in `authz --version`: make image passes `git describe`.
ARG VERSION=dev

FROM golang:${GO_VERSION}-bookworm AS build
ARG VERSION
WORKDIR /src
# Static binaries: distroless/static has no libc.
ENV CGO_ENABLED=0 GOFLAGS="-trimpath -buildvcs=false"
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    go build -ldflags="-s -w -X github.com/smartlayer/smartlayer/internal/version.Version=${VERSION}" \
      -o /out/bin/ ./cmd/authz ./cmd/reporter
# The spool directory must exist, owned by nonroot, so a fresh Docker volume mounted there
# inherits a writable owner (distroless has no shell to chown later).
RUN mkdir -p /out/spool

FROM gcr.io/distroless/static:nonroot
COPY --from=build /out/bin/authz /out/bin/reporter /usr/local/bin/
COPY --from=build --chown=65532:65532 /out/spool /var/spool/smartlayer
USER nonroot:nonroot
# authz gRPC, ALS gRPC, admin HTTP (/healthz /readyz /metrics /v1/bans).
EXPOSE 9001 9002 9090
# No ENTRYPOINT: the image holds two programs. The default is the `make run` equivalent
# (embedded defaults, memory store); compose and Kubernetes run
# `/usr/local/bin/authz serve --config /etc/smartlayer/config.yaml` or /usr/local/bin/reporter.
CMD ["/usr/local/bin/authz", "serve"]
