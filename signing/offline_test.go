package signing_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prebake/prebake/internal/testenv"
	"github.com/prebake/prebake/signing"
)

// TestVerifyOffline: in a network namespace whose only interface is
// loopback (unshare -n), `prebake verify --attestations` succeeds against a
// registry on loopback: verification needs the public key and the registry,
// nothing else. A reference to any other host fails there.
func TestVerifyOffline(t *testing.T) {
	testenv.Root(t, "unshare -n (a network namespace)")
	if out, err := exec.Command(testenv.Tool(t, "unshare"), "-n", "true").CombinedOutput(); err != nil {
		testenv.Unavailable(t, "unshare -n does not work here (%v: %s); cannot cut the network off", err, out)
	}
	testenv.Tool(t, "docker-registry")
	bin := testenv.Prebake(t)
	ctx := context.Background()
	dir := t.TempDir()
	reg := testenv.StartDockerRegistry(t, filepath.Join(dir, "registry"))
	kp, err := signing.GenerateKeyPair(signing.KeygenOptions{Prefix: filepath.Join(dir, "release"), Password: password("pw")})
	if err != nil {
		t.Fatal(err)
	}
	ref, idx := pushIndex(t, reg.Host, "nodes/k8s", "1.36.4")
	attachSBOM(t, ref, idx, sbomDoc("offline"))
	if _, err := signing.SignAndAttest(ctx, ref, signing.SignAndAttestOptions{KeyOptions: signing.KeyOptions{Key: kp.PrivateKey, Password: password("pw")}, Registry: ropts}); err != nil {
		t.Fatal(err)
	}
	reg.Stop()

	script := `set -u
ip link set lo up
echo "routes: $(ip route | wc -l)"
"$REGISTRY" serve "$CONFIG" 2>/dev/null & pid=$!
for i in $(seq 200); do (exec 3<>/dev/tcp/${HOST%:*}/${HOST#*:}) 2>/dev/null && break; sleep 0.05; done
"$PREBAKE" verify "$REF" --key "$PUB" --insecure --attestations; rc=$?
"$PREBAKE" verify "registry.example.com/nodes/k8s@${REF#*@}" --key "$PUB" >/dev/null 2>&1 && rc=99
kill $pid
exit $rc
`
	cmd := exec.Command("unshare", "-n", "bash", "-c", script)
	cmd.Env = append(os.Environ(), "HOME="+dir, "REGISTRY="+reg.Bin, "CONFIG="+reg.Cfg, "HOST="+reg.Host,
		"PREBAKE="+bin, "REF="+ref.String(), "PUB="+kp.PublicKey)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("verification in a network namespace with only loopback: %v (exit 99: a non-loopback registry answered)\n%s", err, out)
	}
	for _, want := range []string{"routes: 0", "verified " + ref.String(), signing.PredicateSBOM, signing.PredicateProvenance} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}
