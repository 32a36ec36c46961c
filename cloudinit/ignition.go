package cloudinit

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// IgnitionVersion is the Ignition config spec version rendered.
const IgnitionVersion = "3.3.0"

// Ignition writes files from the initramfs into the real root, where /run is
// a fresh tmpfs after switch-root; so the join files live under /etc/prebake
// and a oneshot unit joins.
const (
	ignitionDir        = "/etc/prebake"
	ignitionJoinConfig = ignitionDir + "/kubeadm-join.yaml"
	ignitionJoinUnit   = "prebake-join.service"
)

// Ignition 3.3.0 config types (the subset prebake writes).
type ignConfig struct {
	Ignition ignIgnition `json:"ignition"`
	Passwd   *ignPasswd  `json:"passwd,omitempty"`
	Storage  *ignStorage `json:"storage,omitempty"`
	Systemd  *ignSystemd `json:"systemd,omitempty"`
}

type ignIgnition struct {
	Version string         `json:"version"`
	Config  *ignConfigRefs `json:"config,omitempty"`
}

type ignConfigRefs struct {
	Replace *ignResource `json:"replace,omitempty"`
}

type ignResource struct {
	Source string `json:"source"`
}

type ignPasswd struct {
	Users []ignUser `json:"users"`
}

type ignUser struct {
	Name              string   `json:"name"`
	SSHAuthorizedKeys []string `json:"sshAuthorizedKeys,omitempty"`
}

type ignStorage struct {
	Files []ignFile `json:"files,omitempty"`
}

type ignNodeUser struct {
	Name string `json:"name"`
}

type ignFile struct {
	Path      string      `json:"path"`
	Overwrite bool        `json:"overwrite"`
	Mode      int         `json:"mode"`
	User      ignNodeUser `json:"user"`
	Group     ignNodeUser `json:"group"`
	Contents  ignResource `json:"contents"`
}

type ignSystemd struct {
	Units []ignUnit `json:"units"`
}

type ignUnit struct {
	Name     string      `json:"name"`
	Enabled  *bool       `json:"enabled,omitempty"`
	Contents string      `json:"contents,omitempty"`
	Dropins  []ignDropin `json:"dropins,omitempty"`
}

type ignDropin struct {
	Name     string `json:"name"`
	Contents string `json:"contents"`
}

func dataURL(b []byte) string {
	return "data:;base64," + base64.StdEncoding.EncodeToString(b)
}

func ignitionFile(f outFile) ignFile {
	mode, _ := strconv.ParseInt(f.mode, 8, 32)
	user, group, _ := strings.Cut(f.owner, ":")
	return ignFile{
		Path:      f.path,
		Overwrite: true,
		Mode:      int(mode),
		User:      ignNodeUser{Name: user},
		Group:     ignNodeUser{Name: group},
		Contents:  ignResource{Source: dataURL(f.content)},
	}
}

// ignitionJoinUnitText is the oneshot unit that joins on first boot.
func ignitionJoinUnitText(header string) string {
	return fmt.Sprintf(`# %s
[Unit]
Description=kubeadm join (rendered by prebake)
Wants=network-online.target
After=network-online.target containerd.service
ConditionPathExists=!/etc/kubernetes/kubelet.conf

[Service]
Type=oneshot
RemainAfterExit=yes
Environment=PATH=/opt/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
ExecStart=/bin/sh -c 'kubeadm join --config %s'
ExecStartPost=/bin/sh -c 'mkdir -p /run/cluster-api && echo success > %s'

[Install]
WantedBy=multi-user.target
`, header, ignitionJoinConfig, SentinelPath)
}

// ignition renders the Ignition 3.3.0 config: the same files as the
// cloud-config (as data: URLs), proxy drop-ins on containerd and kubelet, and
// the oneshot join unit.
func (d *doc) ignition() ([]byte, error) {
	cfg := ignConfig{Ignition: ignIgnition{Version: IgnitionVersion}}
	if len(d.sshKeys) > 0 {
		cfg.Passwd = &ignPasswd{Users: []ignUser{{Name: "core", SSHAuthorizedKeys: d.sshKeys}}}
	}
	st := &ignStorage{}
	if d.hostname != "" {
		st.Files = append(st.Files, ignitionFile(outFile{path: "/etc/hostname", content: []byte(d.hostname + "\n"), mode: "0644", owner: "root:root"}))
	}
	if d.ntp != nil {
		all := append(append([]string(nil), d.ntp.Servers...), d.ntp.Pools...)
		conf := "# rendered by prebake\n[Time]\nNTP=" + strings.Join(all, " ") + "\n"
		st.Files = append(st.Files, ignitionFile(outFile{path: "/etc/systemd/timesyncd.conf.d/prebake-ntp.conf", content: []byte(conf), mode: "0644", owner: "root:root"}))
	}
	for _, f := range d.files {
		if f.path == containerdProxyDropIn || f.path == kubeletProxyDropIn {
			continue // dropins below
		}
		st.Files = append(st.Files, ignitionFile(f))
	}
	st.Files = append(st.Files, ignitionFile(outFile{path: ignitionJoinConfig, content: d.joinConfig, mode: "0600", owner: "root:root"}))
	cfg.Storage = st
	enabled := true
	units := []ignUnit{}
	if d.proxyConf != nil {
		units = append(units,
			ignUnit{Name: "containerd.service", Dropins: []ignDropin{{Name: "http-proxy.conf", Contents: string(d.proxyConf)}}},
			ignUnit{Name: "kubelet.service", Dropins: []ignDropin{{Name: "http-proxy.conf", Contents: string(d.proxyConf)}}})
	}
	units = append(units, ignUnit{Name: ignitionJoinUnit, Enabled: &enabled, Contents: ignitionJoinUnitText(d.header)})
	cfg.Systemd = &ignSystemd{Units: units}
	return marshalIgnition(&cfg)
}

func marshalIgnition(cfg *ignConfig) ([]byte, error) {
	out, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encoding ignition: %w", err)
	}
	return append(out, '\n'), nil
}

// ignitionFetch is an Ignition config that replaces itself with the one at url.
func ignitionFetch(url string) ([]byte, error) {
	return marshalIgnition(&ignConfig{Ignition: ignIgnition{
		Version: IgnitionVersion,
		Config:  &ignConfigRefs{Replace: &ignResource{Source: url}},
	}})
}
