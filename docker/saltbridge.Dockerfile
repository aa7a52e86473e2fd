# saltbridge built from this source tree: a Rust build stage, then the binary on Debian
# bookworm. What a user with Docker builds (docker compose up --build). A full build takes
# 10 to 20 minutes on 2 cores; docker/saltbridge-prebuilt.Dockerfile takes a binary built
# on the host instead (SALTBRIDGE_DOCKERFILE=docker/saltbridge-prebuilt.Dockerfile).
ARG RUST_IMAGE=rust:1.95-bookworm
FROM ${RUST_IMAGE} AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends libssl-dev zlib1g-dev pkg-config \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --bin saltbridge \
    && strip --strip-debug -o /saltbridge target/release/saltbridge

FROM debian:bookworm
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates libssl3 zlib1g \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /saltbridge /usr/local/bin/saltbridge
COPY docker/routes.compose.yaml /etc/saltbridge/routes.yaml
ENTRYPOINT ["saltbridge"]
CMD ["run", "-c", "/etc/saltbridge/routes.yaml", "--state-dir", "/var/lib/saltbridge"]
