// Command packer-plugin-prebake is prebake's Packer plugin: a builder that
// builds a recipe into a node image, a provisioner that applies a verified
// image to any Packer machine, a post-processor that publishes disk images
// as signed OCI artifacts, and a data source that resolves a channel to a
// verified digest. It speaks Packer's plugin protocol (including `describe`,
// which `packer plugins install --path` runs) and nothing else: all the work
// is done by prebake's libraries. The cloud KMS providers are linked only
// into the kms build (kms.go, `make plugin-kms`), as in cmd/prebake.
package main

import (
	"fmt"
	"os"

	"github.com/hashicorp/packer-plugin-sdk/plugin"
	"github.com/hashicorp/packer-plugin-sdk/version"

	"github.com/prebake/prebake/packer/builder/prebake"
	"github.com/prebake/prebake/packer/datasource/image"
	"github.com/prebake/prebake/packer/post-processor/push"
	provisioner "github.com/prebake/prebake/packer/provisioner/prebake"
)

// Version and VersionPrerelease are set with -ldflags -X at release time.
var (
	Version           = "0.1.0"
	VersionPrerelease = "dev"
)

func main() {
	set := plugin.NewSet()
	set.RegisterBuilder(plugin.DEFAULT_NAME, new(prebake.Builder))
	set.RegisterProvisioner(plugin.DEFAULT_NAME, new(provisioner.Provisioner))
	set.RegisterPostProcessor("push", new(push.PostProcessor))
	set.RegisterDatasource("image", new(image.Datasource))
	set.SetVersion(version.NewPluginVersion(Version, VersionPrerelease, ""))
	if err := set.Run(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
