# Build: docker build --build-arg VERSION=$(git describe --always) -t hookbay .
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
	&& useradd --system --uid 10001 --home /var/lib/hookbay --create-home hookbay
COPY --from=build /out/hookbay /usr/local/bin/hookbay
USER hookbay
WORKDIR /var/lib/hookbay
VOLUME /var/lib/hookbay
EXPOSE 8443 8080
ENTRYPOINT ["/usr/bin/tini", "--", "hookbay"]
CMD ["serve", "--data", "/var/lib/hookbay"]
