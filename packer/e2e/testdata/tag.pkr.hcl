# packer validate must refuse this: the provisioner names the image by tag.
source "null" "machine" {
  communicator         = "ssh"
  ssh_host             = "127.0.0.1"
  ssh_port             = var.ssh_port
  ssh_username         = "root"
  ssh_private_key_file = var.ssh_key
}

build {
  sources = ["source.null.machine"]

  provisioner "prebake" {
    image      = "${var.registry}/nodes/quickstart:1.36.4"
    public_key = var.public_key
  }
}
