#!/usr/bin/env bash
# Type-check .railway/railway.ts against the `railway` SDK's own types and print the project it
# evaluates to (what `railway config plan` compares with the linked environment).
#
#   scripts/check-railway-ts.sh        # needs node and npm; installs .railway/node_modules once
#
# The versions come from .railway/package-lock.json (`npm ci`). Afterwards the test
# tests/test_deploy_files.py runs the same check instead of skipping it.
set -euo pipefail
cd "$(dirname "$0")/../.railway"

if [ ! -x node_modules/.bin/tsc ] || [ package-lock.json -nt node_modules ]; then
    npm ci --no-audit --no-fund
fi
npx --no-install tsc --noEmit -p .
echo "tsc: railway.ts type-checks against railway@$(node -p 'require("./node_modules/railway/package.json").version')" >&2

evaluate="$(mktemp --suffix .mjs)"
trap 'rm -f "$evaluate"' EXIT
cat >"$evaluate" <<'JS'
import { pathToFileURL } from "node:url";
const mod = await import(pathToFileURL(process.argv[2]).href);
process.stdout.write(JSON.stringify(await mod.default({}), null, 2) + "\n");
JS
node --import tsx "$evaluate" railway.ts
