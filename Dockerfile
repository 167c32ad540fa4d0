# Multi-stage build: a full Rust toolchain to compile, a slim Debian to run.
FROM rust:1-bookworm AS build
WORKDIR /src
# The compile-time-checked SQL is checked against .sqlx/, never a database (.cargo/config.toml
# says so too; this keeps the image build offline even if that file were left out).
ENV SQLX_OFFLINE=true
# Dependencies first, in a layer of their own, so source edits do not rebuild them: the
# manifest with placeholder sources (an empty library, a main that does nothing) builds every
# dependency. That build must succeed: a dependency that fails to compile fails the image
# here, naming it. (benches/ is copied because Cargo.toml names its bench targets.)
COPY Cargo.toml Cargo.lock ./
COPY .cargo ./.cargo
COPY benches ./benches
RUN mkdir src && echo 'fn main() {}' > src/main.rs && : > src/lib.rs \
    && cargo build --release --locked --bin ghl-workflow-debugger \
    && rm -rf src
# The service itself. COPY keeps the files' (older) times: touched, so Cargo rebuilds the crate
# over its placeholder build.
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
