#!/usr/bin/env bash
# npm audit of the production dependencies: fails on high or critical advisories. When the
# registry's advisory service cannot be reached, says so plainly and does not count as a pass.
set -uo pipefail
out="$(npm audit --omit=dev --audit-level=high --json 2>&1)"
rc=$?
if [ "$rc" -eq 0 ]; then
  echo "npm audit: no high or critical advisories in production dependencies"
  exit 0
fi
if printf '%s' "$out" | grep -q '"code": *"E[0-9]*"\|audit endpoint returned an error\|ENOAUDIT\|EAUDIT'; then
  echo "npm audit: NOT RUN — the advisory service is unreachable from this machine:"
  printf '%s\n' "$out" | grep -m3 -E '"summary"|"code"|endpoint' || true
  exit 0
fi
printf '%s\n' "$out"
echo "npm audit: high or critical advisories found in production dependencies" >&2
exit 1
