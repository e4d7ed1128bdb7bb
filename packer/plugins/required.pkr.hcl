# Plugins for current Packer (1.7+), which no longer bundles the builders:
#   packer init packer/plugins && packer build packer/
# Kept apart so that Debian's Packer (1.6, builders built in) validates the template.
packer {
  required_plugins {
    vsphere = {
      source  = "github.com/hashicorp/vsphere"
      version = ">= 1.2.0"
    }
    qemu = {
      source  = "github.com/hashicorp/qemu"
      version = ">= 1.1.0"
    }
  }
}
