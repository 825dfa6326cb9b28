# syntax=docker/dockerfile:1
# Bursar: build with cached dependencies (cargo-chef), run as a small,
# unprivileged image.

FROM rust:1-bookworm AS chef
RUN cargo install cargo-chef --locked
WORKDIR /src

# The dependency list alone, so that the expensive layer below is rebuilt
# only when Cargo.toml or Cargo.lock change.
FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
COPY --from=planner /src/recipe.json recipe.json
RUN cargo chef cook --release --recipe-path recipe.json --bin bursar
COPY . .
RUN cargo build --release --bin bursar

FROM debian:bookworm-slim AS runtime
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl tzdata \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --create-home --home-dir /var/lib/bursar bursar \
    && mkdir -p /var/log/bursar \
    && chown bursar:bursar /var/log/bursar
COPY --from=builder /src/target/release/bursar /usr/local/bin/bursar
USER bursar
WORKDIR /var/lib/bursar
ENV BURSAR_BIND=0.0.0.0:8080 \
    BURSAR_LOG_DIR=/var/log/bursar
EXPOSE 8080
# SIGTERM: stop accepting, finish in-flight requests (at most 30 s), exit 0.
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD curl -fsS http://127.0.0.1:8080/health/live || exit 1
ENTRYPOINT ["bursar"]
CMD ["serve"]
