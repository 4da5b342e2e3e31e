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

node_idle() { [[ $(SLURM_CONF=$DIR/slurm.conf sinfo -h -o %T 2>/dev/null) == idle ]]; }

start_slurmd() {
  rm -f "$DIR/run/slurmd.pid"
  SLURM_CONF=$DIR/slurm.conf setsid slurmd -D -N localhost -f "$DIR/slurm.conf" </dev/null \
    >>"$DIR/log/slurmd.out" 2>&1 &
  echo $! >"$DIR/run/slurmd.daemon"
  # A node drained by an earlier failure test would stay drained in the saved state: resume it.
  for ((i = 0; i < 100; i++)); do
    local st
    st=$(SLURM_CONF=$DIR/slurm.conf sinfo -h -o %T 2>/dev/null || true)
    [[ $st == idle ]] && return 0
    if [[ $st == drain* || $st == down* ]]; then
      SLURM_CONF=$DIR/slurm.conf scontrol update nodename=localhost state=resume >/dev/null 2>&1 || true
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
  cat >"$DIR/slurm.conf.new" <<CONF
ClusterName=ci
SlurmctldHost=localhost
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
AuthType=auth/munge
CredType=cred/munge
SlurmUser=slurm
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd.pid
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
NodeName=localhost NodeAddr=127.0.0.1 CPUs=2 RealMemory=2000 State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
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
  start_slurmd
  ;;
stop)
  stop_pidfile "$DIR/run/slurmd.daemon"
  stop_pidfile "$DIR/run/slurmctld.daemon"
  ;;
*) die "unknown command $cmd" ;;
esac
