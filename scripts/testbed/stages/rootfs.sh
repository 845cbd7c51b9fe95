#!/usr/bin/env bash
# Builds a trimmed Debian root file system with debootstrap and writes it as a tarball.
#
#   rootfs.sh SUITE MIRROR OUT_TAR [PACKAGE...]
#
# The tarball is ready for `docker import`. Documentation, man pages, locales and apt lists are
# removed: nothing in the test bed reads them.
set -euo pipefail

suite=$1 mirror=$2 out=$3; shift 3
packages=$(IFS=,; echo "$*")
dir=$(mktemp -d "${TMPDIR:-/tmp}/svclab-rootfs.XXXXXX")
trap 'rm -rf "$dir"' EXIT

debootstrap --variant=minbase ${packages:+--include="$packages"} "$suite" "$dir" "$mirror" >&2

# iptables: use the nf_tables backend, as the host's Docker and kube-proxy do.
if [[ -x $dir/usr/sbin/iptables-nft ]]; then
  chroot "$dir" update-alternatives --set iptables /usr/sbin/iptables-nft >/dev/null
  chroot "$dir" update-alternatives --set ip6tables /usr/sbin/ip6tables-nft >/dev/null
fi

chroot "$dir" apt-get clean
rm -rf "$dir"/var/lib/apt/lists/* "$dir"/var/cache/apt/* "$dir"/var/log/* \
       "$dir"/usr/share/doc/* "$dir"/usr/share/man/* "$dir"/usr/share/info/* \
       "$dir"/usr/share/locale/* "$dir"/tmp/* "$dir"/var/tmp/*
tar -C "$dir" --numeric-owner -cf "$out.tmp" .
mv "$out.tmp" "$out"
