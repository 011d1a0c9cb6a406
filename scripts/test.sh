#!/usr/bin/env bash
# The whole test suite, from a fresh clone: install what is needed, then unit and integration
# tests (integration/sev/ skips itself, visibly, without /dev/sev; KVM-only cases skip, saying
# so, without a usable /dev/kvm). Never installs Docker or starts an engine: integration/docker/
# runs when one answers (`bash scripts/docker-engine.sh start`) and says plainly when it skips.
# `.ci/run` calls this verbatim.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
npx tsc -p tsconfig.json --noEmit
# Module boundaries (DESIGN.md's "must not" column, no cycles): .dependency-cruiser.cjs.
npm run --silent deps
# One formatter and linter for the whole tree (biome.json): formatting and lint findings fail the run.
npx biome check .
npx vitest run
