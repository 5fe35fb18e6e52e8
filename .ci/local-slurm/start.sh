#!/usr/bin/env bash
# Start a one-node SLURM cluster on this machine by hand (no systemd), as root: munged + slurmctld + slurmd, no
# slurmdbd. Used by tests/workflow/test_slurm.py, and usable to try profiles/slurm locally:
#   sudo .ci/local-slurm/start.sh && snakemake --profile profiles/slurm ... ; sudo .ci/local-slurm/stop.sh
# Measured on Debian 12, 2 cores: under 10 s from a machine without the packages, under 2 s with them.
#
#   SLURM_BASE       where state, logs, sockets and PID files go (default /tmp/simmerge-local-slurm)
#   SLURM_PARTITION  name of the one partition, which is the default one (default debug)
#   SLURM_NODE_CPUS  CPUs the node offers to jobs (default: its cores, nproc). More than its cores oversubscribes
#                    them: more short jobs run at once, each slower when they all compute.
#
# Without slurmdbd `sacct` cannot answer, so Snakemake's SLURM plugin must ask `squeue` (slurm-status-command:
# squeue); MinJobAge keeps finished jobs visible to squeue for an hour, long enough for the plugin and for a test
# to read their final state.
#
# Exit status: 0 the cluster is up; 3 the SLURM packages are missing and apt-get could not install them;
# 4 refused: a cluster from this script is running already (stop.sh first), or /etc/slurm/slurm.conf was not
# written by this script; 1 anything else (see $SLURM_BASE/log).
set -euo pipefail
SLURM_BASE=${SLURM_BASE:-/tmp/simmerge-local-slurm}
PARTITION=${SLURM_PARTITION:-debug}
NODE_CPUS=${SLURM_NODE_CPUS:-$(nproc)}
CONF=/etc/slurm/slurm.conf
MARKER="# simmerge local test cluster: written by .ci/local-slurm/start.sh, removed by stop.sh"

if [ "$(id -u)" -ne 0 ]; then
  echo "start.sh: must run as root (the daemons run as root and the config goes to $CONF)" >&2
  exit 4
fi

# 1. Packages, only when missing. Installing does not start anything: there is no init system to start them.
missing=""
for package in slurmctld slurmd slurm-client munge; do
  dpkg -s "$package" >/dev/null 2>&1 || missing="$missing $package"
done
if [ -n "$missing" ]; then
  export DEBIAN_FRONTEND=noninteractive
  if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends $missing >/dev/null; }; then
    echo "start.sh: could not install$missing with apt-get" >&2
    exit 3
  fi
fi

# 2. Refuse to start over a running cluster: a second munged would take over the socket and the PID file, leaving
#    the first one running untracked.
for pidfile in "$SLURM_BASE"/run/*.pid; do
  if [ -s "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    echo "start.sh: already running ($pidfile); run stop.sh first" >&2
    exit 4
  fi
done
# Never overwrite the configuration of a real cluster this machine may be a client of.
if [ -e "$CONF" ] && [ "$(head -n 1 "$CONF")" != "$MARKER" ]; then
  echo "start.sh: $CONF exists and was not written by this script; not touching it" >&2
  exit 4
fi

mkdir -p "$SLURM_BASE"/{run,log,ctld,spool,munge}
chmod 700 "$SLURM_BASE/munge"
[ -s "$SLURM_BASE/munge/munge.key" ] || dd if=/dev/urandom of="$SLURM_BASE/munge/munge.key" bs=1024 count=1 status=none
chmod 400 "$SLURM_BASE/munge/munge.key"

NODE=$(hostname -s)
REAL_MEMORY_MB=$(awk '/MemTotal/ {print int($2 / 1024) - 1024}' /proc/meminfo)  # leave 1 GiB to the system

# 3. The configuration must sit at the compiled-in default path: the plugin's jobstep drops every SLURM_* variable,
#    SLURM_CONF included, before its inner srun, which then finds no configuration.
mkdir -p /etc/slurm
cat >"$CONF" <<CONFIG
$MARKER
ClusterName=simmerge
SlurmctldHost=${NODE}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=${SLURM_BASE}/run/munge.socket.2
StateSaveLocation=${SLURM_BASE}/ctld
SlurmdSpoolDir=${SLURM_BASE}/spool
SlurmctldPidFile=${SLURM_BASE}/run/slurmctld.pid
SlurmdPidFile=${SLURM_BASE}/run/slurmd.pid
SlurmctldLogFile=${SLURM_BASE}/log/slurmctld.log
SlurmdLogFile=${SLURM_BASE}/log/slurmd.log
SlurmctldPort=6817
SlurmdPort=6818
MailProg=/bin/true
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SwitchType=switch/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
ReturnToService=2
MinJobAge=3600
# The node's CPUs come from this file, not from its hardware (SLURM_NODE_CPUS may exceed the cores).
SlurmdParameters=config_overrides
SlurmctldTimeout=30
SlurmdTimeout=30
NodeName=${NODE} NodeAddr=127.0.0.1 CPUs=${NODE_CPUS} RealMemory=${REAL_MEMORY_MB} State=UNKNOWN
PartitionName=${PARTITION} Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONFIG
unset SLURM_CONF

# 4. The daemons fork into the background and write their PID files, which are all that stop.sh kills.
munged --key-file="$SLURM_BASE/munge/munge.key" \
  --socket="$SLURM_BASE/run/munge.socket.2" \
  --pid-file="$SLURM_BASE/run/munged.pid" \
  --log-file="$SLURM_BASE/log/munged.log" \
  --seed-file="$SLURM_BASE/munge/munged.seed" --force
slurmctld
slurmd

for _ in $(seq 1 120); do
  if sinfo -h -N -o '%T' 2>/dev/null | grep -qx idle; then
    echo "slurm up: node $NODE, partition $PARTITION, $NODE_CPUS CPUs on $(nproc) cores, ${REAL_MEMORY_MB} MB; logs in $SLURM_BASE/log"
    exit 0
  fi
  sleep 0.5
done
echo "start.sh: the node did not become idle within 60 s; see $SLURM_BASE/log" >&2
exit 1
