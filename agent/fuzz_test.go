package agent

import (
	"bytes"
	"compress/gzip"
	"errors"
	"strings"
	"testing"
)

// FuzzExtract feeds user-data — outside bytes from a datasource — to the
// agent's reader. Every refusal is one of the three sentinels and never
// quotes the token; whatever is accepted validates and re-encodes to a
// block that reads back the same.
func FuzzExtract(f *testing.F) {
	good, err := Block(goodConfig())
	if err != nil {
		f.Fatal(err)
	}
	doc := cloudConfig(good)
	f.Add(doc)
	f.Add(bytes.ReplaceAll(doc, []byte("\n"), []byte("\r\n")))
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	zw.Write(doc)
	zw.Close()
	f.Add(z.Bytes())
	f.Add([]byte("Content-Type: multipart/mixed; boundary=\"b\"\nMIME-Version: 1.0\n\n--b\nContent-Type: text/cloud-config\n\n" + string(doc) + "\n--b--\n"))
	f.Add([]byte("#cloud-config\nhostname: x\n"))
	f.Add([]byte("#!/bin/sh\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Extract(b)
		if err != nil {
			if !errors.Is(err, ErrNoPart) && !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrInvalid) {
				t.Fatalf("refusal without a sentinel: %v", err)
			}
			if strings.Contains(err.Error(), testToken) {
				t.Fatalf("error quotes the token: %v", err)
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("accepted a config that does not validate: %v", err)
		}
		blk, err := Block(c)
		if err != nil {
			t.Fatalf("accepted config does not encode: %v", err)
		}
		c2, err := Extract(cloudConfig(blk))
		if err != nil {
			t.Fatalf("re-encoded config does not read back: %v", err)
		}
		blk2, _ := Block(c2)
		if !bytes.Equal(blk, blk2) {
			t.Fatal("round trip changed the config")
		}
	})
}
