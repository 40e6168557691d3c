# The fledge image: one binary (`fledge extproc`, `fledge controller`, `fledge sim`, ...).
# Used by manifests/ and scripts/kind-up.sh. Not built by `make test` (no Docker in CI).
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY cli cli
COPY common common
COPY extproc extproc
COPY controller controller
COPY sim sim
COPY model model
COPY proto proto
COPY local local
COPY bench bench
RUN npx tsc -p tsconfig.json && npm prune --omit=dev --no-audit --no-fund

FROM node:20-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules node_modules
COPY --from=build /app/dist dist
# The shipped golden set (the prober's and extproc's default): data, not compiled.
COPY --from=build /app/extproc/quality/golden extproc/quality/golden
# Non-root, matching runAsUser in manifests/.
USER 65532:65532
ENTRYPOINT ["node", "/app/dist/cli/main.js"]
