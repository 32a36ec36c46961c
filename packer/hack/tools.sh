#!/usr/bin/env bash
# Installs what the Packer plugin's generator and end-to-end test need, on a
# fresh machine: packer-sdc (HCL2 spec generator) and packer itself, both built
# from the Go module proxy at pinned versions into .cache/tools/bin, and
# Debian's openssh-server for the provisioner's SSH target.
#
# Usage: packer/hack/tools.sh            # everything
#        packer/hack/tools.sh NAME...    # only these: packer packer-sdc sshd
set -euo pipefail
cd "$(dirname "$0")/../.."
TOOLS="$PWD/.cache/tools"
mkdir -p "$TOOLS/bin"
export GOBIN="$TOOLS/bin" GOFLAGS=-buildvcs=false

PACKER_VERSION=v1.11.2
SDK_VERSION=v0.6.6
GO_CTY_REPLACE=github.com/nywilken/go-cty@v1.13.3

want=("$@")
[ ${#want[@]} -eq 0 ] && want=(packer packer-sdc sshd)

# gobuild_in_temp_module MODULE VERSION PACKAGE OUT: builds PACKAGE of
# MODULE@VERSION in a throwaway module carrying the go-cty replace.
gobuild_in_temp_module() {
  local tmp
  tmp=$(mktemp -d)
  (
    cd "$tmp"
    cat >go.mod <<MOD
module toolbuild

go 1.22

require $1 $2

replace github.com/zclconf/go-cty => ${GO_CTY_REPLACE/@/ }
MOD
    printf '//go:build tools\n\npackage main\n\nimport _ "%s"\n' "$3" >tools.go
    GOFLAGS=-mod=mod go mod tidy >/dev/null 2>&1 || GOFLAGS=-mod=mod go get "$1@$2"
    GOFLAGS=-mod=mod go build -trimpath -o "$4" "$3"
  ) || { rm -rf "$tmp"; return 1; }
  rm -rf "$tmp"
}

stamped() { # NAME VERSION: true when NAME is built at VERSION
  [ -x "$TOOLS/bin/$1" ] && [ "$(cat "$TOOLS/bin/.$1.version" 2>/dev/null)" = "$2" ]
}

for t in "${want[@]}"; do
  case $t in
  packer-sdc)
    mod=github.com/hashicorp/packer-plugin-sdk/cmd/packer-sdc@$SDK_VERSION
    stamped packer-sdc "$mod" && continue
    echo "tools: building packer-sdc $SDK_VERSION" >&2
    # packer-sdc needs the SDK's go-cty replace, which `go install mod@v`
    # cannot carry: build it in a temporary module that has it.
    gobuild_in_temp_module github.com/hashicorp/packer-plugin-sdk "$SDK_VERSION" \
      github.com/hashicorp/packer-plugin-sdk/cmd/packer-sdc "$TOOLS/bin/packer-sdc"
    echo "$mod" >"$TOOLS/bin/.packer-sdc.version"
    ;;
  packer)
    mod=github.com/hashicorp/packer@$PACKER_VERSION
    stamped packer "$mod" && continue
    echo "tools: building packer $PACKER_VERSION (a few minutes)" >&2
    gobuild_in_temp_module github.com/hashicorp/packer "$PACKER_VERSION" \
      github.com/hashicorp/packer "$TOOLS/bin/packer"
    echo "$mod" >"$TOOLS/bin/.packer.version"
    ;;
  sshd)
    [ -x /usr/sbin/sshd ] && continue
    sudo=; [ "$(id -u)" -ne 0 ] && sudo=sudo
    $sudo apt-get update -qq
    echo "tools: apt-get install openssh-server" >&2
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends openssh-server openssh-client >/dev/null
    ;;
  *) echo "tools: unknown tool $t" >&2; exit 2 ;;
  esac
done
