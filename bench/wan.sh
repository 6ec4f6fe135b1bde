#!/bin/sh
# make bench-wan: the WAN benchmark of issue 17. Builds cip from this tree
# into bench/.bin (regsync v0.11.7 too when it is not there), then runs
# `go run ./bench -wan` twice against the simulator (23 hosts, 40 ms per
# request, 60 requests/s each, bearer tokens):
#   large: the k8s-shaped tree at SCALE (default 1/16) — scenarios a, b, c
#          (fresh-inventory plan, warm no-op, one pull request), about an
#          hour with today's cip;
#   small: 8 images at 1/16 — d (cold promotion into empty mirrors) and
#          regsync side by side, about 15 minutes.
# Reports go to bench/out/wan-{large,small}.md (and .json). Usage:
#   bench/wan.sh [large|small|all] [extra bench flags, e.g. -scale 1/4 -scenarios a,b]
set -eu
cd "$(dirname "$0")/.."
BIN="$PWD/bench/.bin"
OUT=bench/out
REGSYNC_VERSION=v0.11.7 # github.com/regclient/regclient
mkdir -p "$BIN" "$OUT"
go build -trimpath -o "$BIN/cip" ./cmd/cip
if [ ! -x "$BIN/regsync" ]; then
  GOBIN="$BIN" go install "github.com/regclient/regclient/cmd/regsync@$REGSYNC_VERSION"
fi
what="${1:-all}"
[ "$#" -gt 0 ] && shift
uptime
case "$what" in
large|all)
  go run ./bench -wan -bin "$BIN" -scale "${SCALE:-1/16}" -scenarios a,a-qps50,b,c,c-jobs32 \
    -out "$OUT/wan-large.md" -json "$OUT/wan-large.json" "$@"
  uptime ;;
esac
case "$what" in
small|all)
  go run ./bench -wan -bin "$BIN" -scale 1/16 -images 8 -scenarios d,regsync \
    -out "$OUT/wan-small.md" -json "$OUT/wan-small.json" "$@"
  uptime ;;
large) ;;
*) echo "usage: bench/wan.sh [large|small|all] [bench flags]" >&2; exit 2 ;;
esac
echo "reports: $OUT/wan-large.md $OUT/wan-small.md"
