#!/usr/bin/env bash
# Regenerates every generated document from its source of truth:
#   docs/cli/*.md                        the command tree of store/internal/cli (cobra/doc)
#   README.md                            its `serve` flag table, from the same tree (between
#                                        the serve-flags markers; store/internal/cli/docgen)
#   charts/ephemeral-store/README.md     its values table, from the `## @param` comments of
#                                        values.yaml (scripts/chart-readme.sh)
# scripts/verify.sh (make verify) fails when either is stale.
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT" || exit

stage "command-line reference docs/cli/ and the README's serve flag table" go run ./store/internal/cli/docgen -out docs/cli -readme README.md
stage "chart README values table" "$ROOT/scripts/chart-readme.sh"
