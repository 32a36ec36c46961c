package ospkg_test

import (
	"archive/tar"
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/prebake/prebake/internal/testenv"
	"github.com/prebake/prebake/ospkg"
)

// The fixture is /var/lib/dpkg/status of a real Debian 12 root made by
// hack/debroot.sh (mmdebstrap --variant=minbase --include=iptables).
const fixture = "testdata/bookworm-minbase.status"

func TestParseRealStatus(t *testing.T) {
	f, err := os.Open(fixture)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	db, err := ospkg.ParseDpkgStatus(f, fixture)
	if err != nil {
		t.Fatal(err)
	}
	if db.Manager != ospkg.Dpkg || db.Source != fixture {
		t.Errorf("manager %q source %q", db.Manager, db.Source)
	}
	for _, p := range []string{"dpkg", "apt", "iptables", "libc6", "libc6:amd64", "debconf-2.0" /* provided by debconf */} {
		if !db.Installed(p) {
			t.Errorf("%s: not installed, want installed", p)
		}
	}
	got := db.Missing([]string{"conntrack", "iptables", "socat", "conntrack", " ", "dpkg", "libc6:arm64"})
	if want := []string{"conntrack", "socat", "libc6:arm64"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Missing = %q, want %q", got, want)
	}
	err = db.Check([]string{"iptables", "conntrack", "ethtool"})
	var me *ospkg.MissingError
	if !errors.Is(err, ospkg.ErrMissing) || !errors.As(err, &me) || !reflect.DeepEqual(me.Packages, []string{"conntrack", "ethtool"}) {
		t.Fatalf("Check = %v, want conntrack and ethtool missing", err)
	}
	if !strings.Contains(err.Error(), "conntrack, ethtool") || !strings.Contains(err.Error(), fixture) {
		t.Errorf("error %q does not name the packages and the database", err)
	}
	if err := db.Check([]string{"iptables", "apt"}); err != nil {
		t.Errorf("Check(installed) = %v", err)
	}
}

// The installed set agrees with dpkg-query reading the same file.
func TestParseAgreesWithDpkgQuery(t *testing.T) {
	testenv.Tool(t, "dpkg-query")
	adm := t.TempDir()
	raw, err := os.ReadFile(fixture)
	if err != nil {
		t.Fatal(err)
	}
	// A package removed with its configuration kept, and one half
	// installed: neither counts as installed.
	raw = append(raw, []byte("\nPackage: conntrack\nStatus: deinstall ok config-files\nPriority: optional\nSection: net\nArchitecture: amd64\nVersion: 1:1.4.7-1+b2\nConffiles:\n /etc/conntrackd/conntrackd.conf 0123\n\nPackage: socat\nStatus: install reinstreq half-installed\nArchitecture: amd64\nVersion: 1.7.4.4-2\n")...)
	if err := os.WriteFile(filepath.Join(adm, "status"), raw, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("dpkg-query", "--admindir="+adm, "-W", "-f", "${Package}:${Architecture} ${db:Status-Eflag} ${db:Status-Status}\n").Output()
	if err != nil {
		t.Fatalf("dpkg-query: %v", err)
	}
	var want []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(l)
		if len(f) == 3 && f[1] == "ok" && f[2] == "installed" {
			want = append(want, f[0])
		}
	}
	sort.Strings(want)
	db, err := ospkg.ParseDpkgStatus(bytes.NewReader(raw), "status")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range db.Packages() {
		got = append(got, p.Name+":"+p.Arch)
	}
	sort.Strings(got)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("installed packages differ from dpkg-query's:\n got %d %q\nwant %d %q", len(got), got, len(want), want)
	}
	if len(got) < 50 {
		t.Errorf("only %d packages installed in a Debian root", len(got))
	}
	if db.Installed("conntrack") || db.Installed("socat") {
		t.Error("a config-files or half-installed package counts as installed")
	}
}

func TestParseErrors(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"Package: a\nStatus: install ok installed\nnot a field\n", "status:3: malformed package database: want \"Field: value\""},
		{" continuation\n", "status:1: malformed package database: continuation line"},
		{"Status: install ok installed\n\n", "status:1: malformed package database: stanza without a Package field"},
		{"Package: a\nStatus: install ok installed\n\nPackage: b\nStatus: installed\n", "status:4: malformed package database: package b: Status \"installed\""},
	} {
		_, err := ospkg.ParseDpkgStatus(strings.NewReader(c.in), "status")
		if !errors.Is(err, ospkg.ErrSyntax) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: error %v, want %q", c.in, err, c.want)
		}
	}
}

func TestOpenDirectory(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "var/lib/dpkg"), 0o755); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(fixture)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, ospkg.DpkgStatus), raw, 0o644); err != nil {
		t.Fatal(err)
	}
	db, err := ospkg.Open(root)
	if err != nil {
		t.Fatal(err)
	}
	if !db.Installed("iptables") || db.Installed("conntrack") || db.Source != filepath.Join(root, ospkg.DpkgStatus) {
		t.Errorf("Open: iptables %v conntrack %v source %s", db.Installed("iptables"), db.Installed("conntrack"), db.Source)
	}

	empty := t.TempDir()
	if _, err := ospkg.Open(empty); !errors.Is(err, ospkg.ErrNoDatabase) || !strings.Contains(err.Error(), empty) {
		t.Errorf("Open(empty) = %v, want ErrNoDatabase naming the root", err)
	}
	rpm := t.TempDir()
	if err := os.MkdirAll(filepath.Join(rpm, "var/lib/rpm"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(rpm, "var/lib/rpm/rpmdb.sqlite"), []byte("SQLite format 3\x00"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ospkg.Open(rpm); !errors.Is(err, ospkg.ErrUnsupported) || !strings.Contains(err.Error(), "RPM") {
		t.Errorf("Open(rpm root) = %v, want ErrUnsupported saying RPM", err)
	}
}

func TestReadTar(t *testing.T) {
	raw, err := os.ReadFile(fixture)
	if err != nil {
		t.Fatal(err)
	}
	tarOf := func(files map[string]string) *bytes.Buffer {
		var b bytes.Buffer
		tw := tar.NewWriter(&b)
		names := make([]string, 0, len(files))
		for n := range files {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			tw.WriteHeader(&tar.Header{Name: n, Mode: 0o644, Size: int64(len(files[n])), Typeflag: tar.TypeReg})
			tw.Write([]byte(files[n]))
		}
		tw.Close()
		return &b
	}
	db, err := ospkg.ReadTar(tarOf(map[string]string{"./etc/hostname": "x\n", "./var/lib/dpkg/status": string(raw)}), "base.tar")
	if err != nil {
		t.Fatal(err)
	}
	if !db.Installed("apt") || db.Installed("conntrack") || db.Source != "base.tar:var/lib/dpkg/status" {
		t.Errorf("ReadTar: apt %v conntrack %v source %s", db.Installed("apt"), db.Installed("conntrack"), db.Source)
	}
	if _, err := ospkg.ReadTar(tarOf(map[string]string{"etc/hostname": "x\n"}), "layer"); !errors.Is(err, ospkg.ErrNoDatabase) {
		t.Errorf("ReadTar(no database) = %v, want ErrNoDatabase", err)
	}
	if _, err := ospkg.ReadTar(tarOf(map[string]string{"usr/lib/sysimage/rpm/rpmdb.sqlite": "SQLite format 3\x00"}), "fedora.tar"); !errors.Is(err, ospkg.ErrUnsupported) || !strings.Contains(err.Error(), "fedora.tar:usr/lib/sysimage/rpm/rpmdb.sqlite") {
		t.Errorf("ReadTar(rpm) = %v, want ErrUnsupported naming the file", err)
	}
	if _, err := ospkg.ReadTar(strings.NewReader("not a tar archive, long enough to fill a header block"+strings.Repeat(".", 600)), "junk"); err == nil || !strings.Contains(err.Error(), "junk") {
		t.Errorf("ReadTar(junk) = %v", err)
	}
}

func TestSplit(t *testing.T) {
	if got := ospkg.Split(" conntrack, socat,,iptables "); !reflect.DeepEqual(got, []string{"conntrack", "socat", "iptables"}) {
		t.Errorf("Split = %q", got)
	}
	if got := ospkg.Split(""); got != nil {
		t.Errorf("Split(\"\") = %q", got)
	}
}
