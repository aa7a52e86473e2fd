# saltbridge from a binary built on the host (glibc 2.36 or older, as Debian bookworm's):
#   cargo build --release --bin saltbridge
#   strip --strip-debug -o docker/prebuilt/saltbridge target/release/saltbridge
#   SALTBRIDGE_DOCKERFILE=docker/saltbridge-prebuilt.Dockerfile docker compose up --build
# scripts/compose-test builds the stack this way: a Rust build inside a container would
# start from nothing and take far longer than the host's incremental build.
FROM debian:bookworm
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates libssl3 zlib1g \
    && rm -rf /var/lib/apt/lists/*
COPY docker/prebuilt/saltbridge /usr/local/bin/saltbridge
COPY docker/routes.compose.yaml /etc/saltbridge/routes.yaml
ENTRYPOINT ["saltbridge"]
CMD ["run", "-c", "/etc/saltbridge/routes.yaml", "--state-dir", "/var/lib/saltbridge"]
