package datasource

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prebake/prebake/internal/testenv"
)

// run runs an external tool (testenv.Tool: skipped under -short, a failure
// otherwise when it is missing; hack/tools.sh installs it).
func run(t testing.TB, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(testenv.Tool(t, name), args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

func write(t testing.TB, p string, b []byte) string {
	t.Helper()
	os.MkdirAll(filepath.Dir(p), 0o755)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

const userData = "#cloud-config\n# prebake-agent/v1 begin sha256=…\nhostname: worker-1\n"

// A decoy: a disk that is not a seed, listed before the seed.
func decoy(t *testing.T, dir string) string {
	b := make([]byte, 1<<20)
	rand.Read(b)
	return write(t, filepath.Join(dir, "decoy.img"), b)
}

func devices(paths ...string) func() []string { return func() []string { return paths } }

func TestNoCloudSeedFromCloudLocalds(t *testing.T) {
	dir := t.TempDir()
	ud := write(t, filepath.Join(dir, "user-data"), []byte(userData+strings.Repeat("# padding to span sectors and clusters\n", 300)))
	md := write(t, filepath.Join(dir, "meta-data"), []byte("instance-id: i-1\nlocal-hostname: worker-1\n"))
	want, _ := os.ReadFile(ud)
	for _, fs := range []string{"iso9660", "vfat"} {
		t.Run(fs, func(t *testing.T) {
			if fs == "vfat" {
				testenv.Tool(t, "mkfs.vfat")
				testenv.Tool(t, "mcopy")
			}
			seed := filepath.Join(dir, "seed-"+fs+".img")
			run(t, "cloud-localds", "--filesystem="+fs, seed, ud, md)
			v := NoCloud(0)
			v.Devices = devices(decoy(t, dir), seed)
			got, err := v.UserData(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != string(want) {
				t.Fatalf("user-data: %d bytes, want %d", len(got), len(want))
			}
			// The seed is not a config drive.
			cd := ConfigDrive(0)
			cd.Devices = v.Devices
			if _, err := cd.UserData(context.Background()); !errors.Is(err, ErrNotFound) {
				t.Errorf("config drive on a NoCloud seed: %v", err)
			}
		})
	}
}

func TestNoCloudSeedWithoutUserData(t *testing.T) {
	dir := t.TempDir()
	md := write(t, filepath.Join(dir, "src/meta-data"), []byte("instance-id: i-1\n"))
	seed := filepath.Join(dir, "seed.iso")
	run(t, "genisoimage", "-quiet", "-output", seed, "-volid", "cidata", "-joliet", "-rock", md)
	v := NoCloud(0)
	v.Devices = devices(seed)
	if _, err := v.UserData(context.Background()); !errors.Is(err, ErrNoUserData) {
		t.Fatalf("err = %v, want ErrNoUserData", err)
	}
}

func TestNoSeed(t *testing.T) {
	dir := t.TempDir()
	v := NoCloud(0)
	v.Devices = devices(decoy(t, dir), filepath.Join(dir, "missing"))
	if _, err := v.UserData(context.Background()); !errors.Is(err, ErrNotFound) {
		t.Fatalf("err = %v, want ErrNotFound", err)
	}
}

// A seed cut short (a broken device) fails with an error, not a panic or
// wrong data.
func TestTruncatedSeed(t *testing.T) {
	dir := t.TempDir()
	ud := write(t, filepath.Join(dir, "user-data"), []byte(userData+strings.Repeat("x", 200000)))
	md := write(t, filepath.Join(dir, "meta-data"), []byte("instance-id: i-1\n"))
	seed := filepath.Join(dir, "seed.iso")
	run(t, "cloud-localds", seed, ud, md)
	b, _ := os.ReadFile(seed)
	at := bytes.Index(b, []byte(userData))
	if at < 0 {
		t.Fatal("user-data not in the seed")
	}
	cut := write(t, filepath.Join(dir, "cut.iso"), b[:at+1000])
	v := NoCloud(0)
	v.Devices = devices(cut)
	if got, err := v.UserData(context.Background()); err == nil {
		t.Fatalf("read %d bytes from a truncated seed", len(got))
	}
}

// OpenStack's config drive as nova writes it (ISO 9660 with Joliet and
// Rock Ridge, label config-2) and as a vfat drive.
func TestConfigDrive(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "drive")
	write(t, filepath.Join(src, "openstack/latest/meta_data.json"), []byte(`{"uuid":"83679162-1378-4288-a2d4-70e13ec132aa","hostname":"worker-1"}`))
	write(t, filepath.Join(src, "openstack/latest/user_data"), []byte(userData))
	write(t, filepath.Join(src, "openstack/2012-08-10/user_data"), []byte("#cloud-config\nold: true\n"))
	write(t, filepath.Join(src, "ec2/latest/meta-data.json"), []byte(`{}`))
	t.Run("iso9660", func(t *testing.T) {
		img := filepath.Join(dir, "config-2.iso")
		run(t, "genisoimage", "-o", img, "-ldots", "-allow-lowercase", "-allow-multidot", "-l", "-publisher", "test", "-quiet", "-J", "-r", "-V", "config-2", src)
		v := ConfigDrive(0)
		v.Devices = devices(decoy(t, dir), img)
		got, err := v.UserData(context.Background())
		if err != nil || string(got) != userData {
			t.Fatalf("%q, %v", got, err)
		}
	})
	t.Run("iso9660 without Joliet", func(t *testing.T) {
		img := filepath.Join(dir, "config-2-rr.iso")
		run(t, "genisoimage", "-o", img, "-quiet", "-r", "-V", "config-2", src)
		v := ConfigDrive(0)
		v.Devices = devices(img)
		got, err := v.UserData(context.Background())
		if err != nil || string(got) != userData {
			t.Fatalf("%q, %v", got, err)
		}
	})
	t.Run("vfat", func(t *testing.T) {
		img := filepath.Join(dir, "config-2.vfat")
		f, _ := os.Create(img)
		f.Truncate(64 << 20)
		f.Close()
		run(t, "mkfs.vfat", "-n", "config-2", img)
		run(t, "mmd", "-i", img, "::openstack", "::openstack/latest")
		run(t, "mcopy", "-i", img, filepath.Join(src, "openstack/latest/user_data"), "::openstack/latest/user_data")
		v := ConfigDrive(0)
		v.Devices = devices(img)
		got, err := v.UserData(context.Background())
		if err != nil || string(got) != userData {
			t.Fatalf("%q, %v", got, err)
		}
	})
}

func TestFile(t *testing.T) {
	dir := t.TempDir()
	p := write(t, filepath.Join(dir, "user-data"), []byte(userData))
	if got, err := (File{Path: p}).UserData(context.Background()); err != nil || string(got) != userData {
		t.Fatalf("%q %v", got, err)
	}
	if _, err := (File{Path: filepath.Join(dir, "none")}).UserData(context.Background()); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing: %v", err)
	}
	empty := write(t, filepath.Join(dir, "empty"), nil)
	if _, err := (File{Path: empty}).UserData(context.Background()); !errors.Is(err, ErrNoUserData) {
		t.Errorf("empty: %v", err)
	}
}

func TestOnEC2(t *testing.T) {
	dir := t.TempDir()
	if OnEC2(dir) {
		t.Fatal("empty sysfs is EC2")
	}
	write(t, filepath.Join(dir, "class/dmi/id/sys_vendor"), []byte("QEMU\n"))
	if OnEC2(dir) {
		t.Fatal("QEMU is EC2")
	}
	write(t, filepath.Join(dir, "class/dmi/id/sys_vendor"), []byte("Amazon EC2\n"))
	if !OnEC2(dir) {
		t.Fatal("Amazon EC2 is not EC2")
	}
}

// One scan finds whichever of the seed and the config drive is there.
func TestVolumesEither(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "drive")
	write(t, filepath.Join(src, "openstack/latest/user_data"), []byte(userData))
	img := filepath.Join(dir, "config-2.iso")
	run(t, "genisoimage", "-o", img, "-quiet", "-J", "-r", "-V", "config-2", src)
	vs := &Volumes{List: []*Volume{NoCloud(0), ConfigDrive(0)}, Devices: devices(decoy(t, dir), img), Wait: 0}
	got, err := vs.UserData(context.Background())
	if err != nil || string(got) != userData {
		t.Fatalf("%q %v", got, err)
	}
	vs.Devices = devices(decoy(t, dir))
	if _, err := vs.UserData(context.Background()); !errors.Is(err, ErrNotFound) {
		t.Fatalf("err = %v, want ErrNotFound", err)
	}
}
