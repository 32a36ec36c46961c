# The post-processor: a stand-in qcow2 made by the file builder is pushed as
# an OCI disk artifact linked to the node image, and signed.
source "file" "disk" {
  source = "standin.qcow2"
  target = "node.qcow2"
}

build {
  sources = ["source.file.disk"]

  post-processors {
    post-processor "prebake-push" {
      repository   = "${var.registry}/disks/node:1.36.4"
      source_image = var.source_image
      sign_key     = var.sign_key
      insecure     = true
    }
    post-processor "manifest" {
      output = "disk-manifest.json"
    }
  }
}
