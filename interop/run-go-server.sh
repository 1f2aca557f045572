#!/bin/sh
# Builds the Go prekey server's library (github.com/otrv4/otrng-prekey-server) with our
# driver (interop/go-driver) from a Go server tree given as $1, offline (vendored modules,
# GOPROXY=off), then runs the otr4 interop tests against it. Fetches nothing from the
# network; needs `go` (Debian: apt-get install golang-go) and cargo.
#
#   interop/run-go-server.sh /path/to/otrng-prekey-server-tree
#
# To get a tree from the bare mirror (outside this repository):
#   mkdir /tmp/goserver && git --git-dir=<mirror>/repo archive HEAD | tar -x -C /tmp/goserver
set -eu
if [ $# -ne 1 ] || [ ! -f "$1/go.mod" ]; then
    echo "usage: $0 <otrng-prekey-server tree (with go.mod and vendor/)>" >&2
    exit 2
fi
command -v go >/dev/null || { echo "go not found (apt-get install golang-go)" >&2; exit 2; }
here=$(cd "$(dirname "$0")" && pwd)
tree=$(cd "$1" && pwd)
# Our two files: an exported Go client side inside the package, and the driver command.
cp "$here/go-driver/otr4_interop.go" "$tree/zz_otr4_interop.go"
mkdir -p "$tree/cmd/otr4driver"
cp "$here/go-driver/main.go" "$tree/cmd/otr4driver/main.go"
(cd "$tree" && GOFLAGS=-mod=vendor GOPROXY=off GOTOOLCHAIN=local go build -o otr4driver ./cmd/otr4driver)
echo "built $tree/otr4driver"
cd "$here/.."
OTR4_GO_SERVER_DIR="$tree" cargo test -p prekey-server --test go_interop -- --ignored --nocapture --test-threads 1
