#!/usr/bin/env bash
# .ci/slurm/stop.sh - stop studymake's private single-node Slurm cluster that
# .ci/slurm/start.sh started, and nothing else.
#
# Only PIDs recorded in $STUDYMAKE_SLURM_DIR/run/*.pid are signalled, and only
# while that PID is still the expected program and names $STUDYMAKE_SLURM_DIR in
# its command line or environment (guards against PID reuse).  Jobs still
# queued or running in this cluster are cancelled first, so no slurmstepd or
# job process outlives slurmd.  Configs, state, database and logs are kept
# (the next start reuses them; job ids continue).  Safe to run twice.
#
#   STUDYMAKE_SLURM_DIR          state directory (default /tmp/studymake-slurm)
#   STUDYMAKE_SLURM_STOP_WAIT_S  per-daemon SIGTERM -> SIGKILL grace (default 20)
set -uo pipefail

DIR=${STUDYMAKE_SLURM_DIR:-/tmp/studymake-slurm}
GRACE=${STUDYMAKE_SLURM_STOP_WAIT_S:-20}
log() { printf '[slurm stop] %s\n' "$*" >&2; }

[[ -d $DIR ]] || { log "no $DIR: nothing to stop"; exit 0; }
DIR=$(cd "$DIR" && pwd -P)
RUN=$DIR/run
export SLURM_CONF=$DIR/etc/slurm.conf

alive() {                       # alive NAME PID - same test as start.sh
    local name=$1 pid=$2 st txt
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    st=$(awk '/^State:/ {print $2}' "/proc/$pid/status" 2>/dev/null) || return 1
    [[ -n $st && $st != Z && $st != X ]] || return 1
    [[ $(cat "/proc/$pid/comm" 2>/dev/null) == "$name" ]] || return 1
    # (no "| grep -q" here: with pipefail its early exit would SIGPIPE tr)
    txt=$(tr '\0' '\n' 2>/dev/null <"/proc/$pid/cmdline"; tr '\0' '\n' 2>/dev/null <"/proc/$pid/environ")
    [[ $txt == *"$DIR/"* ]]
}
recorded_pid() { [[ -s $RUN/$1.pid ]] && cat "$RUN/$1.pid"; }

# 1. cancel this cluster's jobs while slurmctld and slurmd can still do it
ctld=$(recorded_pid slurmctld || true)
if [[ -n $ctld ]] && alive slurmctld "$ctld" && [[ -s $SLURM_CONF ]]; then
    jobs=$(timeout 10 squeue -h -o '%i' 2>/dev/null | tr '\n' ' ')
    if [[ -n ${jobs// /} ]]; then
        log "cancelling jobs: $jobs"
        # shellcheck disable=SC2086
        timeout 10 scancel $jobs 2>/dev/null || true
        for ((i = 0; i < 100; i++)); do           # up to ~20 s (KillWait=5)
            [[ -z $(timeout 10 squeue -h -o '%i' 2>/dev/null) ]] && break
            sleep 0.2
        done
    fi
fi

# 2. stop daemons in reverse start order
rc=0
for d in slurmd slurmctld slurmdbd mariadbd munged; do
    pid=$(recorded_pid "$d" || true)
    [[ -n $pid ]] || continue
    if alive "$d" "$pid"; then
        log "stopping $d (pid $pid)"
        kill -TERM "$pid" 2>/dev/null || true
        for ((i = 0; i < GRACE * 10; i++)); do
            alive "$d" "$pid" || break
            sleep 0.1
        done
        if alive "$d" "$pid"; then
            log "$d (pid $pid) ignored SIGTERM for ${GRACE}s, sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
            sleep 0.5
            if alive "$d" "$pid"; then log "$d (pid $pid) still alive"; rc=1; continue; fi
        fi
    else
        log "$d (pid $pid) was not running"
    fi
    rm -f "$RUN/$d.pid"
done
exit $rc
