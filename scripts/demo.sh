#!/usr/bin/env bash
# `npm run demo`: install what is missing, build dist/cnikit when it is missing or older than the
# sources, then run `cnikit demo` (root is needed for network namespaces).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ ! -x dist/cnikit ] || [ -n "$(find src package.json -newer dist/cnikit -print -quit)" ]; then
  node_modules/.bin/bun run build >&2
fi
exec dist/cnikit demo "$@"
