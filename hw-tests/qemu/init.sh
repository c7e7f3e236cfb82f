#!/bin/sh
# /init of the QEMU igb guest: mount, load igb/igbvf/vfio-pci, bring the PF up with carrier,
# enable the VFs, then run the real flow (sriov-hwcheck drives the release `sriov` and
# `sriov-device-plugin` binaries) and power off. Output is line-oriented on the serial console:
# `CHECK <name> ok|FAIL <detail>`, `INFO ...`, and a final `SUMMARY {json}`.
/bin/busybox --install -s /bin
export PATH=/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin SRIOV_BIN_DIR=/usr/local/bin HOME=/root
mount -t proc proc /proc; mount -t sysfs sysfs /sys; mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /run; mount -t tmpfs tmpfs /tmp
echo 1 > /proc/sys/kernel/printk   # keep kernel messages off the result lines
echo "BOOTED uptime $(cut -d' ' -f1 /proc/uptime)"   # the host's boot watchdog waits for this
arg() { sed -n "s/.*\b$1=\([^ ]*\).*/\1/p" /proc/cmdline; }
NUMVFS=$(arg sriov_numvfs); NUMVFS=${NUMVFS:-7}
fail() { echo "CHECK guest.setup FAIL $*"; echo 'SUMMARY {"checks":1,"failed":1,"failures":["guest.setup"]}'; poweroff -f; }
for m in $(cat /lib/modules/order); do insmod /lib/modules/$m || echo "INFO insmod $m failed"; done
/usr/sbin/ip link set lo up
PF=$(ls /sys/bus/pci/drivers/igb/*/net/ 2>/dev/null | grep -v : | head -n1)
[ -n "$PF" ] || fail "no igb PF netdev"
/usr/sbin/ip link set "$PF" up
i=0; while [ "$(cat /sys/class/net/$PF/carrier 2>/dev/null)" != 1 ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
[ "$(cat /sys/class/net/$PF/carrier)" = 1 ] || fail "PF $PF has no carrier"
echo "$NUMVFS" > /sys/class/net/$PF/device/sriov_numvfs || fail "cannot enable $NUMVFS VFs"
# Wait until every VF has its igbvf netdev.
i=0; while [ $i -lt 100 ]; do
  n=0; for v in /sys/class/net/$PF/device/virtfn*; do [ -n "$(ls $v/net 2>/dev/null)" ] && n=$((n+1)); done
  [ $n = "$NUMVFS" ] && break; sleep 0.1; i=$((i+1))
done
echo "INFO guest kernel $(uname -r) PF $PF speed $(cat /sys/class/net/$PF/speed) VFs with netdevs $n/$NUMVFS uptime $(cut -d' ' -f1 /proc/uptime)"
VFIO=""; [ -n "$(ls /sys/kernel/iommu_groups 2>/dev/null)" ] && VFIO=--vfio
sriov-hwcheck --pf "$PF" --qemu $VFIO --iterations "$(arg hwcheck_iterations)"
echo "INFO guest done uptime $(cut -d' ' -f1 /proc/uptime)"
poweroff -f
