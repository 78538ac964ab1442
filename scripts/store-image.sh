#!/usr/bin/env bash
# The store image, FROM scratch with the static binary (scripts/store-image/Dockerfile):
# localhost/ephemeral-store:<appVersion of charts/ephemeral-store/Chart.yaml, else 0.1.0>,
# user 65532:65532, entrypoint /ephemeral-store, default args "serve".
#
# The Go build runs every time (the build cache makes an unchanged tree a quick no-op); the
# image build is skipped when the image exists with a stamp of the same binary and Dockerfile.
#
# Env: STORE_IMAGE (image name), ES_STORE_MODDIR / ES_STORE_PKG (module directory and package
# to build; default the repository and ./store/cmd/ephemeral-store), ES_WORK.
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
# shellcheck source=scripts/kind-node/common.sh
source "$ROOT/scripts/kind-node/common.sh"
cd "$ROOT"

IMAGE=$(store_image)
MODDIR=${ES_STORE_MODDIR:-$ROOT}
PKG=${ES_STORE_PKG:-./store/cmd/ephemeral-store}
DOCKERFILE=$ROOT/scripts/store-image/Dockerfile
CTX=$ES_WORK/store-image

binary() {
  mkdir -p "$CTX"
  local ldflags; ldflags=$("$ROOT/scripts/ldflags.sh" "$MODDIR")
  (cd "$MODDIR" && CGO_ENABLED=0 go build -trimpath -ldflags="$ldflags" -o "$CTX/ephemeral-store.new" "$PKG")
  # static, or it cannot run FROM scratch
  if file "$CTX/ephemeral-store.new" 2>/dev/null | grep -q 'dynamically linked'; then
    die "$PKG built a dynamically linked binary"
  fi
  mv "$CTX/ephemeral-store.new" "$CTX/ephemeral-store"
  log "$(du -h "$CTX/ephemeral-store" | cut -f1) static binary $CTX/ephemeral-store"
}

image() {
  local key; key=$(key_of "$IMAGE" "$(files_key "$CTX/ephemeral-store" "$DOCKERFILE")")
  if image_ok "$IMAGE" "$key"; then log "up to date: $IMAGE"; return 0; fi
  local old; old=$(image_id "$IMAGE")
  cp "$DOCKERFILE" "$CTX/Dockerfile"
  # the legacy builder: there is no buildx here, and FROM scratch needs no pull
  DOCKER_BUILDKIT=0 docker build -q -t "$IMAGE" --label "$STAMP_LABEL=$key" \
    --label "org.opencontainers.image.version=${IMAGE##*:}" \
    --label "org.opencontainers.image.source=https://github.com/ephemeral-store/ephemeral-store" \
    "$CTX" >/dev/null 2>"$ES_WORK/logs/store-image-build.log" ||
    { cat "$ES_WORK/logs/store-image-build.log" >&2; die "docker build $IMAGE failed"; }
  drop_replaced "$old" "$IMAGE"
  log "built $IMAGE: $(docker image inspect -f 'user {{.Config.User}}, entrypoint {{json .Config.Entrypoint}}, cmd {{json .Config.Cmd}}, {{.Size}} bytes' "$IMAGE")"
}

docker info >/dev/null 2>&1 || die "no Docker engine: run scripts/ensure-docker.sh first"
stage "store binary ($PKG)" binary
stage "store image $IMAGE" image
