# syntax=docker/dockerfile:1
# rcptgate container image: docker build -t rcptgate:0.1.0 .

# --- build: compile TypeScript with the dev dependencies ---
FROM node:24-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
# --ignore-scripts: the "prepare" script compiles, and the sources are not copied yet.
RUN npm ci --ignore-scripts
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

# --- runtime: production dependencies only, non-root, read-only friendly ---
FROM node:24-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
RUN groupadd --system --gid 10001 rcptgate \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin rcptgate
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts && npm cache clean --force
COPY --from=build /app/dist ./dist
COPY examples ./examples
COPY openapi.yaml ./
# Numeric, so Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
USER 10001:10001
# Listeners on all interfaces, said explicitly: rcptgate's own default is loopback. A config of
# your own (--config FILE, or -e RCPTGATE_CONFIG=FILE) replaces examples/container.yaml.
ENV RCPTGATE_CONFIG=/app/examples/container.yaml
# http, socketmap, policy, milter, metrics
EXPOSE 8080 9465 9466 9467 9468
# Exec form: node is PID 1 and receives SIGTERM itself; rcptgate installs its own handlers and
# starts no child processes, so no init process is needed to forward signals or reap zombies.
ENTRYPOINT ["node", "dist/main.js"]
CMD ["serve"]
