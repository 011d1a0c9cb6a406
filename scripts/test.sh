#!/usr/bin/env bash
# The whole test suite, from a fresh clone: install what is needed, then unit and integration
# tests (integration/sev/ skips itself, visibly, without /dev/sev; KVM-only cases skip, saying
# so, without a usable /dev/kvm). Never installs Docker or starts an engine: integration/docker/
# runs when one answers (`bash scripts/docker-engine.sh start`) and says plainly when it skips.
# `.ci/run` calls this verbatim.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# The static checks, side by side (they are independent; each one's output is printed whole, in
# this order, and any failure fails the run before a test starts):
#  - types (incremental: a second run re-checks only what changed),
#  - module boundaries (DESIGN.md's "must not" column, no cycles): .dependency-cruiser.cjs,
#  - one formatter and linter for the whole tree (biome.json): formatting and lint findings.
checks=$(mktemp -d)
trap 'rm -rf "$checks"' EXIT
npx tsc -p tsconfig.json --noEmit >"$checks/tsc" 2>&1 & tsc=$!
npm run --silent deps >"$checks/deps" 2>&1 & deps=$!
npx biome check . >"$checks/biome" 2>&1 & biome=$!
failed=0
for check in tsc deps biome; do
  wait "${!check}" || { failed=1; echo "test: the $check check failed:" >&2; }
  cat "$checks/$check"
done
((failed == 0)) || exit 1
npx vitest run
