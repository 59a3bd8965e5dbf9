# patd as a container image: a release build in rust:1-bookworm, run in debian:bookworm-slim as
# a non-root user with the SQLite database on the volume /var/lib/patd.
#
#   docker build -t patd .
#   docker run -d --name patd -p 8080:8080 -v patd-data:/var/lib/patd patd
#   docker logs patd | grep '^bootstrap '     # the first credential, printed once
#   docker stop -t 30 patd                    # SIGTERM; leave time for the graceful stop
#
# Flags after the image name go to `patd serve` (e.g. `… patd --rate-limit off`), as do PATD_*
# variables (`-e PATD_DATABASE_URL=postgres://…`). Administration runs in the same container:
# `docker exec patd patd identity create --name alice`.
#
# CI does not build this file: no Docker engine runs on the CI machine (README.md, "Docker").

FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p patd \
    && install -m 0755 target/release/patd /usr/local/bin/patd

FROM debian:bookworm-slim
# curl only for the HEALTHCHECK (the slim image has none); patd itself needs nothing beyond libc.
RUN apt-get update \
    && apt-get install -y --no-install-recommends curl \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 patd \
    && useradd --system --uid 10001 --gid patd --home-dir /var/lib/patd --no-create-home \
        --shell /usr/sbin/nologin patd \
    && install -d -o patd -g patd -m 0750 /var/lib/patd
COPY --from=build /usr/local/bin/patd /usr/local/bin/patd

# A numeric user, so that runtimes enforcing runAsNonRoot can check it.
USER 10001:10001
WORKDIR /var/lib/patd
VOLUME ["/var/lib/patd"]
ENV PATD_LISTEN=0.0.0.0:8080 \
    PATD_DATABASE_URL=sqlite:///var/lib/patd/patd.db
EXPOSE 8080
# /health/ready answers 200 once the database and the signing keys are usable. With another
# PATD_LISTEN port, or TLS, override it (docker run --health-cmd …).
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD curl -fsS -o /dev/null http://127.0.0.1:8080/health/ready || exit 1
ENTRYPOINT ["/usr/local/bin/patd", "serve"]
