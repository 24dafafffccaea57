#!/bin/sh
# The Go binding's tests against an installed library: `make install` into a temporary
# prefix, then `go vet` and `go test -race` with PKG_CONFIG_PATH and LD_LIBRARY_PATH
# pointing there. No network: standard library only, GOPROXY=off.
# Run by `make -C crates/tollgate-ffi go-test` (scripts/test does).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
ffi=$(cd "$here/../.." && pwd)
MAKE=${MAKE:-make}
GO=${GO:-go}
prefix=$(mktemp -d -t tollgate-go.XXXXXX)
trap 'rm -rf "$prefix"' EXIT
"$MAKE" -s -C "$ffi" install PREFIX="$prefix" >/dev/null
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
export LD_LIBRARY_PATH="$prefix/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
# Go's build cache keys a cgo package on CGO_CFLAGS and CGO_LDFLAGS but not on what
# pkg-config prints: without these, a package cached against an earlier (deleted)
# prefix would link with its -L and fail ("cannot find -ltollgate").
CGO_CFLAGS="$(pkg-config --cflags tollgate)"
CGO_LDFLAGS="$(pkg-config --libs-only-L tollgate)"
export CGO_CFLAGS CGO_LDFLAGS
export GOFLAGS=-mod=mod GOPROXY=off GOTOOLCHAIN=local CGO_ENABLED=1
cd "$here"
"$GO" version
"$GO" vet ./...
"$GO" test -race -count=1 -v ./...
