# dask-dashboard-gateway container image.
#   docker build -t dask-dashboard-gateway .
# The image holds the binary and config/ only, and runs as an unprivileged user.
# config/gateway.toml listens on loopback with a development key, which the gateway
# refuses on a public listener: deployments set DDG_SERVER__LISTEN,
# DDG_SERVER__ADMIN_LISTEN and their own keys (see deploy/).
#
# The binary is a profile-guided build (bench/pgo: an instrumented build serves a
# training load of HTTP and WebSocket traffic on loopback, then the release build
# uses the profile): about 5-8 % less CPU per proxied request than a plain release
# build (bench/README.md), for about two to three times the build time.
# `--build-arg PGO=0` builds without a profile.

FROM rust:1.95.0-slim-bookworm AS build
ARG PGO=1
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# The training load's upstream and load generator, and llvm-profdata of rustc's LLVM.
# Versions are those of the base image's Debian release; the image holds none of it.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends nginx-light wrk python3-minimal \
 && rm -rf /var/lib/apt/lists/* \
 && rustup component add llvm-tools
WORKDIR /src
ENV CARGO_TARGET_DIR=/src/target
# What .dockerignore lets in: the crate, config/, and bench/pgo with its load tool.
COPY . .
RUN if [ "$PGO" = 1 ]; then binary=$(bench/pgo | tail -n 1); \
    else cargo build --release --locked && binary=target/release/dask-dashboard-gateway; fi \
 && cp "$binary" dask-dashboard-gateway \
 && strip dask-dashboard-gateway

FROM debian:12.12-slim
COPY --from=build /src/dask-dashboard-gateway /usr/local/bin/dask-dashboard-gateway
COPY config /etc/dask-dashboard-gateway
USER 65532:65532
EXPOSE 8080 9090
ENTRYPOINT ["/usr/local/bin/dask-dashboard-gateway"]
CMD ["--config", "/etc/dask-dashboard-gateway/gateway.toml"]
