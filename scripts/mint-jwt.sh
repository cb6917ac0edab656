#!/usr/bin/env bash
# Mints a JWT as an application would, and writes the JWKS that verifies it (for benchmarks and
# trying token mode by hand). Needs openssl 3 and coreutils (basenc, od).
#   scripts/mint-jwt.sh eddsa|hs256 JWKS_OUT SCOPE TTL_SECS   -> prints the token
set -euo pipefail
alg=$1 jwks=$2 scope=$3 ttl=$4
b64url() { basenc --base64url -w0 | tr -d '='; }
now=$(date +%s)
payload=$(printf '{"sub":"bench","iat":%d,"exp":%d,"scopes":["%s"]}' "$now" $((now + ttl)) "$scope" | b64url)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
case "$alg" in
  eddsa)
    openssl genpkey -algorithm ed25519 -out "$tmp/key.pem" 2>/dev/null
    # The raw 32-byte public key is the last 32 bytes of its DER form.
    x=$(openssl pkey -in "$tmp/key.pem" -pubout -outform DER | tail -c 32 | b64url)
    printf '{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"k1","x":"%s"}]}\n' "$x" >"$jwks"
    header=$(printf '{"alg":"EdDSA","typ":"JWT","kid":"k1"}' | b64url)
    printf '%s.%s' "$header" "$payload" >"$tmp/input"
    sig=$(openssl pkeyutl -sign -inkey "$tmp/key.pem" -rawin -in "$tmp/input" | b64url)
    ;;
  hs256)
    openssl rand 32 >"$tmp/secret"
    k=$(b64url <"$tmp/secret")
    printf '{"keys":[{"kty":"oct","kid":"k1","k":"%s"}]}\n' "$k" >"$jwks"
    header=$(printf '{"alg":"HS256","typ":"JWT","kid":"k1"}' | b64url)
    sig=$(printf '%s.%s' "$header" "$payload" | openssl dgst -sha256 -mac HMAC -macopt "hexkey:$(od -An -tx1 "$tmp/secret" | tr -d " \n")" -binary | b64url)
    ;;
  *) echo "usage: $0 eddsa|hs256 JWKS_OUT SCOPE TTL_SECS" >&2; exit 2 ;;
esac
printf '%s.%s.%s\n' "$header" "$payload" "$sig"
