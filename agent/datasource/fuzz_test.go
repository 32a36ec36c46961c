package datasource

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// FuzzOpenFS feeds volume images — outside bytes: whatever block device
// carries the right label — to the ISO 9660 and FAT readers the NoCloud
// and config-drive datasources use. Errors, never a panic, and never more
// bytes out than the image holds (a cluster chain or extent that loops or
// points past the end is refused). Seeds are real seeds made by
// cloud-localds and genisoimage.
func FuzzOpenFS(f *testing.F) {
	dir := f.TempDir()
	ud := []byte(userData + "# padding to span two sectors\n")
	for i := 0; i < 4; i++ {
		ud = append(ud, ud...)
	}
	write(f, filepath.Join(dir, "user-data"), ud)
	write(f, filepath.Join(dir, "meta-data"), []byte("instance-id: i-1\n"))
	write(f, filepath.Join(dir, "drive/openstack/latest/user_data"), ud)
	var seeds []string
	for _, fs := range []string{"iso9660", "vfat"} {
		seed := filepath.Join(dir, fs+".img")
		run(f, "cloud-localds", "--filesystem="+fs, seed, filepath.Join(dir, "user-data"), filepath.Join(dir, "meta-data"))
		seeds = append(seeds, seed)
	}
	cd := filepath.Join(dir, "config-drive.iso")
	run(f, "genisoimage", "-quiet", "-output", cd, "-volid", "config-2", "-joliet", "-rock", filepath.Join(dir, "drive"))
	seeds = append(seeds, cd)
	for _, s := range seeds {
		b, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		// The zeros after the last file are padding: without them the
		// seeds are small enough for the fuzzer to mutate quickly.
		end := len(bytes.TrimRight(b, "\x00"))
		f.Add(b[:min(len(b), (end+isoSector-1)/isoSector*isoSector)])
	}
	f.Fuzz(func(t *testing.T, img []byte) {
		fsys, err := openFS(bytes.NewReader(img))
		if err != nil {
			return
		}
		_ = fsys.label()
		for _, p := range []string{"user-data", "meta-data", "openstack/latest/user_data"} {
			b, err := fsys.readFile(p)
			if err == nil && len(b) > len(img) {
				t.Fatalf("%s: %d bytes out of a %d-byte image", p, len(b), len(img))
			}
		}
	})
}
