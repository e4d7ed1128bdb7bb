#!/bin/sh
# Installs the system packages the appliance and its tests use, when any is missing:
# docker-registry, skopeo, umoci, busybox-static, openssl, curl, shellcheck, chromium, packer,
# python3 (its http.server is the tests' static Helm chart repository), and the node-side
# clients node-config's files are tested with: podman and containerd (ctr), and Prometheus
# (prometheus and promtool) for /metrics.
# With --ova, also what `make ova-smoke` builds and boots the appliance with: debootstrap,
# sfdisk, mkfs.ext4, GRUB's BIOS images, qemu-img, qemu-system-x86_64 and genisoimage.
# Debian/Ubuntu only; needs root (or sudo) the first time. Idempotent: does nothing when all are there.
set -eu

need=""
if [ "${1:-}" = "--ova" ]; then
  command -v debootstrap >/dev/null 2>&1 || [ -x /usr/sbin/debootstrap ] || need="$need debootstrap"
  [ -x /usr/sbin/sfdisk ] || need="$need fdisk"
  [ -x /usr/sbin/mkfs.ext4 ] || need="$need e2fsprogs"
  [ -f /usr/lib/grub/i386-pc/boot.img ] || need="$need grub-pc-bin"
  command -v qemu-img >/dev/null 2>&1 || need="$need qemu-utils"
  command -v qemu-system-x86_64 >/dev/null 2>&1 || need="$need qemu-system-x86"
  command -v genisoimage >/dev/null 2>&1 || need="$need genisoimage"
fi
command -v docker-registry >/dev/null 2>&1 || need="$need docker-registry"
command -v skopeo >/dev/null 2>&1 || need="$need skopeo"
command -v umoci >/dev/null 2>&1 || need="$need umoci"
[ -x /bin/busybox ] && /bin/busybox --list >/dev/null 2>&1 && dpkg -s busybox-static >/dev/null 2>&1 || need="$need busybox-static"
command -v openssl >/dev/null 2>&1 || need="$need openssl"
command -v curl >/dev/null 2>&1 || need="$need curl"
command -v python3 >/dev/null 2>&1 || need="$need python3"
command -v podman >/dev/null 2>&1 || need="$need podman"
command -v containerd >/dev/null 2>&1 && command -v ctr >/dev/null 2>&1 || need="$need containerd"
command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1 || need="$need prometheus"
command -v shellcheck >/dev/null 2>&1 || need="$need shellcheck"
# The console's browser tests drive Debian's Chromium through playwright-core (never a downloaded browser).
[ -x /usr/bin/chromium ] || need="$need chromium"
# The OVA template is checked with Debian's Packer (packer validate -syntax-only).
command -v packer >/dev/null 2>&1 || need="$need packer"

[ -z "$need" ] && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
  echo "bootstrap: missing:$need, and this is not a Debian/Ubuntu machine (no apt-get); install them by hand." >&2
  exit 1
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
    echo "bootstrap: missing:$need; run as root or install sudo." >&2; exit 1
  fi
fi
echo "bootstrap: installing$need"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
# shellcheck disable=SC2086
$sudo apt-get install -y -qq --no-install-recommends $need >/dev/null
