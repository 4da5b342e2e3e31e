#!/usr/bin/env bash
# A real single-node Slurm (Debian's slurmctld + slurmd) under one directory, for the Slurm integration tests and
# bench/slurm. Everything lives in DIR (config, state, spool, logs, pids); nothing in /etc/slurm is read or written.
#
#   slurm-node.sh start DIR CTLD_PORT SLURMD_PORT [PLUGSTACK_LINE]   write DIR/slurm.conf (+ DIR/plugstack.conf with
#                                                                   PLUGSTACK_LINE, empty when not given), start both
#                                                                   daemons and wait until the node is idle
#   slurm-node.sh restart-slurmd DIR [PLUGSTACK_LINE]                rewrite plugstack.conf and restart slurmd (it reads
#                                                                   plugstack.conf only at start)
#   slurm-node.sh stop DIR                                           stop both daemons (SIGTERM by pid) and wait
#
# Users run commands with SLURM_CONF=DIR/slurm.conf. Needs root, munged on its default socket, and the Debian
# packages slurmctld, slurmd, slurm-client (scripts/test-harness.sh installs them).
#
# SLURM_NODE2_NETNS=NAME (at start) adds a second node: nodes are then n1 (this host, 127.0.0.1) and n2, a slurmd in
# network namespace NAME (created here, with a veth pair NAME-h/NAME-n on 10.77.S.1/2 where S = CTLD_PORT % 250)
# sharing this host's file systems and mounts (heterogeneous jobs need one node per component). NAME must start
# with the caller's netns prefix; `stop` deletes the namespace.
set -euo pipefail

die() { echo "slurm-node: $*" >&2; exit 1; }

write_plugstack() {
  local dir=$1 line=${2:-}
  printf '%s\n' "$line" >"$dir/plugstack.conf.new"
  chmod 0644 "$dir/plugstack.conf.new"
  mv -f "$dir/plugstack.conf.new" "$dir/plugstack.conf"
}

wait_for() { # what, seconds, command…
  local what=$1 limit=$2 i
  shift 2
  for ((i = 0; i < limit * 20; i++)); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.05
  done
  die "$what did not come up (logs: $DIR/log)"
}

start_slurmd() {
  local netns node1=localhost
  netns=$(cat "$DIR/run/node2-netns" 2>/dev/null || true)
  [[ -n $netns ]] && node1=n1
  rm -f "$DIR/run/slurmd.pid" "$DIR/run/slurmd-n1.pid"
  SLURM_CONF=$DIR/slurm.conf setsid slurmd -D -N "$node1" -f "$DIR/slurm.conf" </dev/null \
    >>"$DIR/log/slurmd.out" 2>&1 &
  echo $! >"$DIR/run/slurmd.daemon"
  if [[ -n $netns ]]; then
    # nsenter, not `ip netns exec`: the second node must share this host's mounts (and /sys/fs/cgroup).
    rm -f "$DIR/run/slurmd-n2.pid"
    SLURM_CONF=$DIR/slurm.conf setsid nsenter --net="/run/netns/$netns" slurmd -D -N n2 -f "$DIR/slurm.conf" \
      </dev/null >>"$DIR/log/slurmd-n2.out" 2>&1 &
    echo $! >"$DIR/run/slurmd2.daemon"
  fi
  # A node drained by an earlier failure test would stay drained in the saved state: resume it.
  for ((i = 0; i < 200; i++)); do
    local st
    st=$(SLURM_CONF=$DIR/slurm.conf sinfo -h -o %T 2>/dev/null | sort -u | tr '\n' ' ' || true)
    [[ $st == "idle " ]] && return 0
    if [[ $st == *drain* || $st == *down* ]]; then
      SLURM_CONF=$DIR/slurm.conf scontrol update nodename="$node1${netns:+,n2}" state=resume >/dev/null 2>&1 || true
    fi
    sleep 0.05
  done
  die "slurmd did not come up (logs: $DIR/log)"
}

stop_pidfile() {
  local f=$1 pid
  [[ -s $f ]] || return 0
  pid=$(<"$f")
  if kill -TERM "$pid" 2>/dev/null; then
    for ((i = 0; i < 200; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$f"
}

cmd=${1:-}
DIR=${2:-}
[[ -n $DIR ]] || die "usage: slurm-node.sh start|restart-slurmd|stop DIR …"
case $cmd in
start)
  CTLD_PORT=${3:?ctld port} SLURMD_PORT=${4:?slurmd port}
  id slurm >/dev/null 2>&1 || die "user slurm missing (install slurmctld)"
  mkdir -p "$DIR/state" "$DIR/spool" "$DIR/run" "$DIR/log"
  chmod 0755 "$DIR"
  chown slurm: "$DIR/state" "$DIR/run" "$DIR/log"
  NETNS=${SLURM_NODE2_NETNS:-}
  CTLD_HOST=localhost NODES="NodeName=localhost NodeAddr=127.0.0.1 CPUs=2 RealMemory=2000 State=UNKNOWN"
  PART_NODES=localhost SPOOL=$DIR/spool PIDFILE=$DIR/run/slurmd.pid
  if [[ -n $NETNS ]]; then
    SUB=$((CTLD_PORT % 250))
    ip netns del "$NETNS" 2>/dev/null || true # left by a killed run
    ip netns add "$NETNS"
    ip link add "$NETNS-h" type veth peer name "$NETNS-n"
    ip link set "$NETNS-n" netns "$NETNS"
    ip addr add "10.77.$SUB.1/24" dev "$NETNS-h"
    ip link set "$NETNS-h" up
    ip -n "$NETNS" addr add "10.77.$SUB.2/24" dev "$NETNS-n"
    ip -n "$NETNS" link set "$NETNS-n" up
    ip -n "$NETNS" link set lo up
    echo "$NETNS" >"$DIR/run/node2-netns"
    CTLD_HOST="localhost(10.77.$SUB.1)" PART_NODES=n1,n2 SPOOL="$DIR/spool/%n" PIDFILE="$DIR/run/slurmd-%n.pid"
    mkdir -p "$DIR/spool/n1" "$DIR/spool/n2"
    NODES="NodeName=n1 NodeHostname=n1 NodeAddr=127.0.0.1 CPUs=2 RealMemory=2000 State=UNKNOWN
NodeName=n2 NodeHostname=n2 NodeAddr=10.77.$SUB.2 CPUs=2 RealMemory=2000 State=UNKNOWN"
  fi
  cat >"$DIR/slurm.conf.new" <<CONF
ClusterName=ci
SlurmctldHost=$CTLD_HOST
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
AuthType=auth/munge
CredType=cred/munge
SlurmUser=slurm
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$SPOOL
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$PIDFILE
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
SlurmdDebug=info
MailProg=/bin/true
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MinJobAge=30
KillWait=5
PlugStackConfig=$DIR/plugstack.conf
PrologFlags=Alloc,Contain
$NODES
PartitionName=debug Nodes=$PART_NODES Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
CONF
  chmod 0644 "$DIR/slurm.conf.new"
  mv -f "$DIR/slurm.conf.new" "$DIR/slurm.conf"
  write_plugstack "$DIR" "${5:-}"
  SLURM_CONF=$DIR/slurm.conf setsid slurmctld -D -f "$DIR/slurm.conf" </dev/null \
    >>"$DIR/log/slurmctld.out" 2>&1 &
  echo $! >"$DIR/run/slurmctld.daemon"
  wait_for slurmctld 20 env SLURM_CONF="$DIR/slurm.conf" scontrol ping
  start_slurmd
  ;;
restart-slurmd)
  write_plugstack "$DIR" "${3:-}"
  stop_pidfile "$DIR/run/slurmd.daemon"
  stop_pidfile "$DIR/run/slurmd2.daemon"
  start_slurmd
  ;;
stop)
  stop_pidfile "$DIR/run/slurmd.daemon"
  stop_pidfile "$DIR/run/slurmd2.daemon"
  stop_pidfile "$DIR/run/slurmctld.daemon"
  if [[ -s $DIR/run/node2-netns ]]; then
    ip netns del "$(<"$DIR/run/node2-netns")" 2>/dev/null || true
    rm -f "$DIR/run/node2-netns"
  fi
  ;;
*) die "unknown command $cmd" ;;
esac
