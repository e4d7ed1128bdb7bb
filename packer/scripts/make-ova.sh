#!/bin/sh
# Packs a disk image and the OVF descriptor into an OVA (a tar: the .ovf first, then the
# stream-optimised VMDK, then the manifest), as vCenter's "Deploy OVF Template" reads it.
#
#   make-ova.sh DISK(qcow2|raw) DESCRIPTOR.ovf OUT.ova
set -eu

disk=${1:?usage: make-ova.sh DISK DESCRIPTOR.ovf OUT.ova}
descriptor=${2:?usage: make-ova.sh DISK DESCRIPTOR.ovf OUT.ova}
out=${3:?usage: make-ova.sh DISK DESCRIPTOR.ovf OUT.ova}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
name=$(basename "$out" .ova)
vmdk="$name-disk1.vmdk"

qemu-img convert -O vmdk -o subformat=streamOptimized "$disk" "$work/$vmdk"
bytes=$(stat -c %s "$work/$vmdk")
capacity_gb=$(( ($(qemu-img info --output=json "$disk" | sed -n 's/.*"virtual-size": \([0-9]*\).*/\1/p') + 1073741823) / 1073741824 ))
sed -e "s|@@DISK_FILE@@|$vmdk|" -e "s|@@DISK_BYTES@@|$bytes|" -e "s|@@DISK_CAPACITY_GB@@|$capacity_gb|" "$descriptor" >"$work/$name.ovf"
(
  cd "$work"
  printf 'SHA256(%s)= %s\n' "$name.ovf" "$(sha256sum "$name.ovf" | cut -d' ' -f1)" >"$name.mf"
  printf 'SHA256(%s)= %s\n' "$vmdk" "$(sha256sum "$vmdk" | cut -d' ' -f1)" >>"$name.mf"
  tar --format=ustar -cf "$name.ova" "$name.ovf" "$vmdk" "$name.mf"
)
mv "$work/$name.ova" "$out"
echo "wrote $out"
