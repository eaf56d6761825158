#!/bin/sh
# Build dist/cnikit-shim: a static executable (no libc to find on the node), written beside and
# renamed so that a runtime exec'ing it meanwhile never sees half a file.
set -eu
cd "$(dirname "$0")/.."
mkdir -p dist
tmp="dist/.cnikit-shim.tmp-$$"
trap 'rm -f "$tmp"' EXIT
${CC:-cc} -static -Os -s -std=c11 -Wall -Wextra -Werror -o "$tmp" shim/cnikit-shim.c
mv -f "$tmp" dist/cnikit-shim
