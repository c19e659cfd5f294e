# syntax=docker/dockerfile:1
# One image for every actor of a Pocket cluster (controller, shard, storage
# node): the first argument picks the role, POCKET_ACTOR_CONFIG holds its
# JSON configuration (actors/main.ts). Build it from the repository's root:
#   docker build -t pocket-on-nats:0.1.0 .
# docs/deploy.md runs it on Kubernetes (deploy/kubernetes).

ARG NODE_MAJOR=20

# ---- build: dependencies, the native NVMe engine, the TypeScript ----
FROM node:${NODE_MAJOR}-bookworm AS build
# liburing-dev, python3, make and g++ build the engine (node-gyp). The
# package's preinstall (scripts/provision.sh) installs from Debian whatever
# it finds missing — nats-server always, liburing-dev for the engine — so
# they are installed here first and it finds nothing to do.
RUN apt-get update \
 && apt-get install -y --no-install-recommends liburing-dev python3 make g++ nats-server \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
# The repository's .npmrc points node-gyp at Debian's Node headers (/usr);
# this image's Node keeps them under /usr/local.
ENV npm_config_nodedir=/usr/local
COPY package.json package-lock.json .npmrc binding.gyp ./
COPY scripts ./scripts
COPY native/src ./native/src
# Runs the preinstall, then the install script: node-gyp rebuild (build/Release/pocket_nvme.node).
RUN npm ci --no-audit --no-fund \
 && test -f build/Release/pocket_nvme.node
COPY . .
RUN npm run build \
 && npm prune --omit=dev --ignore-scripts --no-audit --no-fund

# ---- runtime: Node, liburing's shared library, the build's output ----
FROM node:${NODE_MAJOR}-bookworm-slim AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends liburing2 \
 && rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid 10001 pocket \
 && useradd --system --uid 10001 --gid pocket --home-dir /app --no-create-home --shell /usr/sbin/nologin pocket
WORKDIR /app
ENV NODE_ENV=production \
    POCKET_SECRETS_DIR=/etc/pocket/secrets \
    POCKET_PRIVATE_DIR=/run/pocket/private
COPY --from=build /app/package.json ./package.json
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/build/Release/pocket_nvme.node ./build/Release/pocket_nvme.node
COPY --from=build /app/dist/lib ./dist/lib
COPY --from=build /app/dist/schemas ./dist/schemas
COPY --from=build /app/dist/bus ./dist/bus
COPY --from=build /app/dist/native ./dist/native
COPY --from=build /app/dist/actors ./dist/actors
COPY --from=build /app/dist/client ./dist/client
COPY --from=build /app/dist/deploy ./dist/deploy
COPY --from=build /app/dist/cli ./dist/cli
# The storage-node pod templates the Kubernetes orchestrator falls back on.
COPY --from=build /app/deploy/kubernetes/storage-node-dram.yaml /app/deploy/kubernetes/storage-node-nvme.yaml ./deploy/kubernetes/
COPY --from=build /app/deploy/docker-entrypoint.sh ./deploy/docker-entrypoint.sh
USER 10001:10001
ENTRYPOINT ["/app/deploy/docker-entrypoint.sh"]
