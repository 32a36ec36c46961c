#!/usr/bin/env bash
# Builds real Kubernetes node and control-plane binaries from source through
# the Go module proxy, cached by version under .cache/real/NAME-VERSION/.
# Nothing prebuilt is downloaded: every binary is `go build` output.
#
# Usage: hack/real/build.sh [NAME...]     (default: all)
# Names: kubeadm kubelet kubectl kube-apiserver kube-controller-manager
#        kube-scheduler kube-proxy etcd coredns containerd runc cni crictl
# Prints nothing on stdout but the cache directory of each NAME, one a line.
#
# Versions (environment): K8S_VERSION=1.36.3 ETCD_VERSION=3.6.8
# CONTAINERD_VERSION=2.3.4 RUNC_VERSION=1.4.3 CNI_VERSION=1.9.1 CRICTL_VERSION=1.36.0
# COREDNS_VERSION=1.14.2
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
CACHE=$ROOT/.cache/real
K8S_VERSION=${K8S_VERSION:-1.36.3}
ETCD_VERSION=${ETCD_VERSION:-3.6.8}
CONTAINERD_VERSION=${CONTAINERD_VERSION:-2.3.4}
RUNC_VERSION=${RUNC_VERSION:-1.4.3}
CNI_VERSION=${CNI_VERSION:-1.9.1}
CRICTL_VERSION=${CRICTL_VERSION:-1.36.0}
COREDNS_VERSION=${COREDNS_VERSION:-1.14.2}
# Fixed build date: the same sources give the same bytes on every machine.
BUILD_DATE=2026-01-01T00:00:00Z
export GOFLAGS=-buildvcs=false CGO_ENABLED=0
mkdir -p "$CACHE"
log() { echo "real: $*" >&2; }

K8S_CMDS=(kubeadm kubelet kubectl kube-apiserver kube-controller-manager kube-scheduler kube-proxy)
CNI_PLUGINS=(main/bridge main/loopback main/ptp main/host-device main/macvlan main/ipvlan main/vlan
  ipam/host-local ipam/static ipam/dhcp meta/portmap meta/bandwidth meta/firewall meta/tuning meta/sbr)

# wrapper DIR MODULE@VERSION: a throwaway module that requires MODULE, so
# that upstream's own go.mod (and replace directives) do not apply.
wrapper() {
  local dir=$1 mod=$2
  mkdir -p "$dir"
  [ -s "$dir/go.mod" ] && return 0
  printf 'module prebake.local/real\n\ngo 1.25\n\nrequire %s %s\n' "${mod%@*}" "${mod#*@}" >"$dir/go.mod.tmp"
  mv "$dir/go.mod.tmp" "$dir/go.mod"
}

# k8s_wrapper: k8s.io/kubernetes requires its staging modules at v0.0.0 and
# replaces them with ./staging paths; map each to the published v0.X.Y.
k8s_wrapper() {
  local dir=$CACHE/src/kubernetes-v$K8S_VERSION
  if [ ! -s "$dir/go.mod" ]; then
    mkdir -p "$dir"
    local modfile
    modfile=$(go mod download -json "k8s.io/kubernetes@v$K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)",*/\1/p')
    local staging="v0.${K8S_VERSION#1.}"
    {
      printf 'module prebake.local/real\n\ngo 1.25\n\nrequire k8s.io/kubernetes v%s\n\n' "$K8S_VERSION"
      awk -v v="$staging" '$1 ~ /^k8s\.io\// && $2 == "v0.0.0" { print "replace " $1 " => " $1 " " v }' "$modfile" | sort -u
    } >"$dir/go.mod.tmp"
    mv "$dir/go.mod.tmp" "$dir/go.mod"
  fi
  echo "$dir"
}

k8s_ldflags() {
  local minor=${K8S_VERSION#*.}; minor=${minor%%.*}
  local f="-s -w -buildid="
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    f+=" -X $p.gitVersion=v$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor"
    f+=" -X $p.gitTreeState=clean -X $p.buildDate=$BUILD_DATE"
  done
  echo "$f"
}

# done_or_build NAME VERSION: prints the cache dir; builds into DIR.tmp first.
build_one() {
  local name=$1 out tmp
  case $name in
    kubeadm|kubelet|kubectl|kube-apiserver|kube-controller-manager|kube-scheduler|kube-proxy)
      out=$CACHE/$name-v$K8S_VERSION ;;
    coredns) out=$CACHE/coredns-v$COREDNS_VERSION ;;
    etcd) out=$CACHE/etcd-v$ETCD_VERSION ;;
    containerd) out=$CACHE/containerd-v$CONTAINERD_VERSION ;;
    runc) out=$CACHE/runc-v$RUNC_VERSION ;;
    cni) out=$CACHE/cni-plugins-v$CNI_VERSION ;;
    crictl) out=$CACHE/crictl-v$CRICTL_VERSION ;;
    *) echo "real: unknown component $name (see hack/real/build.sh)" >&2; return 2 ;;
  esac
  if [ -e "$out/.done" ]; then echo "$out"; return 0; fi
  # One builder per component at a time (several make targets may ask).
  exec {lockfd}>"$out.lock"
  flock "$lockfd"
  if [ -e "$out/.done" ]; then exec {lockfd}>&-; echo "$out"; return 0; fi
  tmp=$out.tmp; rm -rf "$tmp"; mkdir -p "$tmp"
  local t0=$SECONDS
  log "building $name into ${out#$ROOT/}"
  case $name in
    kube*)
      local dir; dir=$(k8s_wrapper)
      (cd "$dir" && GOFLAGS="$GOFLAGS -mod=mod" go build -trimpath -tags selinux,notest,grpcnotrace \
        -ldflags "$(k8s_ldflags)" -o "$tmp/$name" "k8s.io/kubernetes/cmd/$name") ;;
    etcd)
      local dir=$CACHE/src/etcd-v$ETCD_VERSION
      wrapper "$dir" "go.etcd.io/etcd/server/v3@v$ETCD_VERSION"
      (cd "$dir" && GOFLAGS="$GOFLAGS -mod=mod" go build -trimpath -ldflags "-s -w -buildid=" -o "$tmp/etcd" go.etcd.io/etcd/server/v3) ;;
    containerd)
      local dir=$CACHE/src/containerd-v$CONTAINERD_VERSION
      wrapper "$dir" "github.com/containerd/containerd/v2@v$CONTAINERD_VERSION"
      local m=github.com/containerd/containerd/v2
      local vf="-X $m/version.Version=v$CONTAINERD_VERSION -X $m/version.Package=github.com/containerd/containerd/v2"
      (cd "$dir" && GOFLAGS="$GOFLAGS -mod=mod" go build -trimpath -tags no_btrfs,no_devmapper,no_zfs \
        -ldflags "-s -w -buildid= $vf" -o "$tmp/" $m/cmd/containerd $m/cmd/containerd-shim-runc-v2 $m/cmd/ctr) ;;
    runc)
      local dir=$CACHE/src/runc-v$RUNC_VERSION
      wrapper "$dir" "github.com/opencontainers/runc@v$RUNC_VERSION"
      # libseccomp, linked statically so the binary runs on any root.
      if [ ! -e /usr/lib/x86_64-linux-gnu/libseccomp.a ] && [ ! -e /usr/lib/aarch64-linux-gnu/libseccomp.a ] || ! command -v pkg-config >/dev/null; then
        local sudo=; [ "$(id -u)" -ne 0 ] && sudo=sudo
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends libseccomp-dev pkg-config >/dev/null
      fi
      (cd "$dir" && CGO_ENABLED=1 GOFLAGS="$GOFLAGS -mod=mod" go build -trimpath -tags "seccomp netgo osusergo urfave_cli_no_docs" \
        -ldflags "-s -w -buildid= -X main.version=$RUNC_VERSION -extldflags -static" -o "$tmp/runc" github.com/opencontainers/runc) ;;
    cni)
      local dir=$CACHE/src/cni-plugins-v$CNI_VERSION
      wrapper "$dir" "github.com/containernetworking/plugins@v$CNI_VERSION"
      local pkgs=() p
      for p in "${CNI_PLUGINS[@]}"; do pkgs+=("github.com/containernetworking/plugins/plugins/$p"); done
      (cd "$dir" && GOFLAGS="$GOFLAGS -mod=mod" go build -trimpath \
        -ldflags "-s -w -buildid= -X github.com/containernetworking/plugins/pkg/utils/buildversion.BuildVersion=v$CNI_VERSION" \
        -o "$tmp/" "${pkgs[@]}") ;;
    crictl)
      local dir=$CACHE/src/crictl-v$CRICTL_VERSION
      wrapper "$dir" "sigs.k8s.io/cri-tools@v$CRICTL_VERSION"
      (cd "$dir" && GOFLAGS="$GOFLAGS -mod=mod" go build -trimpath \
        -ldflags "-s -w -buildid= -X sigs.k8s.io/cri-tools/pkg/version.Version=v$CRICTL_VERSION" \
        -o "$tmp/crictl" sigs.k8s.io/cri-tools/cmd/crictl) ;;
    coredns)
      local dir=$CACHE/src/coredns-v$COREDNS_VERSION
      wrapper "$dir" "github.com/coredns/coredns@v$COREDNS_VERSION"
      (cd "$dir" && GOFLAGS="$GOFLAGS -mod=mod" go build -trimpath \
        -ldflags "-s -w -buildid= -X github.com/coredns/coredns/coremain.GitCommit=v$COREDNS_VERSION" \
        -o "$tmp/coredns" github.com/coredns/coredns) ;;
  esac
  touch "$tmp/.done"
  rm -rf "$out" && mv "$tmp" "$out"
  exec {lockfd}>&-
  log "built $name in $((SECONDS - t0)) s"
  echo "$out"
}

names=("$@")
[ ${#names[@]} -eq 0 ] && names=(kubeadm containerd runc cni crictl kubelet kubectl etcd kube-apiserver kube-controller-manager kube-scheduler)
# `hack/real/build.sh all`: also what only a control-plane image needs.
[ "${names[*]}" = all ] && names=(kubeadm containerd runc cni crictl kubelet kubectl etcd kube-apiserver kube-controller-manager kube-scheduler kube-proxy coredns)
for n in "${names[@]}"; do build_one "$n"; done
