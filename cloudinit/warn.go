package cloudinit

import "fmt"

// Warnings lists what is allowed in nc but deserves a second look before
// its user-data is handed to a cloud: today, files that carry a private
// key (user-data is readable through the instance metadata service by
// anything on the machine that can reach it). Warnings never hold file
// content. Pure: Load has read the files already.
func Warnings(nc *NodeConfig) []string {
	var out []string
	for i, f := range nc.Files {
		if !hasPrivateKey(f.Content) {
			continue
		}
		field := fmt.Sprintf("files[%d]", i)
		if f.ContentFile != "" {
			field += fmt.Sprintf(" (contentFile %s)", f.ContentFile)
		}
		out = append(out, fmt.Sprintf("node %s: %s: %s holds a private key; user-data is readable through the instance metadata service (written %s; consider --bootstrap-url)",
			nc.Node.Name, field, f.Path, fileMode(&f)))
	}
	return out
}
