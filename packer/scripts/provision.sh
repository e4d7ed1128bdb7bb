#!/bin/sh
# Provisions the airgap appliance on Ubuntu Server LTS (or Debian). Shared by every build
# path (vsphere-iso, qemu, the local smoke build of `make ova-smoke`). Idempotent: a second
# run changes nothing.
#
#   provision.sh RELEASE.tar.gz
#
# Installs docker-registry from the distribution, the airgap release (built by `make
# package`, with the Node.js its native modules were built for) under /opt/airgap, `airgap`
# and `airgap-setup` on PATH, the systemd units, a firewall that opens 22, 80, 443, 5000
# and 8000 only, the data folder, the `ubuntu` user (sudo, no password), a DHCP network
# that first boot may replace with a static one, and a login banner.
set -eu

release=${1:?usage: provision.sh RELEASE.tar.gz}
here=$(CDPATH='' cd -- "$(dirname -- "$0")" && pwd)
files="$here/../files"

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends docker-registry nftables openssl curl ca-certificates \
  openssh-server sudo netplan.io cloud-init open-vm-tools >/dev/null
# The distribution's registry runs under our daemon, not as its own service.
systemctl disable --now docker-registry.service 2>/dev/null || true

# The release goes in whole: a fresh folder swapped in, so no file of an older one lingers;
# modes from the umask, not the tarball. Its Node.js must load its native modules here.
rm -rf /opt/airgap.new /opt/airgap.old
install -d -m 0755 /opt/airgap.new
tar -xzf "$release" -C /opt/airgap.new --no-same-owner --no-same-permissions
chmod -R go-w /opt/airgap.new
/opt/airgap.new/runtime/bin/node -e "new (require('/opt/airgap.new/node_modules/better-sqlite3'))(':memory:').close()" ||
  { echo "provision: the release's Node.js cannot load better-sqlite3 on this system (built for another glibc?)" >&2; exit 1; }
if [ -d /opt/airgap ]; then mv /opt/airgap /opt/airgap.old; fi
mv /opt/airgap.new /opt/airgap
rm -rf /opt/airgap.old
ln -sfn /opt/airgap/scripts/airgap /usr/local/bin/airgap
ln -sfn /opt/airgap/scripts/airgap-setup /usr/local/bin/airgap-setup

# The admin account: keys only (first boot writes them), sudo without a password.
id ubuntu >/dev/null 2>&1 || useradd --create-home --shell /bin/bash ubuntu
usermod -a -G sudo ubuntu
passwd -l ubuntu >/dev/null
sudoers=$(mktemp)
printf 'ubuntu ALL=(ALL) NOPASSWD:ALL\n' >"$sudoers"
visudo -cqf "$sudoers"
install -m 0440 "$sudoers" /etc/sudoers.d/90-airgap-ubuntu
rm -f "$sudoers"

# Network: DHCP on every ethernet port until first boot writes a static 60-airgap.yaml
# (same id, so it overrides). The installer's own file names the build machine's port.
rm -f /etc/netplan/00-installer-config.yaml /etc/netplan/50-cloud-init.yaml
install -d -m 0755 /etc/netplan
install -m 0600 "$files/netplan-dhcp.yaml" /etc/netplan/01-airgap.yaml
# cloud-init reads the OVF environment too (keys for `ubuntu`, host name); the network is ours.
install -d -m 0755 /etc/cloud/cloud.cfg.d
install -m 0644 "$files/cloud-init.cfg" /etc/cloud/cloud.cfg.d/90-airgap.cfg

install -d -m 0700 /var/lib/airgap
install -m 0644 "$files/airgap.service" /etc/systemd/system/airgap.service
install -m 0644 "$files/airgap-firstboot.service" /etc/systemd/system/airgap-firstboot.service
install -m 0644 "$files/nftables.conf" /etc/nftables.conf
install -m 0644 "$files/motd" /etc/motd
# In a chroot (the smoke build) systemd is not running: enabling works offline, reloading does not.
if [ -d /run/systemd/system ]; then systemctl daemon-reload; fi
systemctl enable airgap.service airgap-firstboot.service nftables.service systemd-networkd.service ssh.service

# Password login over SSH stays off; keys come from the vApp properties at first boot.
# sshd keeps the first value it reads, and reads the drop-ins in name order: 00- wins over
# anything cloud-init or an installer writes (50-cloud-init.conf).
install -d -m 0755 /etc/ssh/sshd_config.d
rm -f /etc/ssh/sshd_config.d/60-airgap.conf
printf 'PasswordAuthentication no\nKbdInteractiveAuthentication no\nPermitRootLogin no\n' >/etc/ssh/sshd_config.d/00-airgap.conf
