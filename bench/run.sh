#!/usr/bin/env bash
# `npm run bench [NAME...]`: run benchmarks (default: all) in a private network namespace, one at a time.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
[ -x dist/cnikit ] && [ -x dist/cnikit-shim ] && [ -z "$(find src shim package.json -newer dist/cnikit -print -quit)" ] || node_modules/.bin/bun run build >&2
names=("$@")
[ ${#names[@]} -gt 0 ] || names=($(ls bench/*.bench.ts | xargs -n1 basename | sed 's/\.bench\.ts$//'))
# every benchmark runs even when an earlier one misses its target; the exit status says whether any did
status=0
for n in "${names[@]}"; do
  unshare -n sh -c 'export CNIKIT_BENCH_NETNS=$(stat -L -c %i /proc/self/ns/net); ip link set lo up; exec "$@"' sh \
    node_modules/.bin/bun "bench/$n.bench.ts" || status=1
done
exit $status
