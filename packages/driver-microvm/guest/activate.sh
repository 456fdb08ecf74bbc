#!/bin/sh
# Turns a restored boot snapshot into one sandbox (run by the agent, as the guest's root):
#   activate.sh <memory bytes> <pids max> <cpu quota us> <tmp bytes> <uid> <gid> <home> <now s> <seed>
# Mounts the sandbox's own disk (the changes disk) as the overlay's upper layer over the image,
# gives the sandbox a minimal /dev (no devtmpfs: no disks, no console, no kernel memory),
# sized memory file systems, and the limits of its cgroup.
set -eu
memory=$1 pids=$2 quota=$3 tmp=$4 uid=$5 gid=$6 home=$7 now=$8 seed=$9
# A restored guest has the snapshot's clock and random generator: both come from the host.
date -u -s "@$now" >/dev/null
/polydev/guest-run --seed "$seed"
changes=""
for block in /sys/block/vd*; do
  [ "$(cat "$block/serial" 2>/dev/null)" = "changes" ] && changes="/dev/$(basename "$block")"
done
[ -n "$changes" ] || { echo "no changes disk" >&2; exit 1; }
# The snapshot's kernel may hold blocks of the template's disk in its cache: drop them.
blockdev --flushbufs "$changes"
mount -t ext4 -o nodev "$changes" /changes
mkdir -p /changes/upper /changes/work
mount -t overlay overlay -o "lowerdir=/lower,upperdir=/changes/upper,workdir=/changes/work" /sandbox
cd /sandbox
mkdir -p proc sys dev tmp opt/polydev
mount -t sysfs -o ro,nosuid,nodev,noexec sysfs sys
mount -t tmpfs -o size=64k,mode=0755,nosuid,noexec dev dev
mknod -m 666 dev/null c 1 3
mknod -m 666 dev/zero c 1 5
mknod -m 666 dev/full c 1 7
mknod -m 666 dev/random c 1 8
mknod -m 666 dev/urandom c 1 9
mknod -m 666 dev/tty c 5 0
mkdir -p dev/pts dev/shm
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620,gid=5,nosuid,noexec devpts dev/pts
ln -s pts/ptmx dev/ptmx
# The agent's terminals come from the sandbox's own devpts instance (its /dev/ptmx node uses
# the pts beside it), so a terminal's slave is /dev/pts/N inside the sandbox too.
mkdir -p /dev/pts
mount --bind /sandbox/dev/pts /dev/pts
ln -s /proc/self/fd dev/fd
ln -s /proc/self/fd/0 dev/stdin
ln -s /proc/self/fd/1 dev/stdout
ln -s /proc/self/fd/2 dev/stderr
mount -t tmpfs -o "size=$tmp,mode=1777,nosuid,nodev" shm dev/shm
mount -t tmpfs -o "size=$tmp,mode=1777,nosuid,nodev" tmp tmp
mount --bind /opt/polydev opt/polydev
mount -o remount,bind,ro opt/polydev
if [ ! -d ".$home" ]; then
  mkdir -p ".$home"
  chown "$uid:$gid" ".$home"
  chmod 0700 ".$home"
fi
cgroup=/sys/fs/cgroup/sandbox
echo "$memory" > $cgroup/memory.max
echo 0 > $cgroup/memory.swap.max 2>/dev/null || true
echo "$pids" > $cgroup/pids.max
echo "$quota 100000" > $cgroup/cpu.max
# The sandbox's pid namespace and its /proc (mounted from inside it).
/polydev/guest-run --sandbox-init
