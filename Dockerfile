# syntax=docker/dockerfile:1
#
# Clarity container image: one binary, `clarity`, on Debian 12.
#
#   docker build -t clarity .
#   docker run --rm -p 8080:8080 clarity                       # serve (PORT honoured)
#   docker run --rm -e DATABASE_URL=... clarity migrate up    # one-off migration job
#   docker run --rm clarity smoke --url https://... --read-only
#
# Stage 1 builds on debian:bookworm with the -dev packages that
# scripts/install-deps installs (the same list CI and laptops use). Stage 2 is
# debian:bookworm-slim with only the shared libraries the binary loads, runs
# as an unprivileged user and holds no compiler, headers or sources.

ARG DEBIAN_RELEASE=bookworm

FROM debian:${DEBIAN_RELEASE} AS build
# RUN_TESTS=1 runs the unit and end-to-end suite inside the build (CI runs it
# separately, so the default keeps image builds fast).
ARG RUN_TESTS=0
WORKDIR /src
# Dependencies first, so that this layer is cached until the list changes.
COPY scripts/install-deps scripts/install-deps
RUN scripts/install-deps && rm -rf /var/lib/apt/lists/*
COPY . .
# Only the binary by default; with RUN_TESTS=1 every target and the suite.
RUN cmake -S . -B build/release -G Ninja -DCMAKE_BUILD_TYPE=Release \
 && if [ "$RUN_TESTS" = 1 ]; then \
      cmake --build build/release -j "$(nproc)" \
      && (cd build/release && ctest --output-on-failure -j "$(nproc)"); \
    else \
      cmake --build build/release -j "$(nproc)" --target clarity; \
    fi \
 && install -D -m 0755 build/release/clarity /out/usr/local/bin/clarity \
 && strip /out/usr/local/bin/clarity \
 && if [ -d build/swagger-ui/node_modules/swagger-ui-dist ]; then \
      mkdir -p /out/usr/local/share/clarity \
      && cp -r build/swagger-ui/node_modules/swagger-ui-dist /out/usr/local/share/clarity/swagger-ui; \
    fi

FROM debian:${DEBIAN_RELEASE}-slim AS runtime
# Runtime halves of the -dev packages in scripts/install-deps (found with
# `apt-cache search` / `dpkg -S` on Debian 12); curl is for HEALTHCHECK only,
# ca-certificates for outbound HTTPS (identity keys, LLM providers, smoke).
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libmicrohttpd12 libwslay1 libjansson4 libsqlite3-0 libpq5 libjwt0 \
      libssl3 libsodium23 libcurl4 libopenblas0-pthread libhdf5-103-1 \
      libexpat1 libzip4 libzstd1 ca-certificates curl \
 && rm -rf /var/lib/apt/lists/*

# Fixed ids so that volume permissions are predictable; no login shell.
RUN groupadd --system --gid 10001 clarity \
 && useradd --system --uid 10001 --gid clarity --home-dir /app \
      --no-create-home --shell /usr/sbin/nologin clarity \
 && install -d -o clarity -g clarity -m 0750 /app /app/var

COPY --from=build /out/ /
# Fail the image build, not the first start, when a library is missing.
RUN if ldd /usr/local/bin/clarity | grep 'not found'; then exit 1; fi \
 && /usr/local/bin/clarity version

WORKDIR /app
# Cloud Run sets PORT; HOST must be a wildcard inside a container. The
# embedded database is only a default for a quick local run: real deployments
# set ENVIRONMENT and DATABASE_URL (or DATABASE_URL_FILE).
# Swagger UI for /docs, when install-deps could fetch it (else /docs is 503).
ENV HOST=0.0.0.0 \
    PORT=8080 \
    DATABASE_URL=sqlite:/app/var/clarity.db \
    DOCS_ASSETS_DIR=/usr/local/share/clarity/swagger-ui
USER 10001:10001
EXPOSE 8080
# Shell form so that ${PORT} is read when the check runs. Docker honours this
# (OCI images drop it: build with `--format docker` under buildah/podman);
# Cloud Run uses its own probes (deploy/terraform/).
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD curl -fsS "http://127.0.0.1:${PORT}/liveness" >/dev/null || exit 1
# clarity serve drains on SIGTERM itself, so it runs as PID 1 directly.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/clarity"]
CMD ["serve"]
