# The data source resolves the "stable" channel to a verified digest; the
# provisioner applies that digest over SSH under a scratch root.
data "prebake-image" "node" {
  repository = "${var.registry}/nodes/quickstart"
  channel    = "stable"
  public_key = var.public_key
  insecure   = true
}

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
    image      = data.prebake-image.node.reference
    public_key = var.public_key
    root       = var.root
    insecure   = true
  }

  provisioner "shell-local" {
    inline = ["echo \"applied ${data.prebake-image.node.digest}, kubernetes ${data.prebake-image.node.kubernetes_version}\""]
  }
}
