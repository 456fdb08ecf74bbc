#!/bin/busybox sh
# The initramfs's /init: loads the virtio modules the cloud kernel has as modules, mounts the
# image (read-only) and the toolbox, and starts the agent under guest-run's reaper. Everything
# here runs once per boot snapshot, before any sandbox exists; a sandbox's own disk is mounted
# later by guest-run --activate, after the restore.
/bin/busybox mkdir -p /proc /sys /dev /run /tmp /bin /sbin /usr/bin /usr/sbin
/bin/busybox --install -s
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
# Sized: what the agent keeps here (background commands' output) is bounded by it.
mount -t tmpfs -o size=64m,mode=0755 run /run
mount -t tmpfs -o size=16m,mode=1777 tmp /tmp
for module in $(cat /lib/modules/order); do
  insmod "/lib/modules/$module.ko" || { echo "polydev init: cannot load $module"; poweroff -f; }
done
disk_with_serial() {
  for block in /sys/block/vd*; do
    [ "$(cat "$block/serial" 2>/dev/null)" = "$1" ] && { basename "$block"; return; }
  done
}
mkdir -p /lower /opt/polydev /changes /sandbox
mount -t ext4 -o ro,noload "/dev/$(disk_with_serial root)" /lower || { echo "polydev init: no root disk"; poweroff -f; }
mount -t ext4 -o ro,noload "/dev/$(disk_with_serial toolbox)" /opt/polydev || { echo "polydev init: no toolbox disk"; poweroff -f; }
mount -t cgroup2 cgroup2 /sys/fs/cgroup
echo "+memory +pids +cpu" > /sys/fs/cgroup/cgroup.subtree_control
mkdir -p /sys/fs/cgroup/sandbox
hostname polydev
ip link set lo up 2>/dev/null || ifconfig lo 127.0.0.1 up
port=""
for entry in /sys/class/virtio-ports/*; do
  [ "$(cat "$entry/name" 2>/dev/null)" = "polydev.agent" ] && port="/dev/$(basename "$entry")"
done
[ -n "$port" ] || { echo "polydev init: no agent port"; poweroff -f; }
echo "polydev init: starting the agent on $port"
exec /polydev/guest-run --init /opt/polydev/bin/node /polydev/agent.mjs "$port" </dev/console >/dev/console 2>&1
