#!/usr/bin/env bash
# Builds the Debian package `jobrunner` from a built `runner` binary, with
# Debian's own dpkg-deb. Why not `cargo deb`: it lays out the same tree and
# calls the same dpkg-deb, but it is a crate that every fresh CI machine
# would compile first; dpkg-deb is on every Debian machine, and the tree
# is the ten lines below.
#
#   deploy/debian/build-deb.sh BINARY VERSION OUT_DIR
#
# `cargo xtask deb` builds the release binary and calls this; the package
# test (tests/e2e/package.rs) calls it on the test build. Prints the
# package's path.
#
# Contents: /usr/bin/runner, the systemd unit jobrunner.service,
# /etc/jobrunner/runner.toml (a conffile) and /etc/jobrunner/plugins, the
# maintainer scripts beside this file. Depends on the libraries the binary
# links, read off the binary; recommends redis-server (the embedded mode).
set -euo pipefail
[ $# -eq 3 ] || { echo "usage: $0 BINARY VERSION OUT_DIR" >&2; exit 2; }
binary=$1 version=$2 out=$3
here=$(cd "$(dirname "$0")" && pwd)
arch=$(dpkg --print-architecture)
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT

install -d "$root/usr/bin"
# Debug information stays out of the package (a test build carries
# hundreds of megabytes of it; a release build has little).
objcopy --strip-debug "$binary" "$root/usr/bin/runner"
chmod 755 "$root/usr/bin/runner"
install -Dm644 "$here/jobrunner.service" "$root/lib/systemd/system/jobrunner.service"
install -Dm644 "$here/runner.toml" "$root/etc/jobrunner/runner.toml"
install -d "$root/etc/jobrunner/plugins"
install -Dm644 "$here/../README.md" "$root/usr/share/doc/jobrunner/README.md"
install -Dm644 "$here/copyright" "$root/usr/share/doc/jobrunner/copyright"

# What the binary links, as Debian packages: the C library (at least the
# newest symbol version it uses) and GCC's unwinder. Anything else is a
# change to the build that this script must learn, so it stops.
glibc=$(objdump -T "$binary" | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/GLIBC_//' | sort -V | tail -1)
depends="libc6 (>= $glibc)"
for lib in $(objdump -p "$binary" | awk '/NEEDED/ {print $2}'); do
    case "$lib" in
        libc.so.6 | libm.so.6 | libpthread.so.0 | libdl.so.2 | librt.so.1 | ld-linux-x86-64.so.2) ;;
        libgcc_s.so.1) depends="$depends, libgcc-s1" ;;
        *) echo "build-deb.sh: the binary links $lib, which no Depends names" >&2; exit 1 ;;
    esac
done

install -d "$root/DEBIAN"
cat > "$root/DEBIAN/control" <<CONTROL
Package: jobrunner
Version: $version
Architecture: $arch
Maintainer: jobrunner maintainers <maintainers@jobrunner.invalid>
Installed-Size: $(du -sk --exclude=DEBIAN "$root" | cut -f1)
Depends: $depends
Recommends: redis-server
Section: admin
Priority: optional
Description: job runner: Redis queues, jobs run by WebAssembly plugins
 A daemon that takes jobs from Redis queues and runs each one, by its
 type, in a sandboxed WebAssembly component: plugins are swapped while it
 runs, and each gets only the network hosts, mail, queues and secrets its
 configuration grants. Runs as the systemd service jobrunner.service.
CONTROL
echo /etc/jobrunner/runner.toml > "$root/DEBIAN/conffiles"
install -m755 "$here/postinst" "$here/prerm" "$here/postrm" "$root/DEBIAN/"

mkdir -p "$out"
deb="$out/jobrunner_${version}_${arch}.deb"
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
echo "$deb"
