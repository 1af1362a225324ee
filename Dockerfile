# syntax=docker/dockerfile:1
# routeplane's image: the compiled API with Debian's ansible, ssh and network tools.
#
#   docker build -t routeplane .
#   docker build --target lab-host -t routeplane-lab-host .   (the compose `lab` profile's hosts)
#
# The base is pinned by tag and digest (the multi-arch index digest of the official image), so
# a rebuild gets the same Node and Debian until someone bumps both here on purpose:
#   docker buildx imagetools inspect node:20.19.5-bookworm-slim
ARG NODE_IMAGE=node:20.19.5-bookworm-slim@sha256:9e70124bd00f47dd023e349cd587132ae61892acc0e47ed641416c3e18f401c3

# --- build: compile TypeScript, then keep production dependencies only -----------------------
FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund --loglevel=error
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build && npm prune --omit=dev --no-audit --no-fund

# --- lab-host: a target host for the compose `lab` profile (sshd, python for ansible) --------
FROM ${NODE_IMAGE} AS lab-host
RUN apt-get update \
 && apt-get install -y --no-install-recommends openssh-server python3 iproute2 nftables \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /run/sshd
EXPOSE 22
CMD ["/usr/sbin/sshd", "-D", "-e"]

# --- runtime ---------------------------------------------------------------------------------
FROM ${NODE_IMAGE} AS runtime
# A fixed UID/GID, so files on mounted volumes (data, keys) have a known owner on the host.
ARG APP_UID=10001
ARG APP_GID=10001
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      ansible openssh-client iproute2 nftables tini ca-certificates \
 && rm -rf /var/lib/apt/lists/*
# Named volumes mounted on these directories start with their owner and mode: DATA_DIR 0700.
RUN groupadd --gid "${APP_GID}" routeplane \
 && useradd --uid "${APP_UID}" --gid "${APP_GID}" --home-dir /home/routeplane --create-home \
      --shell /usr/sbin/nologin routeplane \
 && install -d -o routeplane -g routeplane -m 0700 /data /home/routeplane/.ssh \
 && install -d -o routeplane -g routeplane -m 0755 /var/lib/routeplane/kong /var/lib/routeplane/lab

WORKDIR /app
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
# What tsc does not emit, next to the compiled modules that read it: the script each host's
# watcher runs, and the dashboard's static files.
COPY src/live/watch/remote-watch.py ./dist/live/watch/remote-watch.py
COPY src/ui/public ./dist/ui/public
# The server reads openapi.yaml next to dist/ (src/http/contract.ts), and runs the playbooks.
COPY package.json openapi.yaml ./
COPY playbooks ./playbooks
# The warm runner's Python side (RUNNER=warm), found next to dist/ like openapi.yaml.
COPY runner ./runner
COPY inventory ./inventory
# The Kong template and its render step, run by the compose `kong-render` service.
COPY kong/kong.yml ./kong/kong.yml
COPY scripts/kong-render.mjs ./scripts/kong-render.mjs

ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=8080 \
    DATA_DIR=/data \
    INVENTORY=/app/inventory/hosts.yml \
    PLAYBOOKS_DIR=/app/playbooks \
    CATALOG_DIR=/app/playbooks/catalog
USER routeplane
EXPOSE 8080
# node is already here; no curl needed. /healthz answers without auth.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PORT||8080)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
# tini is PID 1: it forwards SIGTERM to the server (which cancels its runs and exits) and reaps
# any ansible or ssh process that outlives its parent.
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["node", "dist/server.js"]
