#!/bin/sh
# The library installed as C libraries are: `make install` into a temporary prefix with
# a non-default LIBDIR and INCLUDEDIR (and a DESTDIR), then
#   - the exact list of installed files and links;
#   - the SONAME of the installed library (readelf -d) is libtollgate.so.<ABI>, the ABI
#     version the library itself reports, and the links point where they should;
#   - a program builds through `pkg-config --cflags --libs tollgate` and runs against
#     the installed shared library (its NEEDED entry is the soname);
#   - the same program links statically through `pkg-config --static` (Libs.private)
#     and runs without the shared library.
# Run by `make -C crates/tollgate-ffi package-test` (scripts/test does).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
ffi=$(cd "$here/../.." && pwd)
MAKE=${MAKE:-make}
CC=${CC:-cc}
fail() { echo "package-test: $*" >&2; exit 1; }

stage=$(mktemp -d -t tollgate-package.XXXXXX)
trap 'rm -rf "$stage"' EXIT
prefix=/opt/tollgate-test
libdir=$prefix/lib/x86_64-test
includedir=$prefix/include/tollgate-test
"$MAKE" -s -C "$ffi" install DESTDIR="$stage" PREFIX="$prefix" LIBDIR="$libdir" \
    INCLUDEDIR="$includedir" >/dev/null
root=$stage$prefix

abi=$(sed -n 's/^#define TOLLGATE_ABI_VERSION \([0-9][0-9]*\)$/\1/p' "$ffi/include/tollgate.h")
version=$(sed -n 's/^#define TOLLGATE_VERSION_MAJOR \([0-9]*\)$/\1/p;s/^#define TOLLGATE_VERSION_MINOR \([0-9]*\)$/.\1/p;s/^#define TOLLGATE_VERSION_PATCH \([0-9]*\)$/.\1/p' \
    "$ffi/include/tollgate.h" | tr -d '\n')
[ -n "$abi" ] && [ -n "$version" ] || fail "no ABI or version in the header"

echo "installed (DESTDIR=$stage, PREFIX=$prefix, LIBDIR=$libdir, INCLUDEDIR=$includedir):"
listing=$(cd "$stage" && find . \( -type f -o -type l \) | sed 's|^\./|/|' | sort)
echo "$listing" | sed 's/^/  /'
expected=$(printf '%s\n' \
    "$includedir/tollgate.h" \
    "$libdir/libtollgate.a" \
    "$libdir/libtollgate.so" \
    "$libdir/libtollgate.so.$abi" \
    "$libdir/libtollgate.so.$abi.$version" \
    "$libdir/pkgconfig/tollgate.pc" | sort)
[ "$listing" = "$expected" ] || fail "installed files differ from the expected:
$expected"
[ "$(readlink "$stage$libdir/libtollgate.so")" = "libtollgate.so.$abi" ] || fail "libtollgate.so does not link to the soname"
[ "$(readlink "$stage$libdir/libtollgate.so.$abi")" = "libtollgate.so.$abi.$version" ] || fail "the soname does not link to the real file"
[ -f "$stage$libdir/libtollgate.so.$abi.$version" ] && [ ! -L "$stage$libdir/libtollgate.so.$abi.$version" ] || fail "the real file is not a file"

soname=$(readelf -d "$stage$libdir/libtollgate.so.$abi.$version" | sed -n 's/.*(SONAME).*\[\(.*\)\].*/\1/p')
echo "SONAME: $soname"
[ "$soname" = "libtollgate.so.$abi" ] || fail "SONAME is '$soname', expected libtollgate.so.$abi"

echo "tollgate.pc:"
sed 's/^/  /' "$stage$libdir/pkgconfig/tollgate.pc"
# The staged tree is not at its prefix: redefining ${prefix} relocates it, as
# tollgate.pc names its directories relative to it.
pc() {
    PKG_CONFIG_PATH="$stage$libdir/pkgconfig" pkg-config --define-variable=prefix="$root" "$@" tollgate |
        sed 's/ *$//'
}
[ "$(pc --modversion)" = "$version" ] || fail "pkg-config --modversion is '$(pc --modversion)'"
[ "$(pc --variable=libdir)" = "$stage$libdir" ] || fail "libdir is '$(pc --variable=libdir)'"
[ "$(pc --cflags)" = "-I$stage$includedir" ] || fail "Cflags are '$(pc --cflags)'"
[ "$(pc --libs)" = "-L$stage$libdir -ltollgate" ] || fail "Libs are '$(pc --libs)'"
native=$(sed -n 's/^Libs.private: //p' "$stage$libdir/pkgconfig/tollgate.pc")
[ -n "$native" ] || fail "Libs.private is empty"

# Shared: the program needs the soname, and runs against the installed library.
# shellcheck disable=SC2046 # pkg-config prints several flags on purpose
"$CC" -std=c11 -Wall -Wextra -Werror -Wpedantic "$here/link.c" $(pc --cflags --libs) -o "$stage/link-shared"
needed=$(readelf -d "$stage/link-shared" | sed -n 's/.*(NEEDED).*\[\(libtollgate[^]]*\)\].*/\1/p')
[ "$needed" = "libtollgate.so.$abi" ] || fail "the program needs '$needed', expected libtollgate.so.$abi"
out=$(LD_LIBRARY_PATH="$stage$libdir" "$stage/link-shared")
[ "$out" = "abi $abi version $version" ] || fail "the shared program printed '$out'"
echo "shared: NEEDED $needed, runs: $out"

# Static: with the shared library beside the static one, -ltollgate would pick the
# shared one, so the program names the archive (as with any library that installs both).
# shellcheck disable=SC2046
"$CC" -std=c11 -Wall -Wextra -Werror -Wpedantic "$here/link.c" \
    $(pc --cflags --static --libs | sed 's/-ltollgate\( \|$\)/-l:libtollgate.a\1/') -o "$stage/link-static"
if readelf -d "$stage/link-static" | grep -q 'NEEDED.*libtollgate'; then
    fail "the static program needs the shared library"
fi
out=$(env -u LD_LIBRARY_PATH "$stage/link-static")
[ "$out" = "abi $abi version $version" ] || fail "the static program printed '$out'"
echo "static: no libtollgate NEEDED, runs: $out"
echo "package-test: ok"
