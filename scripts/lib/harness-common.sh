# Helpers shared by scripts/test-harness.sh and scripts/test-all.sh (sourced, not executed).
# shellcheck shell=bash

harness_log() { printf '[harness %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
harness_die() {
  printf '[harness %s] ERROR: %s\n' "$(date +%H:%M:%S)" "$*" >&2
  exit 1
}

# Whether PID is alive and its command line mentions NEEDLE. The needle guards against a recycled PID after a
# reboot or a crash: we never signal a process we cannot recognise as ours.
pid_matches() {
  local pid=$1 needle=$2
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  [[ -r /proc/$pid/cmdline ]] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$needle"
}

# The PID recorded in PIDFILE when that process is alive and matches NEEDLE; empty otherwise.
pidfile_alive() {
  local file=$1 needle=$2 pid
  [[ -s $file ]] || return 1
  pid=$(<"$file")
  pid_matches "$pid" "$needle" && printf '%s' "$pid"
}

# Stops the process in PIDFILE (TERM, then KILL after a grace period) and removes the file.
stop_pidfile() {
  local file=$1 needle=$2 name=$3 pid i
  if pid=$(pidfile_alive "$file" "$needle"); then
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
      pid_matches "$pid" "$needle" || break
      sleep 0.1
    done
    if pid_matches "$pid" "$needle"; then
      harness_log "$name (pid $pid) ignored SIGTERM; sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
    harness_log "stopped $name (pid $pid)"
  fi
  rm -f "$file"
}

# Whether something listens on 127.0.0.1:PORT.
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Waits up to SECONDS for COMMAND... to succeed.
wait_for() {
  local seconds=$1 deadline
  shift
  deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || return 1
    sleep 0.1
  done
}

# The HTTP status of a GET (000 when the connection fails). Extra curl options may follow the URL.
http_status() {
  local url=$1
  shift
  curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$@" "$url" || true
}

# Writes stdin to FILE atomically (temp file in the same directory + rename).
atomic_write() {
  local file=$1 tmp
  tmp=$(mktemp "${file}.XXXXXX")
  cat >"$tmp"
  chmod "${2:-0644}" "$tmp"
  mv -f "$tmp" "$file"
}
