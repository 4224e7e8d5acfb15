#!/usr/bin/env bash
# Start a one-node SLURM cluster on this machine (controller + compute daemon + munge) for the SLURM tests.
# Needs root and Debian's slurm-wlm + munge packages (CI installs them: .ci/run). Idempotent.
set -euo pipefail
command -v slurmctld >/dev/null || { echo "slurmctld not installed"; exit 1; }
if sinfo -h >/dev/null 2>&1; then echo "slurm already running"; exit 0; fi
CPUS=$(nproc)
MEM=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024 ))
HOST=$(hostname -s)
mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm /run/munge /etc/munge
if [ ! -s /etc/munge/munge.key ]; then
  dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key status=none
fi
chown -R munge:munge /etc/munge /run/munge 2>/dev/null || true
chmod 400 /etc/munge/munge.key
pgrep -x munged >/dev/null || munged --force 2>/dev/null || pgrep -x munged >/dev/null
cat > /etc/slurm/slurm.conf <<CONF
ClusterName=maxfm-ci
SlurmctldHost=${HOST}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MpiDefault=none
NodeName=${HOST} CPUs=${CPUS} RealMemory=${MEM} State=UNKNOWN
PartitionName=debug Nodes=${HOST} Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
CONF
rm -f /etc/slurm/cgroup.conf  # proctrack/linuxproc + task/none: no cgroups needed
slurmctld
slurmd
for _ in $(seq 1 30); do
  if sinfo -h -o "%t" 2>/dev/null | grep -qE "idle|mix"; then echo "slurm up: $(sinfo -h)"; exit 0; fi
  sleep 1
done
echo "slurm did not come up"; tail -20 /var/log/slurm/slurmctld.log /var/log/slurm/slurmd.log || true
exit 1
