#!/usr/bin/env bash
# A real Kubernetes control plane as plain processes on this machine, for
# the real-join test: etcd, kube-apiserver, kube-controller-manager and
# kube-scheduler (source-built by hack/real/build.sh), certificates and
# kubeconfigs from `kubeadm init phase`, and what `kubeadm join` needs from a
# cluster: the kubeadm and kubelet ConfigMaps (`upload-config`), a bootstrap
# token with its RBAC and the signed cluster-info (`bootstrap-token`).
#
# Everything listens on 127.0.0.1 only (free ports). A guest under qemu's
# user network reaches the API server as 10.0.2.2:PORT, so that address is
# advertised and is in the serving certificate; cluster-info names it.
#
# Usage: hack/join/controlplane.sh start DIR   # writes DIR/env (see below)
#        hack/join/controlplane.sh stop DIR    # stops every process, removes DIR's state
# DIR/env: APIPORT, KUBECONFIG (host side), TOKEN, CA_HASH, ENDPOINT.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
cmd=${1:-}; DIR=${2:-}
[ -n "$cmd" ] && [ -n "$DIR" ] || { echo "usage: $0 start|stop DIR" >&2; exit 2; }
K8S_VERSION=${K8S_VERSION:-1.36.3}
GUEST_HOST=10.0.2.2   # the host as qemu's user network shows it to a guest

stop() {
  for p in scheduler controller-manager apiserver etcd; do
    [ -s "$DIR/$p.pid" ] || continue
    pid=$(cat "$DIR/$p.pid")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$DIR/$p.pid"
  done
  rm -rf "$DIR/etcd-data"
}
if [ "$cmd" = stop ]; then stop; exit 0; fi
[ "$cmd" = start ] || { echo "usage: $0 start|stop DIR" >&2; exit 2; }

BIN=$DIR/bin
mkdir -p "$BIN"
for n in kubeadm kubectl kube-apiserver kube-controller-manager kube-scheduler etcd; do
  d=$(hack/real/build.sh "$n")
  ln -sf "$d/$n" "$BIN/$n"
done
export PATH=$BIN:$PATH

freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
APIPORT=$(freeport); ETCDPORT=$(freeport); PEERPORT=$(freeport); KCMPORT=$(freeport); SCHEDPORT=$(freeport)
TOKEN=$(python3 -c 'import secrets,string; a=string.ascii_lowercase+string.digits; print("".join(secrets.choice(a) for _ in range(6))+"."+"".join(secrets.choice(a) for _ in range(16)))')
PKI=$DIR/pki
umask 077
cat >"$DIR/kubeadm.yaml" <<YAML
apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
bootstrapTokens:
  - token: "$TOKEN"
    ttl: 2h
    usages: [signing, authentication]
    groups: [system:bootstrappers:kubeadm:default-node-token]
localAPIEndpoint:
  advertiseAddress: $GUEST_HOST
  bindPort: $APIPORT
nodeRegistration:
  name: prebake-test-control-plane
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
kubernetesVersion: v$K8S_VERSION
clusterName: prebake-e2e
controlPlaneEndpoint: $GUEST_HOST:$APIPORT
certificatesDir: $PKI
networking:
  serviceSubnet: 10.96.0.0/12
  podSubnet: 10.88.0.0/16
apiServer:
  certSANs: [127.0.0.1, localhost, $GUEST_HOST]
etcd:
  local:
    dataDir: $DIR/etcd-data
    serverCertSANs: [127.0.0.1]
    peerCertSANs: [127.0.0.1]
---
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: systemd
YAML
kubeadm init phase certs all --config "$DIR/kubeadm.yaml" >"$DIR/kubeadm-certs.log" 2>&1
for k in super-admin admin controller-manager scheduler; do
  kubeadm init phase kubeconfig "$k" --config "$DIR/kubeadm.yaml" --kubeconfig-dir "$DIR" >>"$DIR/kubeadm-certs.log" 2>&1
done
# The kubeconfigs name the guest-side endpoint; on this machine it is loopback.
for k in super-admin admin controller-manager scheduler; do
  sed -i "s#server: https://$GUEST_HOST:$APIPORT#server: https://127.0.0.1:$APIPORT#" "$DIR/$k.conf"
done

start() { # NAME ARGS...: a process with its log and pid file
  local name=$1; shift
  "$@" >"$DIR/$name.log" 2>&1 &
  echo $! >"$DIR/$name.pid"
}
start etcd etcd --name prebake-e2e --data-dir "$DIR/etcd-data" \
  --listen-client-urls "https://127.0.0.1:$ETCDPORT" --advertise-client-urls "https://127.0.0.1:$ETCDPORT" \
  --listen-peer-urls "https://127.0.0.1:$PEERPORT" --initial-advertise-peer-urls "https://127.0.0.1:$PEERPORT" \
  --initial-cluster "prebake-e2e=https://127.0.0.1:$PEERPORT" \
  --cert-file "$PKI/etcd/server.crt" --key-file "$PKI/etcd/server.key" --client-cert-auth --trusted-ca-file "$PKI/etcd/ca.crt" \
  --peer-cert-file "$PKI/etcd/peer.crt" --peer-key-file "$PKI/etcd/peer.key" --peer-client-cert-auth --peer-trusted-ca-file "$PKI/etcd/ca.crt" \
  --snapshot-count 10000
start apiserver kube-apiserver --advertise-address "$GUEST_HOST" --bind-address 127.0.0.1 --secure-port "$APIPORT" \
  --allow-privileged=true --authorization-mode Node,RBAC --client-ca-file "$PKI/ca.crt" \
  --enable-admission-plugins NodeRestriction --enable-bootstrap-token-auth=true \
  --etcd-servers "https://127.0.0.1:$ETCDPORT" --etcd-cafile "$PKI/etcd/ca.crt" \
  --etcd-certfile "$PKI/apiserver-etcd-client.crt" --etcd-keyfile "$PKI/apiserver-etcd-client.key" \
  --kubelet-client-certificate "$PKI/apiserver-kubelet-client.crt" --kubelet-client-key "$PKI/apiserver-kubelet-client.key" \
  --kubelet-preferred-address-types InternalIP,ExternalIP,Hostname \
  --proxy-client-cert-file "$PKI/front-proxy-client.crt" --proxy-client-key-file "$PKI/front-proxy-client.key" \
  --requestheader-allowed-names front-proxy-client --requestheader-client-ca-file "$PKI/front-proxy-ca.crt" \
  --requestheader-extra-headers-prefix X-Remote-Extra- --requestheader-group-headers X-Remote-Group \
  --requestheader-username-headers X-Remote-User \
  --service-account-issuer https://kubernetes.default.svc.cluster.local \
  --service-account-key-file "$PKI/sa.pub" --service-account-signing-key-file "$PKI/sa.key" \
  --service-cluster-ip-range 10.96.0.0/12 --tls-cert-file "$PKI/apiserver.crt" --tls-private-key-file "$PKI/apiserver.key"
KC=$DIR/super-admin.conf
ready=
for _ in $(seq 240); do
  if kubectl --kubeconfig "$KC" get --raw /readyz >/dev/null 2>&1; then ready=1; break; fi
  kill -0 "$(cat "$DIR/apiserver.pid")" 2>/dev/null || break
  sleep 0.5
done
[ -n "$ready" ] || { echo "controlplane: kube-apiserver not ready; its log:" >&2; tail -30 "$DIR/apiserver.log" >&2; exit 1; }
start controller-manager kube-controller-manager --bind-address 127.0.0.1 --secure-port "$KCMPORT" \
  --kubeconfig "$DIR/controller-manager.conf" --authentication-kubeconfig "$DIR/controller-manager.conf" \
  --authorization-kubeconfig "$DIR/controller-manager.conf" --client-ca-file "$PKI/ca.crt" \
  --requestheader-client-ca-file "$PKI/front-proxy-ca.crt" --root-ca-file "$PKI/ca.crt" \
  --cluster-name prebake-e2e --cluster-signing-cert-file "$PKI/ca.crt" --cluster-signing-key-file "$PKI/ca.key" \
  --controllers '*,bootstrapsigner,tokencleaner' --leader-elect=false \
  --service-account-private-key-file "$PKI/sa.key" --use-service-account-credentials=true
start scheduler kube-scheduler --bind-address 127.0.0.1 --secure-port "$SCHEDPORT" \
  --kubeconfig "$DIR/scheduler.conf" --authentication-kubeconfig "$DIR/scheduler.conf" \
  --authorization-kubeconfig "$DIR/scheduler.conf" --leader-elect=false

# What kubeadm join reads from the cluster. The cluster's own view keeps
# kubeadm's standard paths: a joining node writes the CA to certificatesDir
# and its kubelet reads it from there (clientCAFile), so this machine's
# scratch directory must not leak into it.
sed -e "s#certificatesDir: $PKI#certificatesDir: /etc/kubernetes/pki#" -e "s#dataDir: $DIR/etcd-data#dataDir: /var/lib/etcd#" \
  "$DIR/kubeadm.yaml" >"$DIR/kubeadm-cluster.yaml"
kubeadm init phase upload-config kubeadm --config "$DIR/kubeadm-cluster.yaml" --kubeconfig "$KC" >"$DIR/kubeadm-phases.log" 2>&1
kubeadm init phase upload-config kubelet --config "$DIR/kubeadm-cluster.yaml" --kubeconfig "$KC" >>"$DIR/kubeadm-phases.log" 2>&1
kubeadm init phase bootstrap-token --config "$DIR/kubeadm-cluster.yaml" --kubeconfig "$KC" >>"$DIR/kubeadm-phases.log" 2>&1
# cluster-info was written from the loopback kubeconfig: name the address a
# guest reaches instead (the bootstrap signer signs the new content).
kubectl --kubeconfig "$KC" -n kube-public get configmap cluster-info -o json \
  | sed "s#https://127.0.0.1:$APIPORT#https://$GUEST_HOST:$APIPORT#" \
  | kubectl --kubeconfig "$KC" replace -f - >/dev/null
signed=
for _ in $(seq 120); do
  if kubectl --kubeconfig "$KC" -n kube-public get configmap cluster-info -o jsonpath="{.data.jws-kubeconfig-${TOKEN%%.*}}" 2>/dev/null | grep -q .; then signed=1; break; fi
  sleep 0.5
done
[ -n "$signed" ] || { echo "controlplane: cluster-info never signed for the token (kube-controller-manager's bootstrapsigner); its log:" >&2; tail -30 "$DIR/controller-manager.log" >&2; exit 1; }
CA_HASH=sha256:$(openssl x509 -pubkey -in "$PKI/ca.crt" | openssl pkey -pubin -outform der | sha256sum | cut -d' ' -f1)
cat >"$DIR/env" <<ENV
APIPORT=$APIPORT
ENDPOINT=$GUEST_HOST:$APIPORT
KUBECONFIG=$KC
TOKEN=$TOKEN
CA_HASH=$CA_HASH
ENV
echo "controlplane: ready on 127.0.0.1:$APIPORT (guests: $GUEST_HOST:$APIPORT)" >&2
