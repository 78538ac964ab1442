#!/usr/bin/env bash
# Regenerate store/internal/mtls/testdata/openssl/: a root CA and user
# certificates made with the old documentation's openssl commands, exactly
# (RSA 2048 keys; the user certificates are X.509 v1 without extensions,
# because `openssl x509 -req` gets no -extfile). A second, unrelated CA
# "otherCA" with the same subject signs the user "intruder", whom the store
# must refuse. TEST DATA ONLY: the keys are committed and therefore public.
#
# Usage: scripts/gen-openssl-testdata.sh   (needs openssl; valid 3650 days)
set -o errexit -o nounset -o pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

out=store/internal/mtls/testdata/openssl
command -v openssl >/dev/null || { echo "openssl is required" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"

# The root CA, as the old documentation creates it.
openssl genrsa -out rootCA.key 2048
openssl req -x509 -new -nodes -key rootCA.key -sha256 -days 3650 -subj "/CN=ephemeral-store-ca" -out rootCA.crt

# user CA: one user certificate the old documentation's way.
user() {
  local name=$1 ca=$2
  openssl genrsa -out "$name.key" 2048
  openssl req -new -key "$name.key" -subj "/CN=$name" -out "$name.csr"
  openssl x509 -req -in "$name.csr" -CA "$ca.crt" -CAkey "$ca.key" -CAcreateserial -out "$name.crt" -days 3650 -sha256
}
user myuser rootCA
user otheruser rootCA

# An unrelated CA with the same subject, and a user it signs.
openssl genrsa -out otherCA.key 2048
openssl req -x509 -new -nodes -key otherCA.key -sha256 -days 3650 -subj "/CN=ephemeral-store-ca" -out otherCA.crt
user intruder otherCA

cd - >/dev/null
mkdir -p "$out"
rm -f "$out"/*.crt "$out"/*.key
for f in rootCA otherCA myuser otheruser intruder; do
  cp "$work/$f.crt" "$work/$f.key" "$out/"
done
cat >"$out/README.md" <<'README'
# Test data only

These keys are public: never use them outside tests. Regenerate with
`scripts/gen-openssl-testdata.sh` (the old documentation's openssl steps:
RSA 2048, `rootCA.crt` a v3 CA, user certificates X.509 v1 without
extensions, valid 3650 days from generation). `otherCA` has the same subject
as `rootCA` but another key; it signs `intruder`, who must be refused.
README
echo "wrote $out:" && ls "$out"
