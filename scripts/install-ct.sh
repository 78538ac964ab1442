#!/usr/bin/env bash
# Installs chart-testing (ct) $CT_VERSION into bin/ and yamllint (which ct runs)
# from Debian. Idempotent: a stamp file skips work already done.
#
# ct comes from the Go module proxy, but `go install .../ct@version` fails
# there: it asks the proxy for the module's version list (to print deprecation
# notices) and gets 403. A throwaway wrapper module that requires exactly
# $CT_VERSION resolves without that list, so ct is built from it.
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

install_ct() {
  local stamp="$BIN/.ct-$CT_VERSION"
  if [[ -x "$BIN/ct" && -f "$stamp" ]]; then
    return 0
  fi
  local work
  work=$(mktemp -d)
  trap 'rm -rf "$work"' RETURN
  cat >"$work/go.mod" <<MOD
module ct-wrapper

go 1.26

require github.com/helm/chart-testing/v3 $CT_VERSION
MOD
  cat >"$work/tools.go" <<'GO'
//go:build tools

package tools

import _ "github.com/helm/chart-testing/v3/ct"
GO
  log "building ct $CT_VERSION from the module proxy"
  (
    cd "$work" || exit
    GOFLAGS=-mod=mod go mod tidy
    GOBIN="$BIN" go install -trimpath \
      -ldflags "-X github.com/helm/chart-testing/v3/ct/cmd.Version=$CT_VERSION" \
      github.com/helm/chart-testing/v3/ct
  )
  rm -f "$BIN"/.ct-*
  touch "$stamp"
}

install_yamllint() {
  if command -v yamllint >/dev/null 2>&1; then
    return 0
  fi
  log "installing yamllint from Debian"
  local sudo=()
  if [[ $(id -u) -ne 0 ]]; then sudo=(sudo); fi
  if ! "${sudo[@]}" apt-get install -y --no-install-recommends yamllint >/dev/null; then
    "${sudo[@]}" apt-get update >/dev/null
    "${sudo[@]}" apt-get install -y --no-install-recommends yamllint >/dev/null
  fi
}

install_ct
install_yamllint
log "ct $CT_VERSION and $(yamllint --version) ready"
