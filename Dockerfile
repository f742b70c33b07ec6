# Serin's container image: the release binary on a distroless base, as a non-root user.
#   docker build -t ghcr.io/serin-dev/serin:$(cargo pkgid | cut -d'#' -f2) .
# Not built in CI (no container engine there); tests/chart.rs keeps its user in step with the
# chart's securityContext.

FROM rust:1.95-bookworm AS build
WORKDIR /src
# Dependencies first, so source edits reuse the cached dependency layer.
COPY Cargo.toml Cargo.lock ./
COPY benches ./benches
RUN mkdir src && echo 'fn main() {}' > src/main.rs && touch src/lib.rs \
    && cargo build --release --locked && rm -rf src
COPY src ./src
RUN touch src/main.rs src/lib.rs && cargo build --release --locked --bin serin

# glibc and the system CA certificates (metric providers, webhooks and alert receivers are
# verified against them); no shell, no package manager.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/serin /usr/local/bin/serin
# distroless "nonroot": uid/gid 65532, the chart's runAsUser.
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/serin"]
CMD ["controller", "--metrics-addr=0.0.0.0:8080", "--log-format=json"]
