# syntax=docker/dockerfile:1
# The Writ server and CLI as a container image (docs/install.md#container-image). From the repository root:
#   docker build -t writ .
#   docker run -p 8080:8080 -e WRIT_ISSUER=http://localhost:8080 -v writ-data:/var/lib/writ writ
# Stage build compiles the workspace and packs the two npm packages; stage install installs those
# tarballs the way docs/install.md does (better-sqlite3 downloads its prebuilt addon or compiles SQLite);
# the last stage is what runs: Node, the installed packages, a non-root user and the data volume.
# Nothing secret is built in: the data directory (KEK file, operator key, SQLite store) is created in the
# volume on first start, or the KEK and the store URL come from the environment (WRIT_KEK, WRIT_STORE).
ARG NODE_IMAGE=node:20-bookworm-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /src
COPY package.json package-lock.json tsconfig.base.json ./
COPY packages/sdk/package.json packages/sdk/
COPY packages/server/package.json packages/server/
COPY packages/console/package.json packages/console/
# Compiling TypeScript needs no native addon: no install scripts, no compiler in this stage.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY packages/sdk/ packages/sdk/
COPY packages/server/ packages/server/
COPY packages/console/ packages/console/
RUN npm run build && mkdir /packed && npm pack --pack-destination /packed ./packages/sdk ./packages/server

FROM ${NODE_IMAGE} AS install
RUN apt-get update \
  && apt-get install -y --no-install-recommends python3 make g++ \
  && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/writ
# An empty project that approves better-sqlite3's install script (and pins cookie@1 for Node 20).
COPY docker/package.json ./package.json
COPY --from=build /packed/ /tmp/packed/
RUN npm install --omit=dev --no-audit --no-fund /tmp/packed/writ-sdk-*.tgz /tmp/packed/writ-server-*.tgz \
  && npm cache clean --force && rm -rf /tmp/packed

FROM ${NODE_IMAGE}
RUN groupadd --system --gid 10001 writ \
  && useradd --system --uid 10001 --gid writ --home-dir /var/lib/writ --no-create-home --shell /usr/sbin/nologin writ \
  && install -d -o writ -g writ -m 0700 /var/lib/writ
# Owned by root, read-only to the server: the process cannot change its own code.
COPY --from=install /opt/writ /opt/writ
COPY docker/healthcheck.mjs /opt/writ/healthcheck.mjs
ENV NODE_ENV=production \
  PATH=/opt/writ/node_modules/.bin:$PATH \
  WRIT_DATA_DIR=/var/lib/writ \
  WRIT_HOST=0.0.0.0 \
  WRIT_PORT=8080
USER 10001:10001
WORKDIR /var/lib/writ
VOLUME ["/var/lib/writ"]
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 CMD ["node", "/opt/writ/healthcheck.mjs"]
ENTRYPOINT ["writ"]
CMD ["serve"]
