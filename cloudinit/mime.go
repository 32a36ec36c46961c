package cloudinit

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"mime/multipart"
	"net/textproto"
)

type mimePart struct {
	contentType string
	filename    string
	body        []byte
}

// mime renders the MIME multipart format: the cloud-config part, then the
// join script as a text/x-shellscript part when the image has no join unit.
func (d *doc) mime() ([]byte, error) {
	cc, err := d.cloudConfig(false)
	if err != nil {
		return nil, err
	}
	parts := []mimePart{{contentType: "text/cloud-config", filename: "cloud-config.yaml", body: cc}}
	if d.joinScript != nil {
		name := "kubeadm-join.sh"
		if d.scriptPath == initScriptPath {
			name = "kubeadm-init.sh"
		}
		parts = append(parts, mimePart{contentType: "text/x-shellscript", filename: name, body: d.joinScript})
	}
	return mimeDocument(parts)
}

// mimeDocument builds a multipart/mixed message with mime/multipart. The
// boundary is derived from the content (so output is deterministic) and
// checked not to occur in it.
func mimeDocument(parts []mimePart) ([]byte, error) {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p.contentType))
		h.Write(p.body)
	}
	sum := h.Sum(nil)
	var boundary string
	for i := 0; ; i++ {
		boundary = fmt.Sprintf("prebake-%s-%d", hex.EncodeToString(sum[:12]), i)
		clash := false
		for _, p := range parts {
			if bytes.Contains(p.body, []byte(boundary)) {
				clash = true
			}
		}
		if !clash {
			break
		}
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "Content-Type: multipart/mixed; boundary=\"%s\"\r\nMIME-Version: 1.0\r\n\r\n", boundary)
	w := multipart.NewWriter(&b)
	if err := w.SetBoundary(boundary); err != nil {
		return nil, fmt.Errorf("mime boundary: %w", err)
	}
	for _, p := range parts {
		hdr := textproto.MIMEHeader{}
		hdr.Set("Content-Type", p.contentType+"; charset=\"utf-8\"")
		hdr.Set("Content-Disposition", fmt.Sprintf("attachment; filename=\"%s\"", p.filename))
		hdr.Set("Mime-Version", "1.0")
		body := p.body
		if isASCII(body) {
			hdr.Set("Content-Transfer-Encoding", "7bit")
		} else {
			hdr.Set("Content-Transfer-Encoding", "base64")
			body = base64Lines(body)
		}
		pw, err := w.CreatePart(hdr)
		if err != nil {
			return nil, fmt.Errorf("mime part: %w", err)
		}
		if _, err := pw.Write(body); err != nil {
			return nil, fmt.Errorf("mime part: %w", err)
		}
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("mime: %w", err)
	}
	return b.Bytes(), nil
}

func isASCII(b []byte) bool {
	for _, c := range b {
		if c >= 0x80 || (c < 0x20 && c != '\n' && c != '\r' && c != '\t') {
			return false
		}
	}
	return true
}

// base64Lines encodes b in 76-character lines as MIME requires.
func base64Lines(b []byte) []byte {
	enc := base64.StdEncoding.EncodeToString(b)
	var out bytes.Buffer
	for len(enc) > 76 {
		out.WriteString(enc[:76])
		out.WriteString("\r\n")
		enc = enc[76:]
	}
	out.WriteString(enc)
	out.WriteString("\r\n")
	return out.Bytes()
}
