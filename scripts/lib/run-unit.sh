#!/usr/bin/env bash
# Run a systemd service unit's ExecStart the way systemd would, on a machine that does not boot systemd (tests, CI):
# same User/Group, the unit's Environment only, UMask, LimitNOFILE, NoNewPrivileges, and the file system view of
# ProtectSystem=strict + ReadWritePaths + ProtectHome + PrivateTmp, emulated in a private mount namespace
# (everything remounted read-only except /dev, /proc, /sys and the ReadWritePaths; tmpfs over /home, /root,
# /run/user, /tmp and /var/tmp). Runs in the foreground; SIGTERM or SIGINT to this script is passed to the service
# (unshare itself blocks both while it waits for its child).
#
#   scripts/lib/run-unit.sh UNIT_FILE [INSTANCE]     (INSTANCE replaces %i in a template unit)
#
# Prints nothing itself; the service's output goes to stdout/stderr (the journal's place).
set -euo pipefail

unit=$1 instance=${2:-}
[[ -f $unit && $(id -u) == 0 ]] || { echo "run-unit.sh: UNIT_FILE must exist and this must run as root" >&2; exit 64; }

value() { # the last assignment of KEY in [Service], %i expanded
  sed -n '/^\[Service\]/,/^\[/p' "$unit" | grep -E "^$1=" | tail -n 1 | cut -d= -f2- | sed "s/%i/$instance/g"
}
all_values() {
  sed -n '/^\[Service\]/,/^\[/p' "$unit" | grep -E "^$1=" | cut -d= -f2- | sed "s/%i/$instance/g"
}

user=$(value User) group=$(value Group) exec_start=$(value ExecStart) umask_=$(value UMask)
nofile=$(value LimitNOFILE) nnp=$(value NoNewPrivileges) protect_system=$(value ProtectSystem)
protect_home=$(value ProtectHome) private_tmp=$(value PrivateTmp)
read -r -a rw_paths <<<"$(all_values ReadWritePaths | tr '\n' ' ')"
mapfile -t environment < <(all_values Environment)
[[ -n $exec_start && -n $user ]] || { echo "run-unit.sh: $unit has no ExecStart or User" >&2; exit 65; }
# systemd's quoting rules for ExecStart are close to the shell's for the units this is used with (no variables).
exec_argv=()
eval "exec_argv=($exec_start)"
[[ $protect_system == strict ]] || { echo "run-unit.sh: only ProtectSystem=strict is emulated" >&2; exit 65; }

# The namespace set-up, run by unshare's child as root before dropping to the service user.
setup=$(cat <<'EOS'
set -euo pipefail
mount --make-rprivate /
# ProtectSystem=strict: every mount read-only but the API file systems.
while read -r mp; do
  case $mp in /proc|/proc/*|/sys|/sys/*|/dev|/dev/*) continue ;; esac
  mount -o remount,bind,ro "$mp" 2>/dev/null || true
done < <(awk '{print $5}' /proc/self/mountinfo | sort -u)
if [[ $PROTECT_HOME == yes ]]; then
  for d in /home /root /run/user; do [[ ! -d $d ]] || mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs "$d"; done
  for d in /home /root /run/user; do [[ ! -d $d ]] || mount -o remount,ro,bind "$d"; done
fi
if [[ $PRIVATE_TMP == yes ]]; then
  for d in /tmp /var/tmp; do mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$d"; done
fi
# ReadWritePaths: writable again (a fresh bind mount of each path, after the remounts).
for p in $RW_PATHS; do
  p=${p#-}
  [[ -d $p ]] || continue
  mount --bind "$p" "$p"
  mount -o remount,bind,rw "$p"
done
cd /
EOS
)

args=(--reuid="$user" --regid="${group:-$user}" --init-groups)
[[ $nnp != yes ]] || args+=(--no-new-privs)
# shellcheck disable=SC2016 # the single-quoted parts are the script bash -c runs, expanded there
unshare --mount --fork --kill-child=SIGTERM -- env PROTECT_HOME="$protect_home" PRIVATE_TMP="$private_tmp" \
  RW_PATHS="${rw_paths[*]}" bash -c "$setup"'
  # systemd raises the hard limit too; a sandbox without CAP_SYS_RESOURCE cannot, so it keeps its own hard limit.
  ulimit -n '"${nofile:-1024}"' 2>/dev/null || {
    echo "run-unit.sh: LimitNOFILE='"${nofile:-1024}"' is above this machine'"'"'s hard limit $(ulimit -Hn): using that" >&2
    ulimit -n "$(ulimit -Hn)"
  }
  umask '"${umask_:-0022}"'
  exec setpriv "$@"' run-unit "${args[@]}" -- env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  "HOME=$(getent passwd "$user" | cut -d: -f6)" "USER=$user" "LOGNAME=$user" "${environment[@]}" "${exec_argv[@]}" &
child=$!
trap 'pkill -TERM -P "$child"' TERM INT
while :; do
  wait "$child"
  status=$?
  kill -0 "$child" 2>/dev/null || exit "$status"
done
