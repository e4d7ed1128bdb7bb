# The airgap appliance OVA (docs/architecture.md, "What runs on the box"). Two sources share one build:
#   vsphere-iso  for sites that build in their own vCenter (exports an OVA);
#   qemu         for building anywhere with KVM or software emulation.
# Ubuntu Server LTS installs unattended (autoinstall, http/user-data); the same
# provisioning scripts run on both. The vApp properties (SSH keys, host name, static
# network) are in ovf/airgap.ovf; first boot applies them (scripts/firstboot.sh).
# Plugin requirements for current Packer: plugins/required.pkr.hcl (packer init packer/plugins).
# Check: packer validate -syntax-only packer/

variable "release_tarball" {
  type        = string
  description = "The appliance release built by 'make package'."
  default     = "../dist/airgap-release.tar.gz"
}

variable "iso_url" {
  type    = string
  default = "https://releases.ubuntu.com/22.04/ubuntu-22.04.4-live-server-amd64.iso"
}

variable "iso_checksum" {
  type    = string
  default = "sha256:45f873de9f8cb637345d6e66a583762730bbea30277ef7b32c9c3bd6700a32b2"
}

variable "vcenter_server" {
  type    = string
  default = ""
}

variable "vcenter_username" {
  type    = string
  default = ""
}

variable "vcenter_password" {
  type      = string
  default   = ""
  sensitive = true
}

variable "vcenter_datacenter" {
  type    = string
  default = ""
}

variable "vcenter_cluster" {
  type    = string
  default = ""
}

variable "vcenter_datastore" {
  type    = string
  default = ""
}

variable "vcenter_network" {
  type    = string
  default = "VM Network"
}

variable "build_password" {
  type        = string
  description = "Password of the 'ubuntu' user during the build only; SSH password login is off in the OVA."
  default     = "airgap-build"
  sensitive   = true
}

locals {
  vm_name      = "airgap-appliance"
  cpus         = 2
  memory_mb    = 4096
  disk_mb      = 102400
  boot_command = ["<wait3>c<wait>linux /casper/vmlinuz autoinstall ds=nocloud-net\\;s=http://{{ .HTTPIP }}:{{ .HTTPPort }}/ ---<enter><wait>initrd /casper/initrd<enter><wait>boot<enter>"]
}

source "vsphere-iso" "airgap" {
  vcenter_server      = var.vcenter_server
  username            = var.vcenter_username
  password            = var.vcenter_password
  insecure_connection = false
  datacenter          = var.vcenter_datacenter
  cluster             = var.vcenter_cluster
  datastore           = var.vcenter_datastore
  vm_name             = local.vm_name
  guest_os_type       = "ubuntu64Guest"
  CPUs                = local.cpus
  RAM                 = local.memory_mb
  storage {
    disk_size             = local.disk_mb
    disk_thin_provisioned = true
  }
  network_adapters {
    network      = var.vcenter_network
    network_card = "vmxnet3"
  }
  iso_urls      = [var.iso_url]
  iso_checksum  = var.iso_checksum
  http_directory = "http"
  boot_wait     = "5s"
  boot_command  = local.boot_command
  ssh_username  = "ubuntu"
  ssh_password  = var.build_password
  ssh_timeout   = "45m"
  shutdown_command = "sudo shutdown -P now"
  export {
    output_directory = "output-vsphere"
    force            = true
  }
}

source "qemu" "airgap" {
  vm_name          = "${local.vm_name}.qcow2"
  iso_url          = var.iso_url
  iso_checksum     = var.iso_checksum
  cpus             = local.cpus
  memory           = local.memory_mb
  disk_size        = local.disk_mb
  format           = "qcow2"
  disk_interface   = "virtio"
  net_device       = "virtio-net"
  headless         = true
  http_directory   = "http"
  boot_wait        = "5s"
  boot_command     = local.boot_command
  ssh_username     = "ubuntu"
  ssh_password     = var.build_password
  ssh_timeout      = "90m"
  shutdown_command = "sudo shutdown -P now"
  output_directory = "output-qemu"
}

build {
  sources = ["source.vsphere-iso.airgap", "source.qemu.airgap"]

  provisioner "file" {
    source      = var.release_tarball
    destination = "/tmp/airgap-release.tar.gz"
  }

  provisioner "file" {
    source      = "."
    destination = "/tmp/packer"
  }

  provisioner "shell" {
    execute_command = "echo '${var.build_password}' | sudo -S sh -c '{{ .Vars }} {{ .Path }}'"
    # provision.sh locks the build password (keys only from here on); seal.sh removes the
    # host keys, machine-id and cloud-init state so every deployed VM gets its own.
    inline = [
      "sh /tmp/packer/scripts/provision.sh /tmp/airgap-release.tar.gz",
      "rm -f /tmp/airgap-release.tar.gz",
      "sh /tmp/packer/scripts/seal.sh",
      # The uploaded template folder holds the autoinstall user-data (the build password's hash).
      "rm -rf /tmp/packer",
    ]
  }

  # qemu: the OVA with our OVF descriptor (the vApp properties) around a stream-optimised VMDK.
  post-processor "shell-local" {
    only   = ["qemu.airgap"]
    inline = ["sh scripts/make-ova.sh output-qemu/${local.vm_name}.qcow2 ovf/airgap.ovf output-qemu/${local.vm_name}.ova"]
  }
}
