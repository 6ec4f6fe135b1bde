#!/usr/bin/env bash
# dist.sh builds the release archives of the kubectl plugin, reproducibly,
# writes their sha256 into SHA256SUMS beside them, and writes the krew
# manifest plugins.yaml from its template, packaging/plugins.yaml.in.
#
# Each archive cip_<os>_<arch>.tar.gz holds kubectl-cip, kubectl_complete-cip
# (kubectl's plugin completion) and LICENSE. The same source and Go version
# give the same bytes on any machine and in any directory: -trimpath, no VCS
# stamping, an empty build ID, CGO off, pinned GOAMD64/GOARM64; tar entries
# sorted, owned by 0:0, with fixed modes and mtimes; gzip without name or
# time stamp.
#
# Environment:
#   VERSION            release version (default: spec.version of ./plugins.yaml)
#   PLATFORMS          os/arch list (default: linux/amd64 linux/arm64 darwin/amd64 darwin/arm64)
#   DIST_DIR           where the archives and SHA256SUMS go (default: dist)
#   PLUGINS_YAML       the manifest to write (default: plugins.yaml)
#   SOURCE_DATE_EPOCH  mtime of the archive entries (default: 0)
#
# Needs GNU tar (gtar on macOS), gzip and sha256sum (or shasum).
#
#   scripts/dist.sh                                  # make dist
#   VERSION=v0.2.0 scripts/dist.sh                   # a new release's files (make release also tags it)
#   PLATFORMS=linux/amd64 DIST_DIR=/tmp/d PLUGINS_YAML=/tmp/d/plugins.yaml scripts/dist.sh
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION=${VERSION:-$(sed -n 's/^  version: *//p' plugins.yaml 2>/dev/null | head -1)}
PLATFORMS=${PLATFORMS:-linux/amd64 linux/arm64 darwin/amd64 darwin/arm64}
DIST_DIR=${DIST_DIR:-dist}
PLUGINS_YAML=${PLUGINS_YAML:-plugins.yaml}
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-0}
GO=${GO:-go}
TEMPLATE=packaging/plugins.yaml.in

if ! [[ $VERSION =~ ^v[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$ ]]; then
  echo "dist.sh: VERSION ${VERSION:-(empty)} is not vMAJOR.MINOR.PATCH (krew wants a semantic version with a v)" >&2
  exit 2
fi
if command -v sha256sum >/dev/null 2>&1; then SHA256="sha256sum"; else SHA256="shasum -a 256"; fi
TAR=tar
if command -v gtar >/dev/null 2>&1; then TAR=gtar; fi
if ! "$TAR" --version 2>/dev/null | grep -q 'GNU tar'; then
  echo "dist.sh: needs GNU tar (for --sort=name and --mtime); on macOS: brew install gnu-tar" >&2
  exit 1
fi

mkdir -p "$DIST_DIR"
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT

entries=""
sums=""
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
  cp packaging/kubectl_complete-cip "$stage/$p/kubectl_complete-cip"
  chmod 0755 "$stage/$p/kubectl-cip" "$stage/$p/kubectl_complete-cip"
  chmod 0644 "$stage/$p/LICENSE"
  "$TAR" --create --format=ustar --sort=name --mtime="@$SOURCE_DATE_EPOCH" \
    --owner=0 --group=0 --numeric-owner -C "$stage/$p" kubectl-cip kubectl_complete-cip LICENSE |
    gzip -n > "$DIST_DIR/$archive.tmp"
  mv "$DIST_DIR/$archive.tmp" "$DIST_DIR/$archive"
  sum=$($SHA256 "$DIST_DIR/$archive" | cut -d' ' -f1)
  echo "$sum  $DIST_DIR/$archive" >&2
  entries+="$os $arch $sum;"
  sums+="$sum  $archive"$'\n'
done
printf '%s' "$sums" > "$DIST_DIR/SHA256SUMS"

# The template with @VERSION@ filled in, and the block between #@platform
# and #@end once per platform (@OS@, @ARCH@, @SHA256@).
awk -v version="$VERSION" -v entries="$entries" '
  BEGIN { n = split(entries, e, ";") }
  /^#@platform/ { inblock = 1; block = ""; next }
  /^#@end/ {
    inblock = 0
    for (i = 1; i <= n; i++) {
      if (e[i] == "") continue
      split(e[i], f, " ")
      b = block
      gsub(/@OS@/, f[1], b); gsub(/@ARCH@/, f[2], b); gsub(/@SHA256@/, f[3], b)
      printf "%s", b
    }
    next
  }
  { gsub(/@VERSION@/, version) }
  inblock { block = block $0 "\n"; next }
  { print }
' "$TEMPLATE" > "$PLUGINS_YAML.tmp"
mv "$PLUGINS_YAML.tmp" "$PLUGINS_YAML"
echo "wrote $PLUGINS_YAML and $DIST_DIR/SHA256SUMS ($VERSION)" >&2
