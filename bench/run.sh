#!/bin/sh
# make bench-compare: build the peers at pinned versions and cip from this
# tree into bench/.bin, then run the harness (bench/main.go), which writes
# bench/RESULTS.md. Extra arguments go to the harness, e.g.
#   bench/run.sh -workloads W200 -rounds 3 -out /tmp/r.md
set -eu
cd "$(dirname "$0")/.."
BIN="$PWD/bench/.bin"
CRANE_VERSION=v0.22.1   # github.com/google/go-containerregistry
REGSYNC_VERSION=v0.11.7 # github.com/regclient/regclient
mkdir -p "$BIN"
# go install rebuilds nothing when the pinned version is already there.
GOBIN="$BIN" go install "github.com/google/go-containerregistry/cmd/crane@$CRANE_VERSION"
GOBIN="$BIN" go install "github.com/regclient/regclient/cmd/regsync@$REGSYNC_VERSION"
go build -trimpath -o "$BIN/cip" ./cmd/cip
# CIP_BASE_REF=<commit> also builds that commit as cip-base, which every
# workload then runs beside cip (before/after in one run, one load).
rm -f "$BIN/cip-base"
if [ -n "${CIP_BASE_REF:-}" ]; then
  base=$(mktemp -d)
  git worktree add -q --detach "$base" "$CIP_BASE_REF"
  (cd "$base" && go build -trimpath -o "$BIN/cip-base" ./cmd/cip)
  git worktree remove --force "$base"
fi
# Default: the workloads with targets, 3 rounds (about 10 minutes on 2
# busy cores); Wbig (960 MiB) only on request: -workloads W200,W200x3,W2000,Wbig;
# the signed W200 (referrers, against regsync's referrers and digestTags)
# too: -workloads W200signed -out bench/RESULTS-referrers.md.
if [ "$#" -eq 0 ]; then set -- -workloads W200,W200x3,W2000 -rounds 3 -out bench/RESULTS.md; fi
exec go run ./bench -bin "$BIN" "$@"
