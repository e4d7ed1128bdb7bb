#!/bin/sh
# First boot of the OVA: finds the OVF environment (VMware guestinfo, else the ISO that
# vCenter attaches, else cloud-init's seed folder) and applies it with `airgap firstboot`.
# Run by airgap-firstboot.service at every boot, before the network and SSH start. It does
# its work once per VM instance: the marker holds the instance (the SMBIOS UUID, which
# vCenter changes when it deploys or clones), so a clone gets its own host keys and reads
# its own vApp properties.
set -eu

marker=/var/lib/airgap/.firstboot-done
instance=$(cat /sys/class/dmi/id/product_uuid 2>/dev/null || echo unknown)
if [ -f "$marker" ]; then
  if [ "$(cat "$marker")" = "$instance" ]; then exit 0; fi
  echo "airgap firstboot: this VM is a clone (instance $instance); new SSH host keys"
  rm -f /etc/ssh/ssh_host_*
fi
# Each VM gets its own SSH host keys (seal.sh removed the template's).
ssh-keygen -A >/dev/null

env_file=/run/airgap/ovf-env.xml
install -d -m 0700 /run/airgap

if command -v vmware-rpctool >/dev/null 2>&1 && vmware-rpctool "info-get guestinfo.ovfEnv" >"$env_file" 2>/dev/null && [ -s "$env_file" ]; then
  source=guestinfo
else
  # The CD-ROM may show up a moment after this unit starts.
  tries=0
  while [ ! -b /dev/sr0 ] && [ "$tries" -lt 20 ]; do sleep 0.5; tries=$((tries + 1)); done
  mnt=$(mktemp -d)
  if [ -b /dev/sr0 ] && mount -o ro /dev/sr0 "$mnt" 2>/dev/null; then
    if [ -f "$mnt/ovf-env.xml" ]; then cp "$mnt/ovf-env.xml" "$env_file"; source=iso; fi
    umount "$mnt" || true
  fi
  rmdir "$mnt"
fi
if [ -z "${source:-}" ] && [ -f /var/lib/cloud/seed/ovf/ovf-env.xml ]; then
  cp /var/lib/cloud/seed/ovf/ovf-env.xml "$env_file"
  source=seed
fi
if [ -z "${source:-}" ]; then
  echo "airgap firstboot: no OVF environment (no vApp properties); nothing to apply, will look again at next boot" >&2
  exit 0
fi

echo "airgap firstboot: applying the vApp properties from $source"
/usr/local/bin/airgap firstboot --ovf-env "$env_file"
# The network has not started yet: render the (maybe static) netplan for systemd-networkd.
if command -v netplan >/dev/null 2>&1; then netplan generate; fi
hostname -F /etc/hostname
printf '%s\n' "$instance" >"$marker"
