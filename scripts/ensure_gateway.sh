#!/usr/bin/env bash
# Build the grpc-gateway (Go) reference that `make bench` puts in front of checkpoint-server, from
# Debian's packages only (no Go module proxy, no GitHub): installs what is missing, generates the
# Go messages, gRPC client and gateway handlers from protos/ into .bench/gateway/ (outside git),
# compiles bench/gateway/main.go in GOPATH mode against /usr/share/gocode, and caches the binary
# until protos/, main.go or this script change. Prints the binary's path on stdout.
#
# Why these packages: Debian's grpc-gateway sources (golang-github-grpc-ecosystem-grpc-gateway-dev,
# v1) depend on golang/protobuf 1.3 (golang-goprotobuf-dev), which conflicts with 1.5, so the
# build is the APIv1 world throughout: protoc-gen-go 1.3 (protoc-gen-go-1-3, with plugins=grpc)
# for messages and client, protoc-gen-grpc-gateway (golang-grpc-gateway) for the handlers.
# CHECKPOINT_BENCH_NO_INSTALL=1 fails instead of installing.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${CHECKPOINT_GATEWAY_DIR:-$repo/.bench/gateway}"
binary="$build/checkpoint-grpc-gateway"
packages=(
  golang-go protobuf-compiler libprotobuf-dev protoc-gen-go-1-3 golang-grpc-gateway
  golang-github-grpc-ecosystem-grpc-gateway-dev golang-google-grpc-dev golang-google-genproto-dev
  golang-github-golang-protobuf-1-3-dev
)

say() { echo "ensure_gateway: $*" >&2; }

inputs_digest() {
  (
    cd "$repo"
    find protos -name '*.proto' -print0 | sort -z | xargs -0 sha256sum
    sha256sum bench/gateway/main.go scripts/ensure_gateway.sh
  ) | sha256sum | cut -d' ' -f1
}

digest="$(inputs_digest)"
if [ -x "$binary" ] && [ "$(cat "$build/inputs.sha256" 2>/dev/null)" = "$digest" ]; then
  echo "$binary"
  exit 0
fi

missing=()
for package in "${packages[@]}"; do
  status="$(dpkg-query -W -f='${Status}' "$package" 2>/dev/null || true)"
  [ "$status" = "install ok installed" ] || missing+=("$package")
done
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "${CHECKPOINT_BENCH_NO_INSTALL:-0}" = "1" ]; then
    say "missing Debian packages: ${missing[*]} (unset CHECKPOINT_BENCH_NO_INSTALL to install)"
    exit 1
  fi
  sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    if ! command -v sudo >/dev/null 2>&1; then
      say "need root (or sudo) to install ${missing[*]}"
      exit 1
    fi
    sudo=(sudo)
  fi
  export DEBIAN_FRONTEND=noninteractive
  timeout 300 "${sudo[@]}" apt-get update -qq
  # Never remove what is installed (golang/protobuf 1.5 conflicts with the 1.3 these need).
  removed="$(timeout 120 apt-get install -s --no-install-recommends "${missing[@]}" | grep '^Remv' || true)"
  if [ -n "$removed" ]; then
    say "installing ${missing[*]} would remove installed packages; not doing that:"
    echo "$removed" >&2
    exit 1
  fi
  say "installing ${missing[*]} from Debian's packages"
  timeout 900 "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

say "building $binary (protos/ or bench/gateway/main.go changed)"
work="$build/gopath"
rm -rf "$work" "$build/protos"
package_dir="$work/src/checkpointgw/checkpointpb"
mkdir -p "$package_dir" "$build/protos" "$build/generated"
(cd "$repo/protos" && find . -name '*.proto' -print0 | xargs -0 cp --parents -t "$build/protos")
# protoc-gen-go 1.3 predates proto3 `optional`; on a message field it changes nothing (message
# fields always have presence), so the copy drops the keyword. On a scalar the gateway's Go code
# would lose presence, which GetCheckpoint's answer does not show; say so if one appears.
scalars='double|float|int32|int64|uint32|uint64|sint32|sint64|fixed32|fixed64|sfixed32|sfixed64|bool|string|bytes'
if grep -rEn "^\s*optional\s+($scalars)\s" "$build/protos/checkpoint" >&2; then
  say "warning: the optional scalars above lose their presence in the gateway's Go code"
fi
find "$build/protos/checkpoint" -name '*.proto' -exec sed -i -E 's/^(\s*)optional\s+/\1/' {} +
go_package="checkpointgw/checkpointpb"
mapping="Mgoogle/protobuf/timestamp.proto=github.com/golang/protobuf/ptypes/timestamp"
mapping+=",Mgoogle/protobuf/field_mask.proto=google.golang.org/genproto/protobuf/field_mask"
for api in annotations http field_behavior; do
  mapping+=",Mgoogle/api/$api.proto=google.golang.org/genproto/googleapis/api/annotations"
done
sources=()
while IFS= read -r -d '' proto; do
  relative="${proto#"$build/protos/"}"
  mapping+=",M$relative=$go_package"
  sources+=("$proto")
done < <(find "$build/protos/checkpoint" -name '*.proto' -print0 | sort -z)
rm -rf "$build/generated"
mkdir -p "$build/generated"
timeout 120 protoc -I"$build/protos" -I/usr/include \
  --go_out="plugins=grpc,paths=source_relative,$mapping:$build/generated" \
  --grpc-gateway_out="logtostderr=true,paths=source_relative,$mapping:$build/generated" \
  "${sources[@]}"
find "$build/generated" -name '*.go' -exec cp -t "$package_dir" {} +
cp "$repo/bench/gateway/main.go" "$work/src/checkpointgw/main.go"
(
  cd "$work/src/checkpointgw"
  GO111MODULE=off GOPATH="$work:/usr/share/gocode" GOCACHE="$build/go-cache" GOFLAGS='' \
    GOPROXY=off timeout 900 go build -o "$binary.new" .
)
mv "$binary.new" "$binary"
echo "$digest" >"$build/inputs.sha256"
say "built $binary"
echo "$binary"
