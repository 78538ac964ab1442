#!/usr/bin/env bash
# make verify: the checks that run no test, each failing with the file at fault and the command
# that fixes it. make test runs it first (and CI runs make test). Every check runs, then the
# script fails if any did.
#
#   - gofmt: every Go file under store/, tests/ and bench/ is formatted
#   - go mod tidy: go.mod and go.sum of the root module, of the Go client's module (store/client),
#     of the test harness's (tests/), of bench/ and of scripts/release/ need no change
#   - the Go client's dependencies: a program importing only the client builds from the standard
#     library and the client module alone (no k8s.io, terratest, Raft, Prometheus, testify...)
#   - the root module's dependencies: its module graph (go list -m all), which an application
#     importing the client inherits through the root, has none of the test harness's (terratest,
#     client-go, kind): those belong to tests/go.mod
#   - the patched copy of hashicorp/raft (store/third_party/raft) is upstream with its patches/
#     applied and nothing else but the files it lists as ours (scripts/raft-patches.sh)
#   - the shell linter, Debian's shellcheck package $SHELLCHECK_VERSION (installed with apt-get
#     when missing), finds nothing in scripts/ and .ci/run
#   - generated files: docs/cli/ and the serve flag table of README.md
#     (store/internal/cli/docgen) and the values table of charts/ephemeral-store/README.md
#     (tests/chart/readmegen) are current
#   - markdown links: every relative link and #anchor of the repository's .md files resolves
#     (tests/docs)
#   - golangci-lint $GOLANGCI_LINT_VERSION with .golangci.yml finds nothing in the root module,
#     store/client/, tests/ (e2e build tag included), bench/ and scripts/release/ (GO_MODULES)
#   - govulncheck $GOVULNCHECK_VERSION, offline, on the vulnerability data of golang.org/x/vulndb
#     at $VULNDB_VERSION (scripts/install-linters.sh builds the database), finds no vulnerability
#     that the code reaches, tests included, in the same five modules, except the ones
#     scripts/govulncheck-accepted.txt accepts with a reason
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=scripts/kind-node/common.sh
source "$ROOT/scripts/kind-node/common.sh"   # ES_WORK: the govulncheck logs
cd "$ROOT" || exit

failures=()
failed() { failures+=("$1"); log "FAILED: $1"; }

check_gofmt() {
  local files
  files=$(gofmt -l store tests bench scripts/release)
  if [[ -n $files ]]; then
    failed "not gofmt-ed (fix: gofmt -w <file>): $(tr '\n' ' ' <<<"$files")"
  fi
}

# tidy DIR: go mod tidy would change nothing in DIR's go.mod and go.sum.
tidy() {
  local dir=$1 diff
  if ! diff=$(cd "$dir" && go mod tidy -diff 2>&1); then
    printf '%s\n' "$diff" >&2
    failed "$dir/go.mod or $dir/go.sum is not tidy (fix: cd $dir && go mod tidy)"
  fi
}

# check_client_deps: an application of its own module, importing the client the way a user's
# would (a require and, here, a replace to the working tree), lists its packages with
# `go list -deps`: every one outside the standard library must be the application's or the
# client module's. The list is printed either way.
check_client_deps() {
  local app mod=github.com/ephemeral-store/ephemeral-store/store/client deps bad
  app=$(mktemp -d)
  # shellcheck disable=SC2064 # expand now: app is local; the trap removes itself once run
  trap "rm -rf '$app'; trap - RETURN" RETURN
  cat >"$app/go.mod" <<EOF
module example.com/clientonly

go 1.26.0

require $mod v0.0.0-00010101000000-000000000000

replace $mod => $ROOT/store/client
EOF
  cat >"$app/main.go" <<EOF
// A program that uses the Go client and nothing else.
package main

import "$mod"

func main() { _, _ = client.NewFromFiles([]string{"https://ephemeral-store:8087"}, "tls.crt", "tls.key", "ca.crt") }
EOF
  # -mod=mod: the application's go.sum starts empty, as a new user's would.
  if ! deps=$(cd "$app" && GOFLAGS=-mod=mod go list -deps -f '{{if not .Standard}}{{.ImportPath}}{{end}}' . 2>"$app/stderr"); then
    cat "$app/stderr" >&2
    failed "go list -deps of a program importing only the client failed (above)"
    return
  fi
  log "packages outside the standard library of a program importing only the client: $(tr '\n' ' ' <<<"$deps")"
  bad=$(grep -v -e '^example\.com/clientonly$' -e "^$mod\$" -e "^$mod/" <<<"$deps" || true)
  if [[ -n $bad ]]; then
    failed "the Go client pulls in other modules' packages (keep store/client free of them): $(tr '\n' ' ' <<<"$bad")"
  fi
}

# check_root_deps: the root module's graph lists none of the modules only the test harness needs;
# one that comes back means an import of tests/ crept into the root module (or a require was added
# by hand).
check_root_deps() {
  local mods bad
  if ! mods=$(go list -m all 2>&1); then
    printf '%s\n' "$mods" >&2
    failed "go list -m all of the root module failed (above)"
    return
  fi
  bad=$(grep -E '^(github\.com/gruntwork-io/terratest|k8s\.io/client-go|sigs\.k8s\.io/kind) ' <<<"$mods" || true)
  if [[ -n $bad ]]; then
    failed "the root module's graph has test-harness modules (they belong to tests/go.mod; move the importing code under tests/, then go mod tidy in both): $(tr '\n' ' ' <<<"$bad")"
  fi
  log "the root module's graph: $(wc -l <<<"$mods") modules, none of terratest, client-go, kind"
}

# check_raft_patches: the script prints what differs or which patch fails to apply.
check_raft_patches() {
  if ! "$ROOT/scripts/raft-patches.sh"; then
    failed "store/third_party/raft is not hashicorp/raft plus store/third_party/raft/patches/ (above; see its PATCH.md)"
  fi
}

# ensure_shellcheck: the pinned Debian package, installed with apt-get as scripts/ensure-netlab.sh
# installs its tools: only when it is missing or another version.
ensure_shellcheck() {
  local have
  have=$(dpkg-query -W -f='${Version}' shellcheck 2>/dev/null || true)
  [[ $have == "$SHELLCHECK_VERSION" ]] && command -v shellcheck >/dev/null && return 0
  command -v apt-get >/dev/null ||
    die "shellcheck $SHELLCHECK_VERSION is needed and there is no apt-get: install it by hand"
  local sudo=()
  if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null || die "installing shellcheck $SHELLCHECK_VERSION needs root (or sudo)"
    sudo=(sudo)
  fi
  log "installing shellcheck=$SHELLCHECK_VERSION with apt-get (found: ${have:-none})"
  export DEBIAN_FRONTEND=noninteractive
  if ! "${sudo[@]}" apt-get install -y --no-install-recommends "shellcheck=$SHELLCHECK_VERSION" >/dev/null; then
    "${sudo[@]}" apt-get update >/dev/null
    "${sudo[@]}" apt-get install -y --no-install-recommends "shellcheck=$SHELLCHECK_VERSION" >/dev/null
  fi
}

check_shellcheck() {
  ensure_shellcheck
  local scripts
  # Every file whose first line is a sh or bash shebang, and the sourced ones that say their shell.
  mapfile -t scripts < <(
    find scripts .ci -type f -exec awk 'FNR == 1 && /^#!.*[/ ](ba)?sh$/ { print FILENAME } /^# shellcheck shell=/ { print FILENAME; nextfile }' {} + | sort -u
  )
  # -x follows `source`; the paths in `# shellcheck source=` directives are from the root.
  if ! shellcheck -x "${scripts[@]}"; then
    failed "shellcheck finds problems in scripts/ (above; fix them, or disable one check on its line with a reason)"
  fi
}

check_generated() {
  if ! go run ./store/internal/cli/docgen -check -out docs/cli -readme README.md; then
    failed "docs/cli/ or the serve flag table of README.md is stale (fix: make docs)"
  fi
  if ! "$ROOT/scripts/chart-readme.sh" --check; then
    failed "the values table of charts/ephemeral-store/README.md is stale (fix: make docs)"
  fi
}

check_links() {
  if ! go -C tests test -count=1 ./docs/; then
    failed "a markdown link or anchor is dead (above: file:line, target, what is missing)"
  fi
}

# The Go modules golangci-lint and govulncheck look at.
GO_MODULES=(. store/client tests bench scripts/release)

check_golangci_lint() {
  local dir
  for dir in "${GO_MODULES[@]}"; do
    log "golangci-lint run ($dir)"
    if ! (cd "$dir" && golangci-lint run --allow-serial-runners --config "$ROOT/.golangci.yml" ./...); then
      failed "golangci-lint finds problems in $dir (above; fix them, or exclude one in .golangci.yml with a reason)"
    fi
  done
}

# check_govulncheck: the symbol-level findings (the code calls the vulnerable function) fail,
# unless accepted; the package and module ones (imported or required, not called) are listed.
check_govulncheck() {
  local db=$1 dir out found=() accepted logdir failures_before=${#failures[@]}
  accepted=$(awk '!/^#/ && NF { print $1 }' scripts/govulncheck-accepted.txt)
  # Each run its own log directory: two verify runs at once (two checkouts on one machine)
  # wrote one file and read each other's half-written JSON. Kept only when the stage fails.
  mkdir -p "$ES_WORK/logs"
  logdir=$(mktemp -d "$ES_WORK/logs/govulncheck.XXXXXX")
  log "vulnerability data of $(jq -r .modified "$db/index/db.json") (golang.org/x/vulndb@$VULNDB_VERSION, $db)"
  for dir in "${GO_MODULES[@]}"; do
    local tags=(); [[ $dir == tests ]] && tags=(-tags e2e)
    out=$logdir/${dir//[.\/]/_}.json
    log "govulncheck -test ${tags[*]:+${tags[*]} }./... ($dir)"
    if ! (cd "$dir" && govulncheck -db "file://$db" -test "${tags[@]}" -format json ./... > "$out"); then
      failed "govulncheck could not scan $dir (log $out)"
      continue
    fi
    # one line per vulnerability, at the deepest level found: called (the code reaches the
    # vulnerable function), imported (its package only), required (its module only); the OSV id,
    # module@version, the fixed version, where the code reaches it
    jq -rs '[.[] | select(.finding) | .finding
        | {lvl: (if .trace[0].function then 3 elif .trace[0].package then 2 else 1 end), osv,
           mod: "\(.trace[0].module)@\(.trace[0].version)", fix: (.fixed_version // "no fix"),
           at: (.trace | map(select(.position)) | last
                | if . then "\(.position.filename):\(.position.line)" else "" end)}]
      | group_by(.osv) | map(max_by(.lvl)) | .[]
      | [(["", "required", "imported", "called"])[.lvl], .osv, .mod, .fix, .at] | @tsv' "$out" > "$out.tsv"
    local lvl id mod fix at others=()
    while IFS=$'\t' read -r lvl id mod fix at; do
      if [[ $lvl != called ]]; then
        others+=("$id ($mod, $lvl)")
      elif [[ $mod == stdlib@* ]] && grep -qx "$id" <<<"$accepted"; then
        log "  $dir: $id in $mod is called (from ${at:-?}), fixed in $fix: accepted (scripts/govulncheck-accepted.txt)"
        found+=("$id")
      else
        failed "$dir: $id in $mod is called (from ${at:-?}); fixed in $fix: bump it (go get ...@$fix), see https://pkg.go.dev/vuln/$id"
      fi
    done < "$out.tsv"
    (( ${#others[@]} == 0 )) || log "  $dir: not called (imported or required only): ${others[*]}"
  done
  local id
  for id in $accepted; do
    if ! printf '%s\n' "${found[@]}" | grep -qx "$id"; then
      failed "scripts/govulncheck-accepted.txt accepts $id, which no scan finds any more: delete its line"
    fi
  done
  if (( ${#failures[@]} == failures_before )); then
    rm -rf "$logdir"
  else
    log "govulncheck logs kept in $logdir"
  fi
}

stage "gofmt (store, tests, bench, scripts/release)" check_gofmt
stage "go mod tidy (root module)" tidy .
stage "go mod tidy (store/client/)" tidy store/client
stage "the Go client's dependencies (go list -deps of a program importing only it)" check_client_deps
stage "go mod tidy (tests/)" tidy tests
stage "the root module's graph has no test-harness modules (terratest, client-go, kind)" check_root_deps
stage "go mod tidy (bench/)" tidy bench
stage "go mod tidy (scripts/release/)" tidy scripts/release
stage "store/third_party/raft is hashicorp/raft plus its patches/" check_raft_patches
stage "shellcheck (scripts/, .ci/run)" check_shellcheck
stage "generated files current (docs/cli/, README serve flags, chart README table)" check_generated
stage "markdown links and anchors resolve (tests/docs)" check_links
vulndb=$("$ROOT/scripts/install-linters.sh")
stage "golangci-lint (${GO_MODULES[*]})" check_golangci_lint
stage "govulncheck (${GO_MODULES[*]})" check_govulncheck "$vulndb"

if (( ${#failures[@]} )); then
  log "verify: ${#failures[@]} check(s) failed:"
  printf '  %s\n' "${failures[@]}" >&2
  exit 1
fi
log "verify: everything in order"
