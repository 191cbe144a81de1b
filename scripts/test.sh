#!/usr/bin/env bash
# `npm test`: installs what the tests need, then runs them all (README "Quick start").
# On a fresh Debian machine with Node and npm: as root it installs the missing Debian packages
# (apt) and helm (scripts/install-helm.sh); as another user it prints the exact command to run
# and stops. Idempotent: what is already present is not reinstalled. .ci/run calls it as it is.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '== %s\n' "$*"; }

# --- Node >= 22.2 (zlib.crc32; tests run on 24): from the npm registry, no root needed -----------
# Major * 100 + minor, so 22.2 is 2202.
node_version() { node -p 'const [a, b] = process.versions.node.split("."); a * 100 + +b' 2>/dev/null || echo 0; }
if [ "$(node_version)" -lt 2202 ]; then
  NODE_DIR="${RCPTGATE_NODE_DIR:-$HOME/.cache/rcptgate-node24}"
  if [ ! -x "$NODE_DIR/node_modules/.bin/node" ]; then
    log "installing Node 24 from the npm registry into $NODE_DIR"
    mkdir -p "$NODE_DIR"
    npm install --prefix "$NODE_DIR" --no-audit --no-fund node@24 >/dev/null
  fi
  export PATH="$NODE_DIR/node_modules/.bin:$PATH"
fi
log "node $(node --version), npm $(npm --version)"

# --- Debian packages the integration tests drive -----------------------------------------------
need=()
command -v slapd >/dev/null || [ -x /usr/sbin/slapd ] || need+=(slapd)
command -v ldapmodify >/dev/null || need+=(ldap-utils)
[ -x /usr/sbin/postfix ] || need+=(postfix)
ls /usr/lib/postfix/*ldap* >/dev/null 2>&1 || need+=(postfix-ldap)
command -v swaks >/dev/null || need+=(swaks)
command -v samba-tool >/dev/null || need+=(samba)
dpkg -s samba-ad-dc >/dev/null 2>&1 || need+=(samba-ad-dc samba-ad-provision samba-dsdb-modules winbind)
command -v promtool >/dev/null || need+=(prometheus)
command -v miltertest >/dev/null || need+=(miltertest)
command -v openssl >/dev/null || need+=(openssl)
command -v chromium >/dev/null || need+=(chromium)
command -v cc >/dev/null || need+=(gcc libc6-dev)
command -v chattr >/dev/null || need+=(e2fsprogs)

if [ "${#need[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "missing Debian packages; install them as root, then run this again:" >&2
    echo "  sudo apt-get update && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${need[*]}" >&2
    exit 1
  fi
  log "installing Debian packages: ${need[*]}"
  created_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    # Keep apt from starting the distribution's daemons: the tests run private instances.
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && created_policy=1
  fi
  echo 'slapd slapd/no_configuration boolean true' | debconf-set-selections
  echo 'postfix postfix/main_mailer_type select No configuration' | debconf-set-selections
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  if [ "$created_policy" = 1 ]; then rm -f /usr/sbin/policy-rc.d; fi
fi

# --- helm (built from its Go module; cached by Go between runs) --------------------------------
bash scripts/install-helm.sh >/dev/null

# --- the project ---------------------------------------------------------------------------------
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  log "npm ci"
  npm ci --no-audit --no-fund
fi
log "npm run test:run"
npm run test:run
