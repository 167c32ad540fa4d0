# Multi-stage build: a full Rust toolchain to compile, a slim Debian to run.
FROM rust:1-bookworm AS build
WORKDIR /src
# Dependencies first, so source edits do not rebuild them.
COPY Cargo.toml Cargo.lock ./
COPY benches ./benches
RUN mkdir src && echo 'fn main() {}' > src/main.rs && echo '' > src/lib.rs \
    && cargo build --release --locked --bin ghl-workflow-debugger || true
COPY . .
RUN touch src/main.rs src/lib.rs && cargo build --release --locked --bin ghl-workflow-debugger

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin app
COPY --from=build /src/target/release/ghl-workflow-debugger /usr/local/bin/ghl-workflow-debugger
USER app
ENV HOST=0.0.0.0 PORT=3000 APP_ENV=production RUST_LOG=info
EXPOSE 3000
# Readiness: Postgres answers. (A degraded cache is still ready.)
HEALTHCHECK --interval=10s --timeout=2s --start-period=10s --retries=3 \
    CMD curl -fsS "http://127.0.0.1:${PORT}/ready" >/dev/null || exit 1
ENTRYPOINT ["ghl-workflow-debugger"]
CMD ["serve"]
