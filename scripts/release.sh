#!/usr/bin/env bash
# make release: the release artifacts of this checkout under dist/ (gitignored), built offline
# (no Docker, no registry), then checked:
#
#   ephemeral-store-<V>-<os>-<arch>     the static binary, server and CLI in one, for linux and
#                                       darwin, amd64 and arm64 (CGO_ENABLED=0, -trimpath, the
#                                       ldflags of scripts/ldflags.sh: version <V> and the commit)
#   ephemeral-store-image-<V>.oci.tar   the store image for linux/amd64 and linux/arm64, an OCI
#                                       image layout archive named localhost/ephemeral-store:<V>,
#                                       the image scripts/store-image/Dockerfile makes (written by
#                                       scripts/release, go-containerregistry)
#   ephemeral-store-<C>.tgz, index.yaml the chart (helm package) and a chart repository index
#   SHA256SUMS                          sha256sum of all of the above
#
# <V> is the chart's appVersion (the binaries' version, the image tag, the chart's default tag),
# <C> the chart's version. The checks: SHA256SUMS verifies and lists every file; each binary is
# an executable of its platform, and the host's says `version` <V> and the commit; the archive
# holds exactly linux/amd64 and linux/arm64, every blob matches its digest, each image is the
# Dockerfile's and its /ephemeral-store is byte for byte the linux binary of its platform; the
# packaged chart has <C> and appVersion <V>, passes helm lint --strict, renders (default and
# values-prod.yaml) with the image <V>, and index.yaml lists it with its digest.
#
# usage: scripts/release.sh [check]     (check: only check what dist/ holds)
# Env: DIST (default: dist), RELEASE_CHART_URL (the URL index.yaml gives for the chart; default
# relative, beside index.yaml).
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

DIST=${DIST:-$ROOT/dist}
CHART=charts/ephemeral-store
VERSION=$(chart_app_version "$ROOT")
CHART_VERSION=$(sed -n 's/^version:[[:space:]]*["'\'']\{0,1\}\([^"'\'' #]*\).*/\1/p' "$CHART/Chart.yaml" | head -1)
IMAGE=localhost/ephemeral-store:$VERSION
ARCHIVE=ephemeral-store-image-$VERSION.oci.tar
PLATFORMS=(linux/amd64 linux/arm64 darwin/amd64 darwin/arm64)
IMAGE_PLATFORMS=(linux/amd64 linux/arm64)
TOOL=$BIN/es-release

bin_name() { echo "ephemeral-store-$VERSION-${1%/*}-${1#*/}"; }

versions() {
  [[ -n $CHART_VERSION ]] || die "no version: in $CHART/Chart.yaml"
  LDFLAGS=$("$ROOT/scripts/ldflags.sh")
  COMMIT=${LDFLAGS##*.commit=}
  # the images' creation time: the commit's, so that a rebuild of a commit gives the same archive
  CREATED=$(git log -1 --format=%cI HEAD 2>/dev/null || date -u +%Y-%m-%dT%H:%M:%SZ)
  log "version $VERSION (binaries, image tag, chart appVersion), chart $CHART_VERSION, commit $COMMIT, created $CREATED"
  [[ $COMMIT != *-dirty ]] || log "WARNING: the tree has uncommitted changes: the artifacts say commit $COMMIT"
}

binaries() {
  local p
  for p in "${PLATFORMS[@]}"; do
    CGO_ENABLED=0 GOOS=${p%/*} GOARCH=${p#*/} go build -trimpath -ldflags="$LDFLAGS" \
      -o "$DIST/$(bin_name "$p")" ./store/cmd/ephemeral-store
    log "$(du -h "$DIST/$(bin_name "$p")" | cut -f1) $(bin_name "$p")"
  done
}

tool() { go build -C "$ROOT/scripts/release" -o "$TOOL" .; }

image() {
  local args=() p
  for p in "${IMAGE_PLATFORMS[@]}"; do args+=(-binary "$p=$DIST/$(bin_name "$p")"); done
  "$TOOL" image -out "$DIST/$ARCHIVE" -name "$IMAGE" -version "$VERSION" -created "$CREATED" "${args[@]}"
  log "$(du -h "$DIST/$ARCHIVE" | cut -f1) $ARCHIVE ($IMAGE: ${IMAGE_PLATFORMS[*]})"
}

chart() {
  helm package "$CHART" --destination "$DIST" >/dev/null
  local url=()
  [[ -z ${RELEASE_CHART_URL:-} ]] || url=(--url "$RELEASE_CHART_URL")
  helm repo index "$DIST" "${url[@]}"
  log "ephemeral-store-$CHART_VERSION.tgz, index.yaml"
}

checksums() {
  (cd "$DIST" && sha256sum -- ephemeral-store-* index.yaml > SHA256SUMS)
  log "SHA256SUMS: $(wc -l < "$DIST/SHA256SUMS") files"
}

# --- checks ----------------------------------------------------------------------------------

check_sums() {
  (cd "$DIST" && sha256sum --check --quiet SHA256SUMS) || die "SHA256SUMS does not verify"
  local f
  for f in "$DIST"/*; do
    f=${f##*/}
    [[ $f == SHA256SUMS ]] || awk -v f="$f" '$2 == f || $2 == "*" f { ok = 1 } END { exit !ok }' "$DIST/SHA256SUMS" ||
      die "dist/$f is not in SHA256SUMS"
  done
  log "SHA256SUMS verifies, $(wc -l < "$DIST/SHA256SUMS") files"
}

check_binaries() {
  local p host out
  for p in "${PLATFORMS[@]}"; do
    [[ -f $DIST/$(bin_name "$p") ]] || die "dist/$(bin_name "$p") is missing"
    "$TOOL" check-binary -platform "$p" "$DIST/$(bin_name "$p")" >&2
  done
  host=$(go env GOOS)/$(go env GOARCH)
  [[ " ${PLATFORMS[*]} " == *" $host "* ]] || { log "no binary for this host ($host) to run"; return 0; }
  out=$("$DIST/$(bin_name "$host")" version)
  grep -qF "$VERSION" <<<"$out" || die "$(bin_name "$host") version says '$out', not $VERSION"
  [[ -z ${COMMIT:-} ]] || grep -qF "$COMMIT" <<<"$out" || die "$(bin_name "$host") version says '$out', not commit $COMMIT"
  log "$(bin_name "$host") version: $(tr '\n' ' ' <<<"$out")"
}

check_image() {
  local args=() p
  for p in "${IMAGE_PLATFORMS[@]}"; do args+=(-platform "$p" -binary "$p=$DIST/$(bin_name "$p")"); done
  "$TOOL" check-image -archive "$DIST/$ARCHIVE" -name "$IMAGE" -version "$VERSION" "${args[@]}" >&2
}

check_chart() {
  local tgz=$DIST/ephemeral-store-$CHART_VERSION.tgz meta out prod lint
  [[ -f $tgz ]] || die "dist/${tgz##*/} is missing"
  meta=$(helm show chart "$tgz")
  grep -qx "version: $CHART_VERSION" <<<"$meta" || die "${tgz##*/} is not chart version $CHART_VERSION"
  grep -Eqx "appVersion: \"?$VERSION\"?" <<<"$meta" || die "${tgz##*/} does not have appVersion $VERSION"
  lint=$(helm lint --strict "$tgz" 2>&1) || { printf '%s\n' "$lint" >&2; die "helm lint --strict ${tgz##*/} fails"; }
  out=$(helm template release-check "$tgz") || die "helm template ${tgz##*/} fails"
  grep -Eq "image: \"?$IMAGE\"?\$" <<<"$out" || die "${tgz##*/} does not render the image $IMAGE"
  # the production values, from inside the package, with a registry as an operator sets it
  prod=$(mktemp "${TMPDIR:-/tmp}/values-prod.XXXXXX.yaml")
  tar -xzOf "$tgz" ephemeral-store/values-prod.yaml > "$prod"
  out=$(helm template release-check "$tgz" -f "$prod" --set image.registry=registry.example.com/team) ||
    { rm -f "$prod"; die "helm template ${tgz##*/} -f values-prod.yaml fails"; }
  rm -f "$prod"
  grep -Eq "image: \"?registry.example.com/team/ephemeral-store:$VERSION\"?\$" <<<"$out" ||
    die "${tgz##*/} with values-prod.yaml does not render image.registry"
  grep -q "digest: $(sha256sum "$tgz" | cut -d' ' -f1)" "$DIST/index.yaml" ||
    die "index.yaml does not list ${tgz##*/} with its digest"
  log "${tgz##*/}: version $CHART_VERSION, appVersion $VERSION, lints, renders, is in index.yaml"
}

check() {
  [[ -d $DIST ]] || die "no $DIST: run make release"
  [[ -x $TOOL ]] || stage "release tool" tool
  stage "check SHA256SUMS" check_sums
  stage "check the binaries" check_binaries
  stage "check the image archive" check_image
  stage "check the chart" check_chart
  log "release $VERSION (chart $CHART_VERSION) in ${DIST#"$ROOT"/}: every check passes"
}

"$ROOT/scripts/install-tools.sh" helm   # the pinned helm in bin/, skipped when present
case ${1:-} in
  check) versions; check; exit 0 ;;
  "") ;;
  *) die "usage: scripts/release.sh [check]" ;;
esac

stage "versions" versions
rm -rf "$DIST"; mkdir -p "$DIST"
stage "binaries (${PLATFORMS[*]})" binaries
stage "release tool (scripts/release)" tool
stage "image archive (${IMAGE_PLATFORMS[*]})" image
stage "chart package and index" chart
stage "SHA256SUMS" checksums
check
