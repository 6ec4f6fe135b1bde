#!/bin/sh
# make bench-wan: the WAN benchmark of issue 17. Builds cip from this tree
# into bench/.bin (regsync v0.11.7 too when it is not there), then runs
# `go run ./bench -wan` against the simulator (23 hosts, 40 ms per request,
# 60 requests/s each, bearer tokens, GCR's tags/list):
#   large: the k8s-shaped tree at SCALE (default 1/16) — scenarios a, b, c
#          (fresh-inventory plan, warm no-op, one pull request), about an
#          hour with today's cip;
#   small: 8 images at 1/16 — d (cold promotion into empty mirrors) and
#          regsync side by side, about 10 minutes.
# CIP_BASE_REF=<commit> also builds that commit and runs each suite again
# with it (reports *-base.md), for before/after on the same machine.
# Reports go to bench/out/wan-{large,small}[-base].md (and .json). Usage:
#   bench/wan.sh [large|small|all] [extra bench flags, e.g. -scale 1/4 -scenarios a,b]
set -eu
cd "$(dirname "$0")/.."
BIN="$PWD/bench/.bin"
OUT=bench/out
REGSYNC_VERSION=v0.11.7 # github.com/regclient/regclient
what="${1:-all}"
[ "$#" -gt 0 ] && shift
case "$what" in
large|small|all) ;;
*) echo "usage: bench/wan.sh [large|small|all] [bench flags]" >&2; exit 2 ;;
esac
mkdir -p "$BIN" "$OUT"
go build -trimpath -o "$BIN/cip" ./cmd/cip
if [ ! -x "$BIN/regsync" ]; then
  GOBIN="$BIN" go install "github.com/regclient/regclient/cmd/regsync@$REGSYNC_VERSION"
fi
rm -rf "$BIN/base"
if [ -n "${CIP_BASE_REF:-}" ]; then
  mkdir -p "$BIN/base"
  base=$(mktemp -d)
  git worktree add -q --detach "$base" "$CIP_BASE_REF"
  (cd "$base" && go build -trimpath -o "$BIN/base/cip" ./cmd/cip)
  git worktree remove --force "$base"
  ln -sf "$BIN/regsync" "$BIN/base/regsync"
fi
# suite NAME FLAGS...: run one suite with this tree's cip, then with the base.
suite() {
  name=$1
  shift
  uptime
  go run ./bench -wan -bin "$BIN" "$@" -out "$OUT/wan-$name.md" -json "$OUT/wan-$name.json"
  if [ -x "$BIN/base/cip" ]; then
    uptime
    go run ./bench -wan -bin "$BIN/base" "$@" -out "$OUT/wan-$name-base.md" -json "$OUT/wan-$name-base.json"
  fi
  uptime
}
case "$what" in
large|all) suite large -scale "${SCALE:-1/16}" -scenarios a,a-qps50,a-jobs128,b,c,c-ttl,c-jobs32 "$@" ;;
esac
case "$what" in
small|all) suite small -scale 1/16 -images 8 -scenarios d,regsync "$@" ;;
esac
ls "$OUT"/wan-*.md
