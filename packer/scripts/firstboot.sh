#!/bin/sh
# First boot of the OVA: finds the OVF environment (VMware guestinfo, else the ISO that
# vCenter attaches, else cloud-init's seed folder) and applies it with `airgap firstboot`.
# Run once by airgap-firstboot.service; safe to run again.
set -eu

env_file=/run/airgap/ovf-env.xml
install -d -m 0700 /run/airgap

if command -v vmware-rpctool >/dev/null 2>&1 && vmware-rpctool "info-get guestinfo.ovfEnv" >"$env_file" 2>/dev/null && [ -s "$env_file" ]; then
  source=guestinfo
elif [ -b /dev/sr0 ] && mount -o ro /dev/sr0 /mnt 2>/dev/null; then
  if [ -f /mnt/ovf-env.xml ]; then cp /mnt/ovf-env.xml "$env_file"; source=iso; fi
  umount /mnt || true
fi
if [ -z "${source:-}" ] && [ -f /var/lib/cloud/seed/ovf/ovf-env.xml ]; then
  cp /var/lib/cloud/seed/ovf/ovf-env.xml "$env_file"
  source=seed
fi
if [ -z "${source:-}" ]; then
  echo "airgap firstboot: no OVF environment (no vApp properties); nothing to apply" >&2
  exit 0
fi

echo "airgap firstboot: applying the vApp properties from $source"
/usr/local/bin/airgap firstboot --ovf-env "$env_file"
netplan apply 2>/dev/null || true
hostname -F /etc/hostname
systemctl reload ssh 2>/dev/null || systemctl reload sshd 2>/dev/null || true
touch /var/lib/airgap/.firstboot-done
