# Build: docker build --build-arg VERSION=$(git describe --always) -t hookbay .
#
# Production (the default command): the config at /etc/hookbay/hookbay.yaml,
# data (SQLite store, ACME certificates, dev CA) in the volume
# /var/lib/hookbay, secrets as files read through ${file:/run/secrets/...}:
#   docker run -d --name hookbay -p 443:8443 -p 80:8080 \
#     -v hookbay-data:/var/lib/hookbay \
#     -v "$PWD/hookbay.yaml:/etc/hookbay/hookbay.yaml:ro" \
#     -v "$PWD/secrets:/run/secrets:ro" hookbay
# (deploy/docker/hookbay.yaml is an example config; compose.yaml runs it
# with PostgreSQL.)
#
# A first try, dev mode (no config: generated credentials and a dev CA, and
# the banner saying how to send to it), reachable from the host:
#   docker run --rm -p 127.0.0.1:8443:8443 -v hookbay-data:/var/lib/hookbay \
#     --health-cmd "hookbay healthcheck --data /var/lib/hookbay" \
#     hookbay serve --listen :8443 --data /var/lib/hookbay
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
# cgo for mattn/go-sqlite3; extension loading is compiled out.
RUN CGO_ENABLED=1 go build -tags sqlite_omit_load_extension \
	-ldflags "-s -w -X github.com/hookbay/hookbay/cli.version=${VERSION}" -o /out/hookbay .

FROM debian:bookworm-slim
# tini is PID 1: it reaps any process an exec action's command leaves behind.
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates tini \
	&& rm -rf /var/lib/apt/lists/* \
	&& useradd --system --uid 10001 --home /var/lib/hookbay --create-home hookbay \
	&& mkdir -p /etc/hookbay
COPY --from=build /out/hookbay /usr/local/bin/hookbay
USER hookbay
WORKDIR /var/lib/hookbay
VOLUME /var/lib/hookbay
# 8443 HTTPS (publish it as 443 for ACME's TLS-ALPN-01), 8080 plain HTTP
# (tls off, or acme.http_listen for HTTP-01), 8081 the admin listener.
EXPOSE 8443 8080 8081
ENTRYPOINT ["/usr/bin/tini", "--", "hookbay"]
CMD ["serve", "--config", "/etc/hookbay/hookbay.yaml", "--data", "/var/lib/hookbay"]
# GET /readyz over loopback, no curl needed: 0 ready, 1 not ready, 2 cannot
# check (Docker counts every status but 0 as a failure). The start period
# covers a first certificate, which start-up waits up to 3 minutes for.
HEALTHCHECK --interval=30s --timeout=10s --start-period=4m --retries=3 \
	CMD ["hookbay", "healthcheck", "--config", "/etc/hookbay/hookbay.yaml", "--data", "/var/lib/hookbay"]
