package datasource

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
	"unicode/utf16"
)

// Volume is a datasource on a labelled volume: the NoCloud seed or an
// OpenStack config drive. The block devices are read directly (ISO 9660 or
// FAT); nothing is mounted, so the agent can run before udev has settled or
// any file system is mounted besides the root.
type Volume struct {
	Kind  string // name for log lines
	Label string // file system label, compared without case
	File  string // user-data path inside the volume ("user-data")
	// Devices lists candidate block devices (or image files); default:
	// every device in /sys/class/block, as /dev/NAME.
	Devices func() []string
	// Wait is how long to keep looking for the volume while devices are
	// still appearing (zero: look once).
	Wait time.Duration
}

// NoCloud is cloud-init's NoCloud seed: a volume labelled cidata with
// user-data and meta-data at its root (cloud-localds makes one).
func NoCloud(wait time.Duration) *Volume {
	return &Volume{Kind: "nocloud", Label: "cidata", File: "user-data", Wait: wait}
}

// ConfigDrive is OpenStack's config drive: a volume labelled config-2 with
// openstack/latest/user_data.
func ConfigDrive(wait time.Duration) *Volume {
	return &Volume{Kind: "configdrive", Label: "config-2", File: "openstack/latest/user_data", Wait: wait}
}

func (v *Volume) Name() string { return v.Kind }

// Find returns the device holding the volume, or ErrNotFound once Wait has
// passed without one.
func (v *Volume) Find(ctx context.Context) (string, error) {
	devices := v.Devices
	if devices == nil {
		devices = blockDevices
	}
	deadline := time.Now().Add(v.Wait)
	for {
		for _, d := range devices() {
			if label, err := readLabel(d); err == nil && strings.EqualFold(label, v.Label) {
				return d, nil
			}
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("%w: no volume labelled %s", ErrNotFound, v.Label)
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (v *Volume) UserData(ctx context.Context) ([]byte, error) {
	dev, err := v.Find(ctx)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(dev)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fsys, err := openFS(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", dev, err)
	}
	b, err := fsys.readFile(v.File)
	if errors.Is(err, errNoFile) {
		return nil, fmt.Errorf("%w: %s (%s) has no %s", ErrNoUserData, dev, v.Label, v.File)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: reading %s: %w", dev, v.File, err)
	}
	return b, nil
}

func blockDevices() []string {
	ents, _ := os.ReadDir("/sys/class/block")
	var out []string
	for _, e := range ents {
		n := e.Name()
		if strings.HasPrefix(n, "loop") || strings.HasPrefix(n, "ram") || strings.HasPrefix(n, "zram") {
			continue
		}
		out = append(out, filepath.Join("/dev", n))
	}
	sort.Strings(out)
	return out
}

var errNoFile = errors.New("no such file")

// filesystem is the little a datasource needs from a volume.
type filesystem interface {
	label() string
	readFile(path string) ([]byte, error)
}

func readLabel(dev string) (string, error) {
	f, err := os.Open(dev)
	if err != nil {
		return "", err
	}
	defer f.Close()
	fsys, err := openFS(f)
	if err != nil {
		return "", err
	}
	return fsys.label(), nil
}

func openFS(r io.ReaderAt) (filesystem, error) {
	if iso, err := openISO(r); err == nil {
		return iso, nil
	}
	if fat, err := openFAT(r); err == nil {
		return fat, nil
	}
	return nil, fmt.Errorf("%w: neither ISO 9660 nor FAT", ErrFormat)
}

func readAt(r io.ReaderAt, off int64, n int) ([]byte, error) {
	if n < 0 || n > MaxSize {
		return nil, fmt.Errorf("%w: %d-byte read", ErrFormat, n)
	}
	b := make([]byte, n)
	if _, err := r.ReadAt(b, off); err != nil {
		return nil, fmt.Errorf("%w: reading %d bytes at %d: %v", ErrFormat, n, off, err)
	}
	return b, nil
}

// ---- ISO 9660 (ECMA-119), with Joliet and Rock Ridge names ----

const isoSector = 2048

type isoFS struct {
	r       io.ReaderAt
	volID   string
	root    []byte // root directory record
	joliet  bool
	rootJol []byte
}

func openISO(r io.ReaderAt) (*isoFS, error) {
	iso := &isoFS{r: r}
	for s := int64(16); s < 16+32; s++ {
		d, err := readAt(r, s*isoSector, isoSector)
		if err != nil {
			return nil, err
		}
		if string(d[1:6]) != "CD001" {
			return nil, fmt.Errorf("%w: not ISO 9660", ErrFormat)
		}
		switch d[0] {
		case 1:
			iso.volID = strings.TrimRight(string(d[40:72]), " \x00")
			iso.root = append([]byte(nil), d[156:190]...)
		case 2:
			esc := string(d[88:91])
			if esc == "%/@" || esc == "%/C" || esc == "%/E" {
				iso.joliet, iso.rootJol = true, append([]byte(nil), d[156:190]...)
			}
		case 255:
			if iso.root == nil {
				return nil, fmt.Errorf("%w: ISO 9660 without a primary volume descriptor", ErrFormat)
			}
			return iso, nil
		}
	}
	return nil, fmt.Errorf("%w: ISO 9660 descriptor set not terminated", ErrFormat)
}

func (iso *isoFS) label() string { return iso.volID }

type isoEntry struct {
	name        string
	extent, len uint32
	dir         bool
}

func parseRecord(rec []byte, joliet bool) (isoEntry, error) {
	if len(rec) < 34 || int(rec[0]) > len(rec) || 33+int(rec[32]) > int(rec[0]) {
		return isoEntry{}, fmt.Errorf("%w: bad ISO 9660 directory record", ErrFormat)
	}
	e := isoEntry{
		extent: binary.LittleEndian.Uint32(rec[2:]),
		len:    binary.LittleEndian.Uint32(rec[10:]),
		dir:    rec[25]&2 != 0,
	}
	nl := int(rec[32])
	raw := rec[33 : 33+nl]
	switch {
	case nl == 1 && (raw[0] == 0 || raw[0] == 1):
		e.name = "." // self or parent
	case joliet:
		u := make([]uint16, nl/2)
		for i := range u {
			u[i] = binary.BigEndian.Uint16(raw[2*i:])
		}
		e.name = string(utf16.Decode(u))
	default:
		e.name = strings.ToLower(string(raw))
		// Rock Ridge: an NM entry in the system use area has the real name.
		su := 33 + nl
		if nl%2 == 0 {
			su++
		}
		var nm strings.Builder
		for su+4 <= int(rec[0]) {
			l := int(rec[su+2])
			if l < 4 || su+l > int(rec[0]) {
				break
			}
			if string(rec[su:su+2]) == "NM" && l >= 5 {
				nm.Write(rec[su+5 : su+l])
			}
			su += l
		}
		if nm.Len() > 0 {
			e.name = nm.String()
		}
	}
	if i := strings.IndexByte(e.name, ';'); i >= 0 {
		e.name = e.name[:i]
	}
	if !e.dir {
		e.name = strings.TrimSuffix(e.name, ".")
	}
	return e, nil
}

func (iso *isoFS) readFile(p string) ([]byte, error) {
	root := iso.root
	if iso.joliet {
		root = iso.rootJol
	}
	cur, err := parseRecord(root, false)
	if err != nil {
		return nil, err
	}
	parts := strings.Split(strings.Trim(p, "/"), "/")
	for i, name := range parts {
		if !cur.dir {
			return nil, errNoFile
		}
		dir, err := readAt(iso.r, int64(cur.extent)*isoSector, int(cur.len))
		if err != nil {
			return nil, err
		}
		found := false
		for off := 0; off < len(dir); {
			l := int(dir[off])
			if l == 0 { // records do not cross sectors: skip the padding
				off = (off/isoSector + 1) * isoSector
				continue
			}
			if off+l > len(dir) {
				return nil, fmt.Errorf("%w: directory record past its extent", ErrFormat)
			}
			e, err := parseRecord(dir[off:off+l], iso.joliet)
			if err != nil {
				return nil, err
			}
			off += l
			if e.name == name || !iso.joliet && strings.EqualFold(e.name, name) {
				if e.dir != (i < len(parts)-1) {
					return nil, errNoFile
				}
				cur, found = e, true
				break
			}
		}
		if !found {
			return nil, errNoFile
		}
	}
	return readAt(iso.r, int64(cur.extent)*isoSector, int(cur.len))
}

// ---- FAT12/16/32 (long file names read, compared without case) ----

type fatFS struct {
	r                io.ReaderAt
	bps, spc         int64
	fatStart         int64 // byte offset of the first FAT
	rootStart        int64 // FAT12/16: byte offset of the root directory
	rootSize         int64
	dataStart        int64 // byte offset of cluster 2
	bits             int   // 12, 16 or 32
	rootClus         uint32
	clusters         uint32
	bootLabel, entry string
}

func openFAT(r io.ReaderAt) (*fatFS, error) {
	b, err := readAt(r, 0, 512)
	if err != nil {
		return nil, err
	}
	le16 := func(o int) int64 { return int64(binary.LittleEndian.Uint16(b[o:])) }
	le32 := func(o int) int64 { return int64(binary.LittleEndian.Uint32(b[o:])) }
	bps, spc, rsvd, nfats := le16(11), int64(b[13]), le16(14), int64(b[16])
	if b[510] != 0x55 || b[511] != 0xaa || bps < 512 || bps > 4096 || bps&(bps-1) != 0 || spc == 0 || spc&(spc-1) != 0 || nfats == 0 || rsvd == 0 {
		return nil, fmt.Errorf("%w: not FAT", ErrFormat)
	}
	fatSz, tot := le16(22), le16(19)
	if fatSz == 0 {
		fatSz = le32(36)
	}
	if tot == 0 {
		tot = le32(32)
	}
	rootEnt := le16(17)
	rootSecs := (rootEnt*32 + bps - 1) / bps
	firstData := rsvd + nfats*fatSz + rootSecs
	if tot <= firstData {
		return nil, fmt.Errorf("%w: FAT geometry", ErrFormat)
	}
	f := &fatFS{r: r, bps: bps, spc: spc, fatStart: rsvd * bps, rootStart: (rsvd + nfats*fatSz) * bps,
		rootSize: rootSecs * bps, dataStart: firstData * bps, clusters: uint32((tot - firstData) / spc)}
	switch {
	case f.clusters < 4085:
		f.bits = 12
	case f.clusters < 65525:
		f.bits = 16
	default:
		f.bits, f.rootClus = 32, uint32(le32(44))
	}
	lo := 43
	if f.bits == 32 {
		lo = 71
	}
	f.bootLabel = strings.TrimRight(string(b[lo:lo+11]), " \x00")
	// The root directory's volume label entry wins (mkfs.vfat -n writes both).
	if root, err := f.rootDir(); err == nil {
		for off := 0; off+32 <= len(root) && root[off] != 0; off += 32 {
			if root[off] != 0xe5 && root[off+11]&0x1f == 0x08 {
				f.entry = strings.TrimRight(string(root[off:off+11]), " ")
				break
			}
		}
	}
	return f, nil
}

func (f *fatFS) label() string {
	if f.entry != "" {
		return f.entry
	}
	return f.bootLabel
}

func (f *fatFS) next(c uint32) (uint32, error) {
	var off int64
	switch f.bits {
	case 12:
		off = int64(c) + int64(c)/2
	case 16:
		off = int64(c) * 2
	default:
		off = int64(c) * 4
	}
	b, err := readAt(f.r, f.fatStart+off, 4)
	if err != nil {
		return 0, err
	}
	v := binary.LittleEndian.Uint32(b)
	switch f.bits {
	case 12:
		v &= 0xffff
		if c&1 == 1 {
			v >>= 4
		}
		v &= 0xfff
		if v >= 0xff8 {
			return 0, io.EOF
		}
	case 16:
		v &= 0xffff
		if v >= 0xfff8 {
			return 0, io.EOF
		}
	default:
		v &= 0x0fffffff
		if v >= 0x0ffffff8 {
			return 0, io.EOF
		}
	}
	return v, nil
}

// chain reads a cluster chain, up to limit bytes (negative: to its end).
func (f *fatFS) chain(c uint32, limit int64) ([]byte, error) {
	cs := f.bps * f.spc
	var out []byte
	for n := uint32(0); ; n++ {
		if c < 2 || c >= f.clusters+2 || n > f.clusters {
			return nil, fmt.Errorf("%w: bad FAT cluster chain", ErrFormat)
		}
		b, err := readAt(f.r, f.dataStart+int64(c-2)*cs, int(cs))
		if err != nil {
			return nil, err
		}
		out = append(out, b...)
		if limit >= 0 && int64(len(out)) >= limit {
			return out[:limit], nil
		}
		if int64(len(out)) > MaxSize {
			return nil, fmt.Errorf("%w: FAT file too large", ErrFormat)
		}
		c, err = f.next(c)
		if err == io.EOF {
			if limit >= 0 {
				return nil, fmt.Errorf("%w: FAT file shorter than its size", ErrFormat)
			}
			return out, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

func (f *fatFS) rootDir() ([]byte, error) {
	if f.bits == 32 {
		return f.chain(f.rootClus, -1)
	}
	return readAt(f.r, f.rootStart, int(f.rootSize))
}

type fatEntry struct {
	name    string
	cluster uint32
	size    int64
	dir     bool
}

func fatEntries(d []byte) []fatEntry {
	var out []fatEntry
	var lfn []uint16
	for off := 0; off+32 <= len(d); off += 32 {
		e := d[off : off+32]
		switch {
		case e[0] == 0:
			return out
		case e[0] == 0xe5:
			lfn = nil
			continue
		case e[11]&0x3f == 0x0f: // long name piece; the last piece comes first
			var u []uint16
			for _, o := range []int{1, 3, 5, 7, 9, 14, 16, 18, 20, 22, 24, 28, 30} {
				u = append(u, binary.LittleEndian.Uint16(e[o:]))
			}
			lfn = append(u, lfn...)
			continue
		case e[11]&0x08 != 0: // volume label
			lfn = nil
			continue
		}
		name := ""
		if lfn != nil {
			for i, c := range lfn {
				if c == 0 {
					lfn = lfn[:i]
					break
				}
			}
			name = string(utf16.Decode(lfn))
			lfn = nil
		} else {
			base, ext := strings.TrimRight(string(e[0:8]), " "), strings.TrimRight(string(e[8:11]), " ")
			if e[12]&0x08 != 0 {
				base = strings.ToLower(base)
			}
			if e[12]&0x10 != 0 {
				ext = strings.ToLower(ext)
			}
			name = base
			if ext != "" {
				name += "." + ext
			}
		}
		out = append(out, fatEntry{
			name:    name,
			cluster: uint32(binary.LittleEndian.Uint16(e[26:])) | uint32(binary.LittleEndian.Uint16(e[20:]))<<16,
			size:    int64(binary.LittleEndian.Uint32(e[28:])),
			dir:     e[11]&0x10 != 0,
		})
	}
	return out
}

func (f *fatFS) readFile(p string) ([]byte, error) {
	dir, err := f.rootDir()
	if err != nil {
		return nil, err
	}
	parts := strings.Split(strings.Trim(p, "/"), "/")
	for i, name := range parts {
		var hit *fatEntry
		for _, e := range fatEntries(dir) {
			if strings.EqualFold(e.name, name) {
				hit = &e
				break
			}
		}
		if hit == nil || hit.dir != (i < len(parts)-1) {
			return nil, errNoFile
		}
		if hit.dir {
			if dir, err = f.chain(hit.cluster, -1); err != nil {
				return nil, err
			}
			continue
		}
		if hit.size == 0 {
			return []byte{}, nil
		}
		return f.chain(hit.cluster, hit.size)
	}
	return nil, errNoFile
}

// Volumes looks for several labelled volumes in one scan (the NoCloud seed
// and a config drive) and reads the first it finds, so that a machine with
// either does not wait out the other's Wait.
type Volumes struct {
	List []*Volume
	// Devices and Wait as in Volume (the members' own are not used).
	Devices func() []string
	Wait    time.Duration
}

func (vs *Volumes) Name() string {
	names := make([]string, len(vs.List))
	for i, v := range vs.List {
		names[i] = v.Kind
	}
	return strings.Join(names, "|")
}

func (vs *Volumes) UserData(ctx context.Context) ([]byte, error) {
	devices := vs.Devices
	if devices == nil {
		devices = blockDevices
	}
	deadline := time.Now().Add(vs.Wait)
	for {
		for _, d := range devices() {
			label, err := readLabel(d)
			if err != nil {
				continue
			}
			for _, v := range vs.List {
				if strings.EqualFold(label, v.Label) {
					one := *v
					one.Devices, one.Wait = func() []string { return []string{d} }, 0
					return one.UserData(ctx)
				}
			}
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%w: no volume labelled %s", ErrNotFound, vs.Name())
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}
