# syntax=docker/dockerfile:1
# One image for every Moat service. The command picks which one runs:
#   node services/<ingress|filter|archive|router|sender|tracker|gateway>/dist/main.js
#   node services/supervisor/dist/migrate.js      (apply migrations, then exit)
#   node services/supervisor/dist/main.js         (the default: the whole stack in one container)
# docker-compose.yml and deploy/kubernetes run one service per container from this image.

ARG NODE_IMAGE=node:20-bookworm-slim

FROM ${NODE_IMAGE} AS pnpm
# The pinned pnpm (package.json "packageManager"); pnpm 12 installs only what
# pnpm-workspace.yaml allows to run build scripts (allowBuilds).
RUN npm install --global pnpm@12.4.2 && npm cache clean --force
ENV CI=true
WORKDIR /app

FROM pnpm AS build
# The lockfile alone decides what is downloaded: this layer stays cached until it changes.
COPY pnpm-lock.yaml pnpm-workspace.yaml package.json .npmrc ./
RUN pnpm fetch
COPY . .
RUN pnpm install --offline --frozen-lockfile \
 && pnpm build \
 && pnpm prune --prod \
 && find . -name '*.tsbuildinfo' -delete \
 && rm -rf tests bench scripts .ci

FROM ${NODE_IMAGE} AS runtime
# --max-semi-space-size=8: the services' young generation capped at 8 MiB semi-spaces (the
# supervisor's MOAT_NODE_ARGS default too): ~30-40 MiB less peak RSS per busy service.
ENV NODE_ENV=production \
    NODE_OPTIONS=--max-semi-space-size=8 \
    MOAT_ENV=production \
    MOAT_ADMIN_HOST=0.0.0.0 \
    MOAT_ADMIN_PORT=9100
WORKDIR /app
# Owned by root, run as `node`: the service cannot rewrite its own code.
COPY --from=build /app /app
USER node
# 2525 SMTP (MX), 2587 submission, 8080 API and web, 9100 admin (/livez, /readyz).
EXPOSE 2525 2587 8080 9100
STOPSIGNAL SIGTERM
CMD ["node", "--enable-source-maps", "services/supervisor/dist/main.js"]
