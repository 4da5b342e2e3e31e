#!/usr/bin/env bash
# Network namespace for the distributed gateway test: a veth link between the host (HOST_ADDR) and a namespace
# (NS_ADDR) in which sshd (Debian openssh-server) listens on NS_ADDR only, accepting a key generated here.
#
#   netns-worker.sh up   NAME STATE_DIR HOST_ADDR NS_ADDR    → STATE_DIR/{id_ed25519,known_hosts,sshd.pid}
#   netns-worker.sh down NAME STATE_DIR
set -euo pipefail
command=$1 name=$2 state=$3
host_if="vh${name:0:10}" ns_if="vn${name:0:10}"

case $command in
  up)
    host_addr=$4 ns_addr=$5
    mkdir -p "$state" /run/sshd
    ip netns add "$name"
    ip link add "$host_if" type veth peer name "$ns_if"
    ip link set "$ns_if" netns "$name"
    ip addr add "$host_addr/24" dev "$host_if"
    ip link set "$host_if" up
    ip netns exec "$name" ip link set lo up
    ip netns exec "$name" ip addr add "$ns_addr/24" dev "$ns_if"
    ip netns exec "$name" ip link set "$ns_if" up
    ssh-keygen -q -t ed25519 -N '' -f "$state/id_ed25519" <<<y >/dev/null
    ssh-keygen -q -t ed25519 -N '' -f "$state/host_ed25519" <<<y >/dev/null
    cp "$state/id_ed25519.pub" "$state/authorized_keys"
    chmod 600 "$state/authorized_keys"
    cat >"$state/sshd_config" <<CONF
ListenAddress $ns_addr
Port 22
HostKey $state/host_ed25519
AuthorizedKeysFile $state/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PidFile $state/sshd.pid
Subsystem sftp internal-sftp
CONF
    echo "$ns_addr $(cut -d' ' -f1,2 "$state/host_ed25519.pub")" >"$state/known_hosts"
    ip netns exec "$name" /usr/sbin/sshd -f "$state/sshd_config" -E "$state/sshd.log"
    for _ in $(seq 50); do [[ -s $state/sshd.pid ]] && break; sleep 0.1; done
    [[ -s $state/sshd.pid ]] || { cat "$state/sshd.log" >&2; exit 1; }
    ;;
  down)
    if [[ -s $state/sshd.pid ]]; then kill "$(cat "$state/sshd.pid")" 2>/dev/null || true; fi
    ip link del "$host_if" 2>/dev/null || true
    ip netns del "$name" 2>/dev/null || true
    ;;
  *) echo "usage: $0 up|down NAME STATE_DIR [HOST_ADDR NS_ADDR]" >&2; exit 64 ;;
esac
