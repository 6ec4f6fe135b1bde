#!/usr/bin/env bash
# release.sh makes a release of cip in one step (make release VERSION=v0.2.0):
#
#   1. checks VERSION (vMAJOR.MINOR.PATCH, krew's form), a clean work tree
#      (the archives must be built from what gets tagged) and that the tag
#      is new;
#   2. builds the archives, their SHA256SUMS and plugins.yaml
#      (scripts/dist.sh, reproducible; plugins.yaml from
#      packaging/plugins.yaml.in);
#   3. commits plugins.yaml ("release VERSION") when it changed; the binaries
#      do not embed it, so this commit builds the same archives;
#   4. tags that commit VERSION (annotated), unless TAG=no.
#
# Then upload dist/cip_*.tar.gz and dist/SHA256SUMS as the release's assets
# on GitHub and push the commit and the tag; plugins.yaml's URIs name them.
#
# Environment: VERSION (required), TAG (yes; no skips the tag, for tests and
# dry runs), and dist.sh's PLATFORMS, DIST_DIR, SOURCE_DATE_EPOCH.
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION=${VERSION:-}
TAG=${TAG:-yes}
if ! [[ $VERSION =~ ^v[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$ ]]; then
  echo "release.sh: give VERSION=vMAJOR.MINOR.PATCH (got '${VERSION}')" >&2
  exit 2
fi
if [[ $TAG != yes && $TAG != no ]]; then
  echo "release.sh: TAG=$TAG: want yes or no" >&2
  exit 2
fi
if [[ -n $(git status --porcelain --untracked-files=no) ]]; then
  echo "release.sh: the work tree has uncommitted changes; a release is built from a commit" >&2
  git status --short --untracked-files=no >&2
  exit 1
fi
if git rev-parse -q --verify "refs/tags/$VERSION" >/dev/null; then
  echo "release.sh: tag $VERSION exists already" >&2
  exit 1
fi

VERSION=$VERSION PLUGINS_YAML=plugins.yaml scripts/dist.sh
if ! git diff --quiet -- plugins.yaml; then
  git add plugins.yaml
  git commit -q -m "release $VERSION: plugins.yaml for its archives" -- plugins.yaml
  echo "committed plugins.yaml for $VERSION" >&2
fi
if [[ $TAG == yes ]]; then
  git tag -a "$VERSION" -m "cip $VERSION"
  echo "tagged $(git rev-parse --short HEAD) as $VERSION" >&2
else
  echo "TAG=no: not tagged; tag $(git rev-parse --short HEAD) as $VERSION to release it" >&2
fi
echo "upload ${DIST_DIR:-dist}/cip_*.tar.gz and ${DIST_DIR:-dist}/SHA256SUMS to the GitHub release $VERSION, then push the commit and the tag" >&2
