#!/usr/bin/env bash
# The linters of `make verify`, pinned, from the Go module proxy only (no download site):
#   golangci-lint  github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$GOLANGCI_LINT_VERSION -> bin/
#   govulncheck    golang.org/x/vuln/cmd/govulncheck@$GOVULNCHECK_VERSION -> bin/
#   the vulnerability database govulncheck reads with -db file://...: vuln.go.dev is out of reach,
#     so it is built from the OSV files of golang.org/x/vulndb@$VULNDB_VERSION with that module's
#     own cmd/indexdb, into $ES_WORK/vulndb/$VULNDB_VERSION (the path is printed on stdout).
# Each step is skipped when its output already has the pinned version.
#
# usage: scripts/install-linters.sh          (installs what is missing, prints the database path)
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
# shellcheck source=scripts/kind-node/common.sh
source "$ROOT/scripts/kind-node/common.sh"
cd "$ROOT"

# goinstall PKG VERSION DIR: `go install PKG@VERSION` into DIR, static and trimmed (the proxy
# serves these modules' @v/VERSION.info, so no wrapper module is needed).
goinstall() {
  GOBIN=$3 CGO_ENABLED=0 go install -trimpath -ldflags='-s -w' "$1@$2"
}

install_golangci_lint() {
  local v
  v=$("$BIN/golangci-lint" version 2>/dev/null | awk '{ print $4 }' || true)
  if [[ $v == "${GOLANGCI_LINT_VERSION#v}" ]]; then log "golangci-lint $v present"; return 0; fi
  goinstall github.com/golangci/golangci-lint/v2/cmd/golangci-lint "$GOLANGCI_LINT_VERSION" "$BIN"
  log "$("$BIN/golangci-lint" version)"
}

install_govulncheck() {
  if "$BIN/govulncheck" -version 2>/dev/null | grep -qx "Scanner: govulncheck@$GOVULNCHECK_VERSION"; then
    log "govulncheck $GOVULNCHECK_VERSION present"; return 0
  fi
  goinstall golang.org/x/vuln/cmd/govulncheck "$GOVULNCHECK_VERSION" "$BIN"
  log "$("$BIN/govulncheck" -version | tr '\n' ' ')"
}

# vulndb_date: the commit time of the pinned x/vulndb (its pseudo-version's timestamp): the date
# of the data. The OSV files in the module carry no date of their own (their "modified" is set
# when vuln.go.dev is deployed).
vulndb_date() {
  local ts=${VULNDB_VERSION%-*}; ts=${ts##*-}; ts=${ts##*.}   # vX.Y.Z-[pre.0.]yyyymmddhhmmss-hash
  [[ $ts =~ ^[0-9]{14}$ ]] || die "VULNDB_VERSION=$VULNDB_VERSION is not a pseudo-version with a date"
  printf '%s-%s-%sT%s:%s:%sZ\n' "${ts:0:4}" "${ts:4:2}" "${ts:6:2}" "${ts:8:2}" "${ts:10:2}" "${ts:12:2}"
}

# build_vulndb: the v1 database layout govulncheck reads (index/db.json, index/modules.json,
# index/vulns.json, ID/<id>.json, each also gzipped), written by x/vulndb's cmd/indexdb from the
# module's data/osv, with index/db.json's "modified" set to the data's date.
build_vulndb() {
  local db=$ES_WORK/vulndb/$VULNDB_VERSION date
  date=$(vulndb_date)
  if [[ -f $db/index/db.json ]] && grep -q "\"$date\"" "$db/index/db.json"; then
    log "vulnerability database present: $db"; return 0
  fi
  local src; src=$(go_mod_dir golang.org/x/vulndb "$VULNDB_VERSION")
  [[ -d $src/data/osv ]] || die "golang.org/x/vulndb@$VULNDB_VERSION has no data/osv: cannot build the database"
  goinstall golang.org/x/vulndb/cmd/indexdb "$VULNDB_VERSION" "$ES_WORK/bin"
  rm -rf "$db.new"
  "$ES_WORK/bin/indexdb" -vulns "$src/data/osv" -out "$db.new"
  printf '{"modified":"%s"}' "$date" > "$db.new/index/db.json"
  gzip -9 -n -c "$db.new/index/db.json" > "$db.new/index/db.json.gz"
  rm -rf "$db"; mv "$db.new" "$db"
  log "vulnerability database $db: $(find "$db/ID" -name '*.json' | wc -l) entries, data of $date"
}

stage "tool golangci-lint $GOLANGCI_LINT_VERSION" install_golangci_lint
stage "tool govulncheck $GOVULNCHECK_VERSION" install_govulncheck
stage "vulnerability database (golang.org/x/vulndb@$VULNDB_VERSION)" build_vulndb
echo "$ES_WORK/vulndb/$VULNDB_VERSION"
