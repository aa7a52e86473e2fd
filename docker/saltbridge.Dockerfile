# saltbridge: built in a Rust image, run from a slim one.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --bin saltbridge

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates libssl3 && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/saltbridge /usr/local/bin/saltbridge
COPY docker/routes.compose.yaml /etc/saltbridge/routes.yaml
ENTRYPOINT ["saltbridge"]
CMD ["run", "-c", "/etc/saltbridge/routes.yaml", "--state-dir", "/var/lib/saltbridge"]
