#!/bin/sh
# Build (once) the cached Debian bookworm root file system that tests boot with
# `systemd-nspawn --boot` as choirci's test host. Idempotent: an existing cache is kept.
#   usage: scripts/testhost/build-rootfs.sh [CACHE_DIR]   (default /var/cache/choirci/testhost)
# Needs: root, debootstrap, and the Debian mirror apt already uses.
set -eu
cache=${1:-/var/cache/choirci/testhost}
rootfs=$cache/rootfs
[ -x "$rootfs/lib/systemd/systemd" ] && [ -x "$rootfs/usr/sbin/sshd" ] && exit 0
mirror=$(sed -n 's/^URIs: *\(http[^ ]*debian\)$/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n1)
[ -n "$mirror" ] || mirror=$(awk '$1 == "deb" && $3 == "bookworm" { print $2; exit }' /etc/apt/sources.list 2>/dev/null)
[ -n "$mirror" ] || mirror=http://deb.debian.org/debian
mkdir -p "$cache"
tmp=$(mktemp -d "$cache/rootfs.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
# systemd + dbus to boot, sshd to reach it, iproute2 (ss) / curl / procps (pgrep) for the checks.
debootstrap --variant=minbase \
  --include=systemd,systemd-sysv,dbus,openssh-server,iproute2,curl,procps \
  bookworm "$tmp" "$mirror" >"$cache/debootstrap.log" 2>&1
# The image is shared by every boot: no baked-in host keys, no machine id.
rm -f "$tmp"/etc/ssh/ssh_host_* "$tmp/etc/machine-id"
rm -rf "$rootfs"
mv "$tmp" "$rootfs"
trap - EXIT
echo "$rootfs"
