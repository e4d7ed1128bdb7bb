#!/bin/sh
# `make ova-smoke`: builds the appliance OVA from Debian's packages and boots it under QEMU
# (see packer/smoke/build-disk.sh and test/smoke/ova-smoke.ts). Needs root or sudo for
# debootstrap. Work files go to build/ova-smoke/ (the .deb cache is kept between runs).
set -eu
cd "$(dirname "$0")/.."

sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
out=build/ova-smoke
mkdir -p "$out"
begin=$(date +%s)
elapsed() { echo $(( $(date +%s) - begin )); }

sh scripts/bootstrap.sh --ova
$sudo env AIRGAP_SMOKE_CACHE="$out/debs" sh packer/smoke/build-disk.sh dist/airgap-release.tar.gz "$out/airgap-appliance.raw"
# What root made stays removable by `make clean`.
if [ -n "$sudo" ]; then $sudo chown -R "$(id -u):$(id -g)" "$out"; fi
built=$(elapsed)
sh packer/scripts/make-ova.sh "$out/airgap-appliance.raw" packer/ovf/airgap.ovf "$out/airgap-appliance.ova"
rm -f "$out/airgap-appliance.raw"
packed=$(elapsed)
status=0
node dist/test/smoke/ova-smoke.js --ova "$out/airgap-appliance.ova" --work "$out/boot" || status=$?
echo "ova-smoke: disk ${built} s, OVA $((packed - built)) s, boot and checks $(( $(elapsed) - packed )) s; total $(elapsed) s"
echo "ova-smoke: the OVA is $out/airgap-appliance.ova ($(du -h "$out/airgap-appliance.ova" | cut -f1))"
exit "$status"
