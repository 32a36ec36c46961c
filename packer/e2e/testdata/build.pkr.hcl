# The builder: the quickstart recipe, sources from the stand-in mirror,
# written to a layout, pushed to the loopback registry and signed there.
source "prebake" "node" {
  recipe   = var.recipe
  mirrors  = var.mirrors
  output   = "oci:out/quickstart"
  push     = "${var.registry}/nodes/quickstart"
  insecure = true
  sign_key = var.sign_key
}

build {
  sources = ["source.prebake.node"]

  # Provisioners without a machine see the image as build variables.
  provisioner "shell-local" {
    inline = ["echo \"built ${build.PrebakeDigest} pushed ${build.PrebakePushed}\""]
  }

  post-processor "manifest" {
    output = "build-manifest.json"
  }
}
