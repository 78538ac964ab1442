#!/usr/bin/env bash
# Usage: scripts/raft-patches.sh
#
# store/third_party/raft must be exactly hashicorp/raft $UPSTREAM_VERSION with the patch series
# store/third_party/raft/patches/*.patch applied in order, plus the files listed in OURS. This
# script rebuilds that in a temporary directory from a pristine upstream (the Go module cache,
# downloaded and checked against $UPSTREAM_SUM when missing) and fails, printing the differences,
# if the checked-in copy is anything else. It also fails when a patch no longer applies, when
# PATCH.md does not name every patch file (or names one that is not there), and when a file of
# OURS is missing. make verify runs it.
#
# What the copy takes from upstream: the non-test .go files of the top directory (testing.go and
# testing_batch.go are non-test files), go.mod, go.sum and LICENSE. Nothing else: no upstream
# test, no docs, no bench/.
#
# To change the copy: edit it, run this script, and put the diff it prints (a/ and b/ paths,
# apply with -p1) into a new patches/NNNN-name.patch with a header (what, why, upstream issue or
# PR, test), or into the patch it belongs to; then describe it in PATCH.md.
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT" || exit

UPSTREAM_MODULE=github.com/hashicorp/raft
UPSTREAM_VERSION=v1.8.0
UPSTREAM_SUM=h1:YbfecBcuTar/LNFEDfVTpqu9Aw+MczTk7MYczvy+62k=   # go.sum line of the module zip
COPY=store/third_party/raft
# The copy's own files, which upstream does not have: the record of the patches and our tests of
# them. Anything else in the copy must come from upstream and the patches.
OURS=(PATCH.md patches patch_test.go verify_patch_test.go vouch_test.go pipeline_patch_test.go applied_prefix_patch_test.go)

# The root module must require the version the patches are against (the replace points at COPY).
required=$(go list -m -f '{{.Version}}' "$UPSTREAM_MODULE") ||
  die "go list -m $UPSTREAM_MODULE failed in the root module"
[[ $required == "$UPSTREAM_VERSION" ]] ||
  die "go.mod requires $UPSTREAM_MODULE $required, but $COPY is $UPSTREAM_VERSION plus patches: rebase the patches on $required and update UPSTREAM_VERSION and UPSTREAM_SUM in $0, or require $UPSTREAM_VERSION"

# The pristine upstream: from the module cache, downloaded if missing.
info=$(go mod download -json "$UPSTREAM_MODULE@$UPSTREAM_VERSION") || {
  printf '%s\n' "$info" >&2
  die "go mod download $UPSTREAM_MODULE@$UPSTREAM_VERSION failed (above)"
}
upstream=$(jq -r .Dir <<<"$info")
sum=$(jq -r .Sum <<<"$info")
[[ $sum == "$UPSTREAM_SUM" ]] ||
  die "$UPSTREAM_MODULE@$UPSTREAM_VERSION in the module cache has sum $sum, not $UPSTREAM_SUM: the cache is not pristine (go clean -modcache) or the pin in $0 is wrong"
[[ -d $upstream ]] || die "go mod download gave no directory for $UPSTREAM_MODULE@$UPSTREAM_VERSION: $info"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# a: upstream with the patches applied; b: the checked-in copy without OURS. Diffing the two from
# tmp gives a/ and b/ paths, so a difference reads, and applies, as a patch.
mkdir "$tmp/a" "$tmp/b"

shopt -s nullglob
for f in "$upstream"/*.go "$upstream/go.mod" "$upstream/go.sum" "$upstream/LICENSE"; do
  [[ $f == *_test.go ]] && continue
  cp "$f" "$tmp/a/"
done
chmod -R u+w "$tmp/a"   # the module cache is read-only

patches=("$COPY"/patches/*.patch)
(( ${#patches[@]} )) || die "no patch in $COPY/patches/: the series is the record of what differs from upstream"
for p in "${patches[@]}"; do
  # git apply, not patch: no fuzz, so a patch whose context changed fails instead of landing
  # somewhere near. GIT_CEILING_DIRECTORIES keeps it from finding a repository above tmp.
  if ! out=$(cd "$tmp/a" && GIT_CEILING_DIRECTORIES=$tmp git apply --verbose "$ROOT/$p" 2>&1); then
    printf '%s\n' "$out" >&2
    die "$p does not apply to $UPSTREAM_MODULE $UPSTREAM_VERSION with the patches before it (above): fix the patch (its context must match), then run $0 again"
  fi
  log "applied $(basename "$p")"
done

failures=()
for f in "${OURS[@]}"; do
  [[ -e $COPY/$f ]] || failures+=("$COPY/$f is listed as ours (OURS in $0) but does not exist: drop it from the list")
done

cp -R "$COPY"/. "$tmp/b/"
for f in "${OURS[@]}"; do rm -rf "${tmp:?}/b/$f"; done

# git diff --no-index: the same format as the patches, no timestamps, and a file only in the copy
# shows as a new file.
if ! diff=$(cd "$tmp" && git diff --no-index --no-color --no-prefix a b); then
  printf '%s\n' "$diff" >&2
  failures+=("$COPY is not $UPSTREAM_MODULE $UPSTREAM_VERSION plus $COPY/patches/ (diff above: a/ is upstream with the patches, b/ the copy; a new file is one neither upstream nor listed in OURS). Undo the change in the copy, or record it as a patch (see the top of $0)")
fi

# PATCH.md explains every patch and names its file; a patch it does not name, or a name with no
# file, means the prose and the series disagree.
named=$(grep -o 'patches/[0-9][0-9][0-9][0-9]-[A-Za-z0-9._-]*\.patch' "$COPY/PATCH.md" | sort -u || true)
files=$(for p in "${patches[@]}"; do echo "patches/$(basename "$p")"; done | sort -u)
missing=$(comm -13 <(printf '%s\n' "$named") <(printf '%s\n' "$files") | paste -sd ' ' -)
ghost=$(comm -23 <(printf '%s\n' "$named") <(printf '%s\n' "$files") | paste -sd ' ' -)
[[ -z $missing ]] || failures+=("$COPY/PATCH.md does not describe $missing: add a section naming the file")
[[ -z $ghost ]] || failures+=("$COPY/PATCH.md names $ghost, which $COPY/patches/ does not have")

if (( ${#failures[@]} )); then
  printf '  %s\n' "${failures[@]}" >&2
  exit 1
fi
log "$COPY is $UPSTREAM_MODULE $UPSTREAM_VERSION plus ${#patches[@]} patches ($(cd "$COPY/patches" && echo *.patch)) and ${OURS[*]}"
