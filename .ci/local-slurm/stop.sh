#!/usr/bin/env bash
# Stop the cluster that start.sh started: cancel its jobs, then kill exactly the daemons whose PIDs it saved (never
# processes matched by name: other SLURM or munge processes on the machine are not ours), and remove its config.
#   SLURM_BASE  the same as given to start.sh (default /tmp/simmerge-local-slurm); add `rm -rf "$SLURM_BASE"` for a
#               fully fresh state.
# Safe to run when nothing is running.
set -uo pipefail
SLURM_BASE=${SLURM_BASE:-/tmp/simmerge-local-slurm}
CONF=/etc/slurm/slurm.conf
MARKER="# simmerge local test cluster: written by .ci/local-slurm/start.sh, removed by stop.sh"
ours=false
[ -e "$CONF" ] && [ "$(head -n 1 "$CONF")" = "$MARKER" ] && ours=true

is_running() { [ -s "$SLURM_BASE/run/$1.pid" ] && kill -0 "$(cat "$SLURM_BASE/run/$1.pid")" 2>/dev/null; }

# A job step runs under slurmstepd, which outlives slurmd: cancel the jobs while the controller still answers.
if $ours && is_running slurmctld; then
  jobs=$(squeue -h -t RUNNING,PENDING,CONFIGURING,COMPLETING -o %A 2>/dev/null)
  if [ -n "$jobs" ]; then
    scancel $jobs
    for _ in $(seq 1 50); do
      [ -z "$(squeue -h -t RUNNING,PENDING,CONFIGURING,COMPLETING -o %A 2>/dev/null)" ] && break
      sleep 0.2
    done
  fi
fi

for daemon in slurmd slurmctld munged; do
  pidfile="$SLURM_BASE/run/$daemon.pid"
  [ -s "$pidfile" ] || continue
  pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    for _ in $(seq 1 100); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
  fi
  rm -f "$pidfile"
done
if $ours; then rm -f "$CONF"; fi
exit 0
