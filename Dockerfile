# dask-dashboard-gateway container image.
#   docker build -t dask-dashboard-gateway .
# The image holds the binary and config/ only, and runs as an unprivileged user.
# config/gateway.toml listens on loopback with a development key, which the gateway
# refuses on a public listener: deployments set DDG_SERVER__LISTEN,
# DDG_SERVER__ADMIN_LISTEN and their own keys (see deploy/).

FROM rust:1.95.0-slim-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY config ./config
RUN cargo build --release --locked \
 && strip target/release/dask-dashboard-gateway

FROM debian:12.12-slim
COPY --from=build /src/target/release/dask-dashboard-gateway /usr/local/bin/dask-dashboard-gateway
COPY config /etc/dask-dashboard-gateway
USER 65532:65532
EXPOSE 8080 9090
ENTRYPOINT ["/usr/local/bin/dask-dashboard-gateway"]
CMD ["--config", "/etc/dask-dashboard-gateway/gateway.toml"]
