#!/usr/bin/env bash
# Prints the path of a helm binary, building the pinned version with Go when none is found.
# Helm is built from source because the machines reach the Go module proxy but no release
# download site. Usage: scripts/install-helm.sh   (HELM_VERSION overrides the pin)
set -euo pipefail

HELM_VERSION="${HELM_VERSION:-v3.19.0}"

if command -v helm >/dev/null 2>&1; then
  command -v helm
  exit 0
fi

GO="$(command -v go || true)"
if [ -z "$GO" ] && [ -x /usr/local/go/bin/go ]; then GO=/usr/local/go/bin/go; fi
if [ -z "$GO" ]; then
  echo "install-helm.sh: helm is not on PATH and Go is missing: install Go (https://go.dev/doc/install) or helm ${HELM_VERSION}" >&2
  exit 1
fi

GOBIN_DIR="$("$GO" env GOBIN)"
if [ -z "$GOBIN_DIR" ]; then GOBIN_DIR="$("$GO" env GOPATH)/bin"; fi

if [ ! -x "$GOBIN_DIR/helm" ]; then
  echo "install-helm.sh: building helm ${HELM_VERSION} with $("$GO" version) (first build takes a few minutes)" >&2
  "$GO" install "helm.sh/helm/v3/cmd/helm@${HELM_VERSION}" >&2
fi
echo "$GOBIN_DIR/helm"
