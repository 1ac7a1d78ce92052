#!/usr/bin/env bash
# Make a private CA and, signed by it, a server certificate (localhost, 127.0.0.1) and a client
# certificate, for trying TLS and mTLS locally (README "TLS and mTLS"). Not for production.
#
#   scripts/make_certs.sh DIR [DAYS]   ->  DIR/ca.pem server.pem server.key client.pem client.key
set -euo pipefail

dir=${1:?usage: make_certs.sh DIR [DAYS]}
days=${2:-30}
mkdir -p "$dir"
cd "$dir"
umask 077

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days "$days" \
  -subj "/CN=checkpoint local CA" -keyout ca.key -out ca.pem \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
  2>/dev/null

issue() { # NAME CN EXTENDED_KEY_USAGE [SAN]
  local name=$1 cn=$2 usage=$3 san=${4:-}
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$cn" \
    -keyout "$name.key" -out "$name.csr" 2>/dev/null
  {
    echo "basicConstraints=CA:FALSE"
    echo "keyUsage=critical,digitalSignature"
    echo "extendedKeyUsage=$usage"
    if [ -n "$san" ]; then echo "subjectAltName=$san"; fi
  } >"$name.ext"
  openssl x509 -req -in "$name.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days "$days" \
    -extfile "$name.ext" -out "$name.pem" 2>/dev/null
  rm -f "$name.csr" "$name.ext"
}

issue server localhost serverAuth "DNS:localhost,IP:127.0.0.1,IP:::1"
issue client checkpoint-client clientAuth
rm -f ca.srl
chmod 644 ca.pem server.pem client.pem
echo "make_certs: wrote $dir/{ca.pem,server.pem,server.key,client.pem,client.key}" >&2
