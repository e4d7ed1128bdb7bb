#!/bin/sh
# Builds the appliance's disk for the local smoke boot (`make ova-smoke`) from Debian's own
# packages, where no Ubuntu ISO can be downloaded: debootstrap a root, provision it with the
# same provision.sh and seal.sh as the Packer builds, then lay it out as a BIOS-bootable raw
# disk (MBR, one ext4 partition at 1 MiB, GRUB in the gap) without loop devices.
#
#   build-disk.sh RELEASE.tar.gz OUT.raw
#
# Needs root (debootstrap, chroot, mounts inside the chroot), debootstrap, sfdisk,
# mkfs.ext4 (e2fsprogs >= 1.43 for -d), grub-mkimage and /usr/lib/grub/i386-pc.
# Settings (environment):
#   AIRGAP_SMOKE_SUITE    Debian suite (default: this machine's on Debian, else bookworm)
#   AIRGAP_SMOKE_MIRROR   Debian mirror (default: this machine's apt source)
#   AIRGAP_SMOKE_DISK_GB  disk size, thin (default 100, as the Packer template)
#   AIRGAP_SMOKE_CACHE    folder that keeps the downloaded .deb files between runs
set -eu

release=${1:?usage: build-disk.sh RELEASE.tar.gz OUT.raw}
out=${2:?usage: build-disk.sh RELEASE.tar.gz OUT.raw}
here=$(CDPATH='' cd -- "$(dirname -- "$0")" && pwd)
packer_dir=$(dirname "$here")

fail() { echo "build-disk: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || fail "needs root (debootstrap and chroot); run: sudo sh $0 $*"
for tool in debootstrap sfdisk mkfs.ext4 grub-mkimage; do
  command -v "$tool" >/dev/null 2>&1 || fail "$tool is missing; run: sudo apt-get install debootstrap fdisk e2fsprogs grub-pc-bin"
done
[ -f /usr/lib/grub/i386-pc/boot.img ] || fail "/usr/lib/grub/i386-pc is missing; run: sudo apt-get install grub-pc-bin"
[ -f "$release" ] || fail "no release tarball at $release; run: make package"

# The host's own suite on a Debian host, else bookworm (an Ubuntu codename is not on a Debian mirror).
host_suite=$(if . /etc/os-release 2>/dev/null && [ "${ID:-}" = debian ]; then echo "${VERSION_CODENAME:-}"; fi)
suite=${AIRGAP_SMOKE_SUITE:-${host_suite:-bookworm}}
host_mirror=$(sed -n 's/^URIs: *\([^ ]*debian\/*\)$/\1/p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -n 1)
mirror=${AIRGAP_SMOKE_MIRROR:-${host_mirror:-http://deb.debian.org/debian}}
disk_gb=${AIRGAP_SMOKE_DISK_GB:-100}
cache=${AIRGAP_SMOKE_CACHE:-}

work=$(mktemp -d "${TMPDIR:-/tmp}/airgap-disk.XXXXXX")
root="$work/root"
unmount_all() {
  for m in dev/pts dev proc sys; do
    mountpoint -q "$root/$m" 2>/dev/null && umount -l "$root/$m"
  done
  return 0
}
cleanup() {
  unmount_all
  # Never follow a mount that is still there (the chroot's /dev is the host's).
  if grep -q " $root/" /proc/mounts; then
    echo "build-disk: $root still has mounts; leaving $work in place" >&2
  else
    rm -rf --one-file-system "$work"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step() { printf '%s build-disk: %s\n' "$(date +%H:%M:%S)" "$*"; }

step "debootstrap $suite from $mirror"
cache_flag=""
if [ -n "$cache" ]; then mkdir -p "$cache"; cache_flag="--cache-dir=$(CDPATH='' cd -- "$cache" && pwd)"; fi
# shellcheck disable=SC2086
debootstrap --variant=minbase $cache_flag \
  --include=systemd-sysv,systemd-resolved,udev,kmod,dbus,iproute2,procps,linux-image-amd64,initramfs-tools,e2fsprogs \
  "$suite" "$root" "$mirror" >"$work/debootstrap.log" 2>&1 || { tail -n 20 "$work/debootstrap.log" >&2; fail "debootstrap failed"; }

uuid=$(cat /proc/sys/kernel/random/uuid)
printf 'UUID=%s / ext4 errors=remount-ro 0 1\n' "$uuid" >"$root/etc/fstab"
printf 'airgap\n' >"$root/etc/hostname"
printf '127.0.0.1 localhost\n127.0.1.1 airgap\n::1 localhost ip6-localhost ip6-loopback\n' >"$root/etc/hosts"

step "provision (packer/scripts/provision.sh, seal.sh) in a chroot"
mount -t proc proc "$root/proc"
mount -t sysfs sys "$root/sys"
mount --bind /dev "$root/dev"
mount --bind /dev/pts "$root/dev/pts"
# No service starts inside the chroot.
printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
chmod 0755 "$root/usr/sbin/policy-rc.d"
# apt in the chroot resolves with this machine's resolver. The image's own resolv.conf is
# systemd-resolved's stub link: kept aside (writing through that absolute link would
# land in this machine's /run), put back afterwards.
resolv_link=$(readlink "$root/etc/resolv.conf" || true)
rm -f "$root/etc/resolv.conf"
cp /etc/resolv.conf "$root/etc/resolv.conf"
install -d "$root/tmp/airgap-provision"
cp -r "$packer_dir/scripts" "$packer_dir/files" "$root/tmp/airgap-provision/"
cp "$release" "$root/tmp/airgap-provision/airgap-release.tar.gz"
provision() { chroot "$root" sh /tmp/airgap-provision/scripts/provision.sh /tmp/airgap-provision/airgap-release.tar.gz; }
# What provisioning owns, by content: a second run must not change a byte of it.
fingerprint() {
  chroot "$root" sh -c 'find /etc /opt/airgap /usr/local/bin /var/lib/airgap /home -xdev \( -type f -o -type l \) -print0 | sort -z | xargs -0 sha256sum 2>/dev/null; find /etc /opt/airgap /usr/local/bin /var/lib/airgap /home -xdev -printf "%m %u %g %p\n" | sort' >"$1"
}
provision
fingerprint "$work/first.txt"
step "provision again: it must change nothing"
provision
fingerprint "$work/second.txt"
if ! diff -u "$work/first.txt" "$work/second.txt" >"$work/idempotence.diff"; then
  head -n 40 "$work/idempotence.diff" >&2
  fail "provision.sh is not idempotent: its second run changed the files above"
fi
chroot "$root" sh /tmp/airgap-provision/scripts/seal.sh
rm -rf "$root/tmp/airgap-provision" "$root/usr/sbin/policy-rc.d"
rm -f "$root/etc/resolv.conf"
if [ -n "$resolv_link" ]; then ln -s "$resolv_link" "$root/etc/resolv.conf"; else : >"$root/etc/resolv.conf"; fi
unmount_all

kernel=$(find "$root/boot" -maxdepth 1 -name "vmlinuz-*" -printf "%f\n" | sort -V | tail -n 1)
initrd="initrd.img-${kernel#vmlinuz-}"
[ -f "$root/boot/$initrd" ] || fail "no $initrd in the image"
install -d "$root/boot/grub"
cat >"$root/boot/grub/grub.cfg" <<GRUB
# airgap appliance (smoke build): BIOS boot, serial and VGA consoles.
serial --unit=0 --speed=115200
terminal_input console serial
terminal_output console serial
set timeout=1
menuentry 'airgap appliance' {
  search --no-floppy --fs-uuid --set=root $uuid
  linux /boot/$kernel root=UUID=$uuid ro console=tty0 console=ttyS0,115200n8
  initrd /boot/$initrd
}
GRUB

step "disk: ${disk_gb} GB thin, MBR, ext4 at 1 MiB, GRUB"
rm -f "$out"
truncate -s "${disk_gb}G" "$out"
printf 'label: dos\nstart=2048, type=83, bootable\n' | sfdisk --quiet "$out"
part_bytes=$(( disk_gb * 1024 * 1024 * 1024 - 1048576 ))
mkfs.ext4 -q -F -L airgap-root -U "$uuid" -E offset=1048576 -d "$root" "$out" "$(( part_bytes / 1024 ))k"
grub-mkimage -O i386-pc -o "$work/core.img" -p '(hd0,msdos1)/boot/grub' \
  biosdisk part_msdos ext2 normal linux search search_fs_uuid serial terminal echo test gzio
core_sectors=$(( ($(stat -c %s "$work/core.img") + 511) / 512 ))
[ "$core_sectors" -lt 2047 ] || fail "GRUB core image ($core_sectors sectors) does not fit before the partition"
# boot.img's code goes before the partition table; core.img right after the MBR, where
# boot.img looks by default (sector 1) and whose block list grub-mkimage already filled in.
dd if=/usr/lib/grub/i386-pc/boot.img of="$out" bs=440 count=1 conv=notrunc status=none
dd if="$work/core.img" of="$out" bs=512 seek=1 conv=notrunc status=none
step "wrote $out ($(du -h "$out" | cut -f1) used of ${disk_gb} GB)"
