#!/usr/bin/env bash
# .ci/slurm/start.sh - bring up studymake's private single-node Slurm cluster
# (munged + slurmctld + slurmd, optionally mariadbd + slurmdbd for sacct)
# from Debian packages, without systemd, and wait until it accepts jobs.
# Used by studymake's Slurm tests (tests/slurm_client.rs) and CI.
# Adapted from the tested reference in shared/reference/slurm/.
#
# Idempotent: daemons this script started earlier that are still alive are
# kept; only missing ones are started; then the node is re-checked.
# Everything (configs, munge key/socket, state, database, logs, PID records)
# lives under $STUDYMAKE_SLURM_DIR; nothing is written to /etc.  Needs root.
# Tested on Debian 12: slurm 22.05.8, munge 0.5.15, MariaDB 10.11.
# Stop with .ci/slurm/stop.sh (same STUDYMAKE_SLURM_DIR).
#
# On success the last line on stdout is "export SLURM_CONF=<dir>/etc/slurm.conf",
# so either of these works afterwards:
#   eval "$(.ci/slurm/start.sh)"
#   .ci/slurm/start.sh && . /tmp/studymake-slurm/env.sh
# Exit status is non-zero, with a message on stderr, if the cluster cannot start.
#
# Environment knobs:
#   STUDYMAKE_SLURM_DIR          state directory             (default /tmp/studymake-slurm)
#   STUDYMAKE_SLURM_ACCOUNTING   1 = also run MariaDB + slurmdbd so sacct works (default 0)
#   STUDYMAKE_SLURM_CTLD_PORT    slurmctld port              (default 6817)
#   STUDYMAKE_SLURM_SLURMD_PORT  slurmd port                 (default 6818)
#   STUDYMAKE_SLURM_DBD_PORT     slurmdbd port               (default 6819)
#   STUDYMAKE_SLURM_DB_PORT      mariadbd port on 127.0.0.1  (default 3307)
#   STUDYMAKE_SLURM_WAIT_S       readiness timeout, seconds  (default 60)
#   STUDYMAKE_SLURM_INSTALL      1 = apt-get install missing packages (default 1)
#   STUDYMAKE_SLURM_MIN_JOB_AGE  seconds slurmctld keeps finished jobs (default 3600;
#                                small values test pollers' fallbacks, see tests/slurm_client.rs)
set -euo pipefail
# everything but the final "export SLURM_CONF=..." line goes to stderr
# (daemons are started with 3>&- so that "$(start.sh)" does not wait on them)
exec 3>&1 1>&2

DIR=${STUDYMAKE_SLURM_DIR:-/tmp/studymake-slurm}
ACCT=${STUDYMAKE_SLURM_ACCOUNTING:-0}
CTLD_PORT=${STUDYMAKE_SLURM_CTLD_PORT:-6817}
SLURMD_PORT=${STUDYMAKE_SLURM_SLURMD_PORT:-6818}
DBD_PORT=${STUDYMAKE_SLURM_DBD_PORT:-6819}
DB_PORT=${STUDYMAKE_SLURM_DB_PORT:-3307}
WAIT_S=${STUDYMAKE_SLURM_WAIT_S:-60}
INSTALL=${STUDYMAKE_SLURM_INSTALL:-1}
MIN_JOB_AGE=${STUDYMAKE_SLURM_MIN_JOB_AGE:-3600}

log() { printf '[slurm start] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[[ $(id -u) == 0 ]] || die "must run as root (slurmd runs jobs as their submitting user)"

# ---------------------------------------------------------------- packages
need=()
[[ -x /usr/sbin/munged ]]    || need+=(munge)
[[ -x /usr/sbin/slurmctld ]] || need+=(slurmctld)
[[ -x /usr/sbin/slurmd ]]    || need+=(slurmd)
[[ -x /usr/bin/sbatch ]]     || need+=(slurm-client)
if [[ $ACCT == 1 ]]; then
    [[ -x /usr/sbin/slurmdbd ]]         || need+=(slurmdbd)
    [[ -x /usr/sbin/mariadbd ]]         || need+=(mariadb-server-core)
    [[ -x /usr/bin/my_print_defaults ]] || need+=(mariadb-client-core) # mariadb-install-db needs it
fi
if ((${#need[@]})); then
    [[ $INSTALL == 1 ]] || die "missing packages: ${need[*]} (STUDYMAKE_SLURM_INSTALL=0)"
    log "installing ${need[*]} from Debian"
    export DEBIAN_FRONTEND=noninteractive
    apt-get -o DPkg::Lock::Timeout=300 update -qq >&2
    apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "${need[@]}" >&2
fi

mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd -P)          # absolute, symlink-free: it goes into configs
CONF=$DIR/etc/slurm.conf
RUN=$DIR/run                        # PID records of what THIS script started
MUNGE_SOCK=$DIR/munge/munge.socket
export SLURM_CONF=$CONF             # also lets alive() recognise slurmdbd via its environ

# ---------------------------------------------------------------- helpers
# alive NAME PID -> true if PID runs (zombies count as dead), is the program
# NAME, and its command line or environment names our state dir, so that a
# recycled PID is never taken for ours.
alive() {
    local name=$1 pid=$2 st txt
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    st=$(awk '/^State:/ {print $2}' "/proc/$pid/status" 2>/dev/null) || return 1
    [[ -n $st && $st != Z && $st != X ]] || return 1
    [[ $(cat "/proc/$pid/comm" 2>/dev/null) == "$name" ]] || return 1
    # (no "| grep -q" here: with pipefail its early exit would SIGPIPE tr)
    txt=$(tr '\0' '\n' 2>/dev/null <"/proc/$pid/cmdline"; tr '\0' '\n' 2>/dev/null <"/proc/$pid/environ")
    [[ $txt == *"$DIR/"* ]]
}
recorded_alive() {              # recorded_alive NAME
    local f=$RUN/$1.pid
    [[ -s $f ]] && alive "$1" "$(cat "$f")"
}
port_busy() { [[ -n $(ss -Hltn "sport = :$1" 2>/dev/null) ]]; }
wait_port() {                   # wait_port PORT SECONDS
    local i
    for ((i = 0; i < $2 * 10; i++)); do port_busy "$1" && return 0; sleep 0.1; done
    return 1
}
wait_pidfile() {                # wait_pidfile NAME FILE -> prints pid of live daemon
    local name=$1 f=$2 i pid
    for ((i = 0; i < 150; i++)); do
        if [[ -s $f ]]; then
            pid=$(tr -dc '0-9' <"$f")
            if alive "$name" "$pid"; then echo "$pid"; return 0; fi
        fi
        sleep 0.1
    done
    return 1
}
started=0                       # did this invocation start any daemon?
record() { echo "$2" >"$RUN/$1.pid"; started=1; }

# ---------------------------------------------------------------- layout + config
mkdir -p "$DIR"/{etc,munge,state/ctld,state/slurmd,log,run}
# munged: every directory above its socket must be o+x (mktemp -d gives 0700)
chmod 0755 "$DIR" "$DIR/munge"
if [[ ! -s $DIR/munge/munge.key ]]; then
    mungekey --create --bits=1024 --keyfile="$DIR/munge/munge.key"
fi
chmod 0600 "$DIR/munge/munge.key"    # munged refuses a key readable by group/others

# (re)write the configs only while no Slurm daemon of ours runs
if ! recorded_alive slurmctld && ! recorded_alive slurmd && ! recorded_alive slurmdbd ||
    [[ ! -s $CONF ]]; then
    NODE=$(hostname -s)
    # hardware as slurmd detects it, e.g. "CPUs=2 Boards=1 SocketsPerBoard=1
    # CoresPerSocket=2 ThreadsPerCore=1 RealMemory=24105"
    HW=$(/usr/sbin/slurmd -C | head -n1 | sed -e 's/^NodeName=[^ ]* //')
    if [[ $ACCT == 1 ]]; then
        ACCOUNTING="AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=$DBD_PORT
# the slurmctld->slurmdbd link ignores AuthInfo; this names its munge socket
AccountingStoragePass=$MUNGE_SOCK
JobAcctGatherType=jobacct_gather/linux"
    else
        ACCOUNTING="# no slurmdbd: sacct does not work; finished jobs stay visible to
# scontrol / squeue -t all for MinJobAge seconds and are appended to JobCompLoc
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none"
    fi
    cat >"$CONF.new" <<EOF
# Generated by studymake .ci/slurm/start.sh - private single-node cluster, no systemd, no cgroups.
ClusterName=local
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$MUNGE_SOCK
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
StateSaveLocation=$DIR/state/ctld
SlurmdSpoolDir=$DIR/state/slurmd
SlurmctldPidFile=$DIR/state/slurmctld.pid
SlurmdPidFile=$DIR/state/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
MailProg=/bin/true
# no cgroups / systemd: track job processes through /proc, no task binding
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
$ACCOUNTING
JobCompType=jobcomp/filetxt
JobCompLoc=$DIR/log/jobcomp.log
# finished jobs stay visible to squeue -t all / scontrol this long (default an hour), so a
# poller (which has no sacct here) always sees their terminal state and exit code
MinJobAge=$MIN_JOB_AGE
MpiDefault=none
SwitchType=switch/none
SchedulerType=sched/backfill
# default batch_sched_delay=3 makes each job wait ~3 s; 0 gives ~1 s
SchedulerParameters=batch_sched_delay=0
# a job whose dependency can never be satisfied (its afterok parent failed) is
# cancelled instead of pending forever.  (Since Slurm 20.11 this option lives
# here; under SchedulerParameters 22.05 silently ignores it.)
DependencyParameters=kill_invalid_depend
# one core per job, so two jobs run side by side on 2 CPUs
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
KillWait=5
NodeName=$NODE NodeAddr=127.0.0.1 $HW State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
    mv "$CONF.new" "$CONF"
    if [[ $ACCT == 1 ]]; then
        # slurmdbd has no -f: it reads slurmdbd.conf next to $SLURM_CONF; must be 0600
        umask 077
        cat >"$DIR/etc/slurmdbd.conf" <<EOF
AuthType=auth/munge
AuthInfo=socket=$MUNGE_SOCK
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=$DBD_PORT
SlurmUser=root
LogFile=$DIR/log/slurmdbd.log
PidFile=$DIR/state/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=root
StorageLoc=slurm_acct_db
EOF
        umask 022
    else
        rm -f "$DIR/etc/slurmdbd.conf"
    fi
    echo "export SLURM_CONF=$CONF" >&3 >"$DIR/env.sh"
fi
[[ $ACCT == 1 ]] && ! grep -q '^AccountingStorageType=accounting_storage/slurmdbd' "$CONF" &&
    die "cluster in $DIR is running without accounting; stop it first to enable STUDYMAKE_SLURM_ACCOUNTING"

# ---------------------------------------------------------------- daemons
# refuse early, before starting anything, if a port we need is someone else's
check_port() {                  # check_port NAME PORT
    recorded_alive "$1" || ! port_busy "$2" ||
        die "port $2 (for $1) is taken by another process; set STUDYMAKE_SLURM_*_PORT"
}
check_port slurmctld "$CTLD_PORT"
check_port slurmd "$SLURMD_PORT"
if [[ $ACCT == 1 ]]; then
    check_port slurmdbd "$DBD_PORT"
    check_port mariadbd "$DB_PORT"
fi

start_munged() {
    recorded_alive munged && return 0
    rm -f "$DIR/munge/munged.pid"
    log "starting munged"
    /usr/sbin/munged --socket="$MUNGE_SOCK" --key-file="$DIR/munge/munge.key" \
        --pid-file="$DIR/munge/munged.pid" --log-file="$DIR/log/munged.log" \
        --seed-file="$DIR/munge/munged.seed" </dev/null 3>&-
    local pid
    pid=$(wait_pidfile munged "$DIR/munge/munged.pid") || die "munged did not start, see $DIR/log/munged.log"
    record munged "$pid"
    munge -S "$MUNGE_SOCK" -n | unmunge -S "$MUNGE_SOCK" >/dev/null || die "munge round trip failed"
}
start_mariadbd() {
    recorded_alive mariadbd && return 0
    if [[ ! -d $DIR/db/data/mysql ]]; then
        log "initialising MariaDB data dir"
        rm -rf "$DIR/db/data"
        mkdir -p "$DIR/db"
        # root@localhost/127.0.0.1 with no password; reachable only from this host
        mariadb-install-db --no-defaults --datadir="$DIR/db/data" --user=root \
            --auth-root-authentication-method=normal --skip-test-db \
            >"$DIR/log/mariadb-install-db.log" 2>&1 ||
            die "mariadb-install-db failed, see $DIR/log/mariadb-install-db.log"
    fi
    rm -f "$DIR/db/mariadbd.pid"
    log "starting mariadbd"
    # mariadbd has no daemon mode: detach it into its own session
    setsid /usr/sbin/mariadbd --no-defaults --datadir="$DIR/db/data" --user=root \
        --socket="$DIR/db/mysqld.sock" --bind-address=127.0.0.1 --port="$DB_PORT" \
        --pid-file="$DIR/db/mariadbd.pid" --log-error="$DIR/log/mariadbd.log" \
        --innodb-buffer-pool-size=64M </dev/null >/dev/null 2>&1 3>&- &
    local pid
    pid=$(wait_pidfile mariadbd "$DIR/db/mariadbd.pid") || die "mariadbd did not start, see $DIR/log/mariadbd.log"
    record mariadbd "$pid"
    wait_port "$DB_PORT" "$WAIT_S" || die "mariadbd not listening on $DB_PORT, see $DIR/log/mariadbd.log"
}
start_slurm() {                 # start_slurm slurmctld|slurmd|slurmdbd PORT
    local d=$1 port=$2 pid args=()
    recorded_alive "$d" && return 0
    rm -f "$DIR/state/$d.pid"
    log "starting $d"
    [[ $d == slurmdbd ]] || args=(-f "$CONF")
    # daemon mode: forks, detaches and writes its own PID file
    "/usr/sbin/$d" "${args[@]}" </dev/null >>"$DIR/log/$d.stderr" 2>&1 3>&- ||
        die "$d failed to start, see $DIR/log/$d.log and $d.stderr"
    pid=$(wait_pidfile "$d" "$DIR/state/$d.pid") || die "$d did not start, see $DIR/log/$d.log and $d.stderr"
    record "$d" "$pid"
    wait_port "$port" "$WAIT_S" || die "$d not listening on $port, see $DIR/log/$d.log"
}

start_munged
if [[ $ACCT == 1 ]]; then
    start_mariadbd
    start_slurm slurmdbd "$DBD_PORT"   # slurmctld must find slurmdbd up
fi
start_slurm slurmctld "$CTLD_PORT"
start_slurm slurmd "$SLURMD_PORT"

# ---------------------------------------------------------------- readiness
NODE=$(sed -n 's/^NodeName=\([^ ]*\) .*/\1/p' "$CONF")
deadline=$((SECONDS + WAIT_S))
state=
while ((SECONDS < deadline)); do
    if [[ $(scontrol ping 2>/dev/null) == *'is UP'* ]]; then
        # '*' suffix (e.g. idle*) = node not responding yet: keep waiting
        state=$(sinfo -h -N -n "$NODE" -o '%T' 2>/dev/null || true)
        case $state in
            idle | mixed | allocated | completing) break ;;
            drained | draining | down | fail | failing)
                # e.g. left DOWN in the saved state after an unclean stop
                scontrol update NodeName="$NODE" State=RESUME 2>/dev/null || true ;;
        esac
    fi
    sleep 0.2
done
case $state in
    idle | mixed | allocated | completing) ;;
    *) die "node $NODE not ready after ${WAIT_S}s (state '$state'); see $DIR/log/" ;;
esac
if [[ $ACCT == 1 ]]; then
    until [[ $'\n'$(sacctmgr -n -P show cluster format=cluster 2>/dev/null)$'\n' == *$'\nlocal\n'* ]]; do
        ((SECONDS < deadline)) || die "cluster not registered in slurmdbd; see $DIR/log/"
        sleep 0.2
    done
fi
# one real job proves munge credentials, slurmd launch and slurmstepd all work
if ((started)) && ! timeout "$WAIT_S" srun -t 1 -D "$DIR" -J studymake-slurm-smoke true; then
    die "smoke job failed; see $DIR/log/"
fi
pids=
for d in munged mariadbd slurmdbd slurmctld slurmd; do
    [[ -s $RUN/$d.pid ]] && pids+=" $d=$(cat "$RUN/$d.pid")"
done
log "ready: node $NODE $state;$pids"
log "use: export SLURM_CONF=$CONF   (or . $DIR/env.sh); stop with .ci/slurm/stop.sh"
echo "export SLURM_CONF=$CONF" >&3
