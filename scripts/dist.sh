#!/usr/bin/env bash
# dist.sh builds the release archives of the kubectl plugin, reproducibly,
# and writes their sha256 into the krew manifest plugins.yaml.
#
# Each archive cip_<os>_<arch>.tar.gz holds kubectl-cip and LICENSE. The same
# source and Go version give the same bytes on any machine and in any
# directory: -trimpath, no VCS stamping, an empty build ID, CGO off, pinned
# GOAMD64/GOARM64; tar entries sorted, owned by 0:0, with fixed modes and
# mtimes; gzip without name or time stamp.
#
# Environment:
#   VERSION            release version (default: spec.version of ./plugins.yaml)
#   PLATFORMS          os/arch list (default: linux/amd64 linux/arm64 darwin/amd64 darwin/arm64)
#   DIST_DIR           where the archives go (default: dist)
#   PLUGINS_YAML       the manifest to write (default: plugins.yaml)
#   SOURCE_DATE_EPOCH  mtime of the archive entries (default: 0)
#
# Needs GNU tar (gtar on macOS) and gzip.
#
#   scripts/dist.sh                                  # make dist
#   VERSION=v0.2.0 scripts/dist.sh                   # a new release
#   PLATFORMS=linux/amd64 DIST_DIR=/tmp/d PLUGINS_YAML=/tmp/d/plugins.yaml scripts/dist.sh
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION=${VERSION:-$(sed -n 's/^  version: *//p' plugins.yaml 2>/dev/null | head -1)}
PLATFORMS=${PLATFORMS:-linux/amd64 linux/arm64 darwin/amd64 darwin/arm64}
DIST_DIR=${DIST_DIR:-dist}
PLUGINS_YAML=${PLUGINS_YAML:-plugins.yaml}
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-0}
GO=${GO:-go}
REPO=https://github.com/cipdev/cip

if ! [[ $VERSION =~ ^v[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$ ]]; then
  echo "dist.sh: VERSION ${VERSION:-(empty)} is not vMAJOR.MINOR.PATCH (krew wants a semantic version with a v)" >&2
  exit 2
fi
TAR=tar
if command -v gtar >/dev/null 2>&1; then TAR=gtar; fi
if ! "$TAR" --version 2>/dev/null | grep -q 'GNU tar'; then
  echo "dist.sh: needs GNU tar (for --sort=name and --mtime); on macOS: brew install gnu-tar" >&2
  exit 1
fi

mkdir -p "$DIST_DIR"
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT

platforms_yaml=""
for p in $PLATFORMS; do
  os=${p%/*}
  arch=${p#*/}
  archive="cip_${os}_${arch}.tar.gz"
  rm -rf "${stage:?}/$p"
  mkdir -p "$stage/$p"
  # -buildid= and -s -w: no build ID or symbol tables that could differ;
  # panics still print file:line (the pclntab stays).
  CGO_ENABLED=0 GOOS=$os GOARCH=$arch GOAMD64=v1 GOARM64=v8.0 GOFLAGS=-mod=readonly \
    "$GO" build -trimpath -buildvcs=false \
    -ldflags "-s -w -buildid= -X github.com/cipdev/cip/cmd/app.releaseVersion=$VERSION" \
    -o "$stage/$p/kubectl-cip" ./cmd/kubectl-cip
  cp LICENSE "$stage/$p/LICENSE"
  chmod 0755 "$stage/$p/kubectl-cip"
  chmod 0644 "$stage/$p/LICENSE"
  "$TAR" --create --format=ustar --sort=name --mtime="@$SOURCE_DATE_EPOCH" \
    --owner=0 --group=0 --numeric-owner -C "$stage/$p" kubectl-cip LICENSE |
    gzip -n > "$DIST_DIR/$archive.tmp"
  mv "$DIST_DIR/$archive.tmp" "$DIST_DIR/$archive"
  sum=$(sha256sum "$DIST_DIR/$archive" | cut -d' ' -f1)
  echo "$sum  $DIST_DIR/$archive" >&2
  platforms_yaml+="  - selector:
      matchLabels:
        os: $os
        arch: $arch
    uri: $REPO/releases/download/$VERSION/$archive
    sha256: \"$sum\"
    files:
    - from: kubectl-cip
      to: .
    - from: LICENSE
      to: .
    bin: kubectl-cip
"
done

cat > "$PLUGINS_YAML.tmp" <<EOF
# The krew plugin manifest of cip, written by scripts/dist.sh (make dist):
# edit the script, not this file. The sha256 values are those of the archives
# scripts/dist.sh builds, reproducibly, from the release commit.
apiVersion: krew.googlecontainertools.github.com/v1alpha2
kind: Plugin
metadata:
  name: cip
spec:
  version: $VERSION
  homepage: $REPO
  shortDescription: Promote container images between registries
  description: |
    cip promotes container images from a staging registry into production
    registries, as promoter manifests (the Kubernetes Container Image
    Promoter's format) say: digest-preserving, dry run by default. What the
    registries hold is crawled incrementally into a local SQLite inventory,
    so plans, snapshots and questions are queries over it.

      kubectl cip validate --thin-manifest-dir ./registry.k8s.io
      kubectl cip sync gcr.io/k8s-staging-foo
      kubectl cip snapshot gcr.io/k8s-staging-foo --output csv
  platforms:
${platforms_yaml%$'\n'}
EOF
mv "$PLUGINS_YAML.tmp" "$PLUGINS_YAML"
echo "wrote $PLUGINS_YAML ($VERSION)" >&2
