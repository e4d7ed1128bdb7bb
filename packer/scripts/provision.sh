#!/bin/sh
# Provisions the airgap appliance on Ubuntu Server LTS (or Debian). Shared by every build
# path (vsphere-iso, qemu, the local smoke build). Idempotent: a second run changes nothing.
#
#   provision.sh RELEASE.tar.gz
#
# Installs Node.js and docker-registry from the distribution, the airgap release (built by
# `make package`) under /opt/airgap, `airgap` and `airgap-setup` on PATH, the systemd
# unit, a firewall that opens 22, 80, 443, 5000 and 8000 only, the data folder, and a
# login banner.
set -eu

release=${1:?usage: provision.sh RELEASE.tar.gz}
here=$(CDPATH='' cd -- "$(dirname -- "$0")" && pwd)
files="$here/../files"

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends nodejs docker-registry nftables openssl curl ca-certificates cloud-init open-vm-tools >/dev/null
# The distribution's registry runs under our daemon, not as its own service.
systemctl disable --now docker-registry.service 2>/dev/null || true

install -d -m 0755 /opt/airgap
tar -xzf "$release" -C /opt/airgap --no-same-owner
ln -sfn /opt/airgap/scripts/airgap /usr/local/bin/airgap
ln -sfn /opt/airgap/scripts/airgap-setup /usr/local/bin/airgap-setup

install -d -m 0700 /var/lib/airgap
install -m 0644 "$files/airgap.service" /etc/systemd/system/airgap.service
install -m 0644 "$files/airgap-firstboot.service" /etc/systemd/system/airgap-firstboot.service
install -m 0644 "$files/nftables.conf" /etc/nftables.conf
install -m 0644 "$files/motd" /etc/motd
systemctl daemon-reload
systemctl enable airgap.service airgap-firstboot.service nftables.service >/dev/null

# Password login over SSH stays off; keys come from the vApp properties at first boot.
install -d -m 0755 /etc/ssh/sshd_config.d
printf 'PasswordAuthentication no\nKbdInteractiveAuthentication no\nPermitRootLogin no\n' >/etc/ssh/sshd_config.d/60-airgap.conf
