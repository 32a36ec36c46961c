#!/usr/bin/env bash
# Installs the real clients prebake's tests talk to, on a fresh machine.
# Debian packages through apt-get; Go tools built from the module proxy into
# .cache/tools/bin (pinned versions, cached between runs).
#
# Usage: hack/tools.sh            # everything the tests need
#        hack/tools.sh NAME...    # only these (e.g. staticcheck cosign)
set -euo pipefail
cd "$(dirname "$0")/.."
TOOLS="$PWD/.cache/tools"
mkdir -p "$TOOLS/bin"
export GOBIN="$TOOLS/bin" GOFLAGS=-buildvcs=false

# Debian packages: command -> package
declare -A APT=(
  [skopeo]=skopeo [umoci]=umoci [docker-registry]=docker-registry
  [cloud-init]=cloud-init [zstd]=zstd [openssl]=openssl [bc]=bc
  [ignition-validate]=ignition [hyperfine]=hyperfine [jq]=jq
  [sgdisk]=gdisk [mcopy]=mtools [mmd]=mtools [mkfs.vfat]=dosfstools
  [mkfs.ext4]=e2fsprogs [debugfs]=e2fsprogs [qemu-img]=qemu-utils [objcopy]=binutils
  [containerd]=containerd [ctr]=containerd [mmdebstrap]=mmdebstrap
  [aarch64-linux-gnu-objcopy]=binutils-aarch64-linux-gnu
  [cloud-localds]=cloud-image-utils [genisoimage]=genisoimage
)
# Go tools: command -> module@version (package path)
declare -A GOTOOLS=(
  [crane]=github.com/google/go-containerregistry/cmd/crane@v0.20.7
  [oras]=oras.land/oras/cmd/oras@v1.3.6
  [cosign]=github.com/sigstore/cosign/v2/cmd/cosign@v2.6.5
  [staticcheck]=honnef.co/go/tools/cmd/staticcheck@v0.8.2
  [syft]=github.com/anchore/syft/cmd/syft@v1.57.1
  [actionlint]=github.com/rhysd/actionlint/cmd/actionlint@v1.7.12
)
# Validators of examples/ci built from their own small modules here (each
# pins its engine's Go API in its go.mod: tektoncd/pipeline, argo-workflows),
# so prebake's module does not depend on them: command -> directory. The
# binary is rebuilt when the module's go.mod, go.sum or sources change.
declare -A LOCALTOOLS=(
  [tekton-validate]=hack/civalidate/tekton
  [argo-validate]=hack/civalidate/argo
)

apt_updated=
apt_install() {
  local pkgs=("$@")
  [ ${#pkgs[@]} -eq 0 ] && return 0
  local sudo=; [ "$(id -u)" -ne 0 ] && sudo=sudo
  if [ -z "$apt_updated" ]; then $sudo apt-get update -qq; apt_updated=1; fi
  echo "tools: apt-get install ${pkgs[*]}" >&2
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
}

want=("$@")
if [ ${#want[@]} -eq 0 ]; then want=("${!APT[@]}" crane oras cosign syft actionlint tekton-validate argo-validate); fi

missing=()
for t in "${want[@]}"; do
  if [ -n "${APT[$t]:-}" ]; then
    command -v "$t" >/dev/null 2>&1 || missing+=("${APT[$t]}")
  fi
done
# prebake export's EFI stub is a file, not a command.
stub=/usr/lib/systemd/boot/efi/linuxx64.efi.stub
if { [ $# -eq 0 ] || [[ " $* " == *" sgdisk "* ]]; } && [ ! -e "$stub" ]; then missing+=(systemd-boot-efi); fi
apt_install "${missing[@]}"

for t in "${want[@]}"; do
  mod=${GOTOOLS[$t]:-}
  [ -z "$mod" ] && continue
  stamp="$TOOLS/bin/.$t.version"
  if [ -x "$TOOLS/bin/$t" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$mod" ]; then continue; fi
  echo "tools: go install $mod" >&2
  go install -trimpath "$mod"
  echo "$mod" >"$stamp"
done

for t in "${want[@]}"; do
  dir=${LOCALTOOLS[$t]:-}
  [ -z "$dir" ] && continue
  stamp="$TOOLS/bin/.$t.version"
  sum=$(cat "$dir"/go.mod "$dir"/go.sum "$dir"/*.go | sha256sum | cut -d' ' -f1)
  if [ -x "$TOOLS/bin/$t" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$sum" ]; then continue; fi
  echo "tools: go build $dir ($t; the first build takes minutes)" >&2
  (cd "$dir" && GOWORK=off go build -trimpath -o "$TOOLS/bin/.$t.$$" .)
  mv "$TOOLS/bin/.$t.$$" "$TOOLS/bin/$t"
  echo "$sum" >"$stamp"
done
