#!/usr/bin/env bash
# Install the load generators `make bench` drives, from Debian's packages, when missing:
# wrk (HTTP/1.1, for the REST rows) and h2load from nghttp2-client (HTTP/2, for the gRPC rows).
set -euo pipefail

missing=()
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
command -v h2load >/dev/null 2>&1 || missing+=(nghttp2-client)
if [ "${#missing[@]}" -eq 0 ]; then
  exit 0
fi

sudo=()
if [ "$(id -u)" -ne 0 ]; then
  if ! command -v sudo >/dev/null 2>&1; then
    echo "ensure_bench_tools: need root (or sudo) to install ${missing[*]}" >&2
    exit 1
  fi
  sudo=(sudo)
fi
echo "ensure_bench_tools: installing ${missing[*]} from Debian's packages" >&2
export DEBIAN_FRONTEND=noninteractive
timeout 300 "${sudo[@]}" apt-get update -qq
timeout 600 "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
command -v wrk >/dev/null && command -v h2load >/dev/null
