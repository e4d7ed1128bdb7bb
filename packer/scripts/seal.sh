#!/bin/sh
# Makes the provisioned machine a template: every VM deployed from the OVA gets its own SSH
# host keys, machine-id and first boot. Run last, after provision.sh. Idempotent.
set -eu

rm -f /etc/ssh/ssh_host_*
: >/etc/machine-id
rm -f /var/lib/dbus/machine-id /var/lib/airgap/.firstboot-done
if command -v cloud-init >/dev/null 2>&1; then cloud-init clean --logs >/dev/null 2>&1 || true; fi
apt-get clean
rm -rf /var/lib/apt/lists/*
