package agent

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// HostsPath is the hosts file the node's own name is added to.
const HostsPath = "/etc/hosts"

// HostsAddress is the address the node's name gets in HostsPath: Debian's
// for the machine's own name. kubeadm's preflight only needs the name to
// resolve (without the line it waits for DNS, ~8 s on a network with none
// for it); the kubelet skips loopback addresses when it picks the node IP.
const HostsAddress = "127.0.1.1"

// HostsLine is the line AddHost appends for name (cloud-init's path of the
// same user-data appends the same line).
func HostsLine(name string) string { return HostsAddress + " " + name + "\n" }

// AddHost makes name resolve through root's HostsPath: unless a line already
// lists it, HostsLine(name) is appended (the file is created 0644 if missing).
// A second call, or a second boot, changes nothing.
func AddHost(root, name string) error {
	if name == "" {
		return nil
	}
	p := filepath.Join(root, HostsPath)
	b, err := os.ReadFile(p)
	if err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("reading %s: %w", HostsPath, err)
	}
	if hostsHas(b, name) {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return fmt.Errorf("adding %s to %s: %w", name, HostsPath, err)
	}
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("adding %s to %s: %w", name, HostsPath, err)
	}
	line := HostsLine(name)
	if len(b) > 0 && b[len(b)-1] != '\n' {
		line = "\n" + line
	}
	_, err = f.WriteString(line)
	if serr := f.Sync(); err == nil {
		err = serr
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("adding %s to %s: %w", name, HostsPath, err)
	}
	return nil
}

// hostsHas reports whether a hosts file lists name (case-insensitive, as the
// resolver compares) on any line, comments aside.
func hostsHas(b []byte, name string) bool {
	for _, line := range bytes.Split(b, []byte("\n")) {
		if i := bytes.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(string(line))
		if len(f) < 2 {
			continue
		}
		for _, h := range f[1:] {
			if strings.EqualFold(h, name) {
				return true
			}
		}
	}
	return false
}
