#!/bin/sh
# Makes the provisioned machine a template: every VM deployed from the OVA gets its own SSH
# host keys, machine-id and first boot. Run last, after provision.sh. Idempotent.
set -eu

rm -f /etc/ssh/ssh_host_*
: >/etc/machine-id
if [ -d /var/lib/dbus ]; then ln -sf /etc/machine-id /var/lib/dbus/machine-id; fi
rm -f /var/lib/airgap/.firstboot-done /var/lib/systemd/random-seed

# The Ubuntu installer leaves its own cloud-init settings: datasource_list [None], its
# user-data (the build password, ssh_pwauth true) and network settings. Left there, a
# deployed VM would ignore the OVF environment and could take password logins again.
rm -f /etc/cloud/cloud.cfg.d/99-installer.cfg /etc/cloud/cloud.cfg.d/90-installer-network.cfg \
  /etc/cloud/cloud.cfg.d/subiquity-disable-cloudinit-networking.cfg \
  /etc/cloud/cloud.cfg.d/00-subiquity-disable-cloudinit-networking.cfg \
  /etc/cloud/cloud.cfg.d/curtin-preserve-sources.cfg /etc/cloud/ds-identify.cfg \
  /etc/cloud/cloud-init.disabled /etc/ssh/sshd_config.d/50-cloud-init.conf
if command -v cloud-init >/dev/null 2>&1; then cloud-init clean --logs >/dev/null 2>&1 || true; fi
# No password hash at all (passwd -l only prefixes it): keys from the vApp properties only.
if id ubuntu >/dev/null 2>&1; then usermod -p '*' ubuntu; fi

apt-get clean
rm -rf /var/lib/apt/lists/*
rm -f /root/.bash_history /home/*/.bash_history
if command -v journalctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then journalctl --rotate >/dev/null 2>&1 || true; fi
rm -rf /var/log/journal/*
find /var/log -type f -exec truncate -s 0 {} +
