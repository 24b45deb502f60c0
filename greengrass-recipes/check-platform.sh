#!/bin/sh
# Install step of the com.edgeloop.Agent component (the recipe runs: sh '<this file>').
# Refuses a core device this build cannot run on, with the reason, before the component
# starts: the CPU, the C library and its version, then the bundled Node.js itself loading the
# agent's native modules (edgeloop-agent check).
# Written into the zip by greengrass-recipes/build-package.ts, which fills in the @...@ values.
set -u
here=$(CDPATH='' cd -- "$(dirname -- "$0")" && pwd) || exit 1
want_arch='@ARCH@'
want_glibc='@GLIBC@'
want_glibcxx='@GLIBCXX@'
node_version='@NODE@'

fail() {
  echo "check-platform: $*" >&2
  exit 1
}

# True when version $1 is older than $2 (major.minor, as glibc numbers its releases).
older() {
  a_major=${1%%.*} a_rest=${1#*.}
  b_major=${2%%.*} b_rest=${2#*.}
  a_minor=${a_rest%%.*} b_minor=${b_rest%%.*}
  [ "$a_major" -lt "$b_major" ] || { [ "$a_major" -eq "$b_major" ] && [ "$a_minor" -lt "$b_minor" ]; }
}

machine=$(uname -m)
[ "$machine" = "$want_arch" ] || fail "this is the $want_arch build of com.edgeloop.Agent and this device is $machine: deploy the component version whose recipe has a manifest for $machine"

glibc=$(getconf GNU_LIBC_VERSION 2>/dev/null | sed -n 's/^glibc //p')
[ -n "$glibc" ] || glibc=$(ldd --version 2>/dev/null | sed -n '1s/.* \([0-9][0-9]*\.[0-9][0-9]*\)$/\1/p')
[ -n "$glibc" ] || fail "no glibc found on this device (a musl system such as Alpine?): the bundled Node.js $node_version needs glibc $want_glibc or newer"
if older "$glibc" "$want_glibc"; then
  fail "glibc $glibc is older than $want_glibc, which the bundled Node.js $node_version and the native modules need"
fi

node="$here/node/bin/node"
[ -x "$node" ] || fail "$node is not executable: the recipe's artifact needs Permission Execute: OWNER"
out=$("$node" "$here/main.js" check 2>&1)
rc=$?
if [ "$rc" -ne 0 ]; then
  case "$out" in
    *AGENT_RUNTIME_MISMATCH*) fail "$out" ;;
    *) fail "the bundled Node.js $node_version does not start (exit $rc; it needs glibc $want_glibc and libstdc++ with GLIBCXX_$want_glibcxx): $out" ;;
  esac
fi
echo "$out"
echo "check-platform: ok: $machine, glibc $glibc (needs $want_glibc), Node.js $node_version"
