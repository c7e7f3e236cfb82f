#!/usr/bin/env python3
"""CNI ADD/DEL latency of `sriov` on the emulated NIC, whole process (exec + agent round trips +
netlink), beside Debian's `host-device` + `static` on the same kind of devices in the same run.

sriov: VLAN + rate + MAC + fixed IP from the pod table (VF config through the PF, move + rename,
address, up). Peer: host-device moves a veth of the same NIC into the netns, static sets the IP.
Floor: `ip link set … netns … name net1` and back, whole process: the exec plus the one netlink
move every CNI that hands a device to a pod must pay (the kernel waits for RCU grace periods).
Prints medians, p90, the ratios and the overheads above the floor (paired per cycle, median
and trimmed mean). SWEEP="VFS:ENTRIES,…" runs several shapes of the NIC and the
pod table in one go and prints how flat sriov stays. Run as root; see scripts/bench-cni.sh.
"""
import json, os, random, statistics, subprocess, sys, time

BIN = os.environ.get("BIN", "target/release")
N = int(os.environ.get("N", "50"))
PF = os.environ.get("PF", "benchpf")
W = os.environ.get("W", "/run/sriov-bench")
ROOT = f"{W}/sys"


def sh(*a, check=True, **kw):
    return subprocess.run(a, check=check, capture_output=True, **kw)


def cni(plugin, cmd, cid, netns, pod, conf):
    env = {
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        "CNI_COMMAND": cmd, "CNI_CONTAINERID": cid, "CNI_NETNS": netns, "CNI_IFNAME": "net1",
        "CNI_ARGS": f"IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME={pod}",
        "CNI_PATH": "/usr/lib/cni",
    }
    t = time.perf_counter_ns()
    p = subprocess.run([plugin], input=json.dumps(conf).encode(), env=env, capture_output=True)
    dt = (time.perf_counter_ns() - t) / 1e6
    if p.returncode != 0:
        sys.exit(f"{plugin} {cmd} failed: {p.stdout.decode()} {p.stderr.decode()}")
    return dt


def stats(xs):
    xs = sorted(xs)
    return statistics.median(xs), xs[int(len(xs) * 0.9) - 1]


def trimmed_mean(xs, cut=0.2):
    """Mean of the middle (1 - 2 cut) of xs: the moves cost whole 4 ms jiffies (HZ=250; the kernel
    waits in rcu_barrier), so medians of per-cycle differences snap to a few values; a trimmed
    mean averages over the quantization and still ignores the tails."""
    xs = sorted(xs)
    k = int(len(xs) * cut)
    mid = xs[k:len(xs) - k] or xs
    return sum(mid) / len(mid)


def overheads(res):
    """Overhead above the floor, paired per cycle (each cycle runs the three back to back, so the
    machine's drift cancels): (ADD+DEL) - floor's (ADD+DEL), for sriov and the peer, as the median
    and as the 20 % trimmed mean, each with a bootstrap 95 % interval, and the ratio of the two."""
    cyc = {k: [a + d for a, d in zip(*v)] for k, v in res.items()}
    floor = cyc["floor (ip link netns)"]
    ours = [x - f for x, f in zip(cyc["sriov"], floor)]
    peer = [x - f for x, f in zip(cyc["host-device+static"], floor)]
    for name, est in (("median", statistics.median), ("trimmed mean", trimmed_mean)):
        rng = random.Random(1)
        boot = []
        for _ in range(2000):
            idx = [rng.randrange(len(ours)) for _ in ours]
            o = est([ours[i] for i in idx])
            p = est([peer[i] for i in idx])
            boot.append((o, p, o / p if p > 0 else float("inf")))
        def ci(j):
            xs = sorted(b[j] for b in boot)
            return xs[int(0.025 * len(xs))], xs[int(0.975 * len(xs)) - 1]
        om, pm = est(ours), est(peer)
        (ol, oh), (pl, ph), (rl, rh) = ci(0), ci(1), ci(2)
        ratio = f"{om / pm:.2f}" if pm > 0 else "inf"
        print(f"  overhead above the floor, paired per cycle, {name} (95 % CI): sriov {om:.2f} ms "
              f"[{ol:.2f}, {oh:.2f}], peer {pm:.2f} ms [{pl:.2f}, {ph:.2f}]; "
              f"ratio sriov / peer {ratio} [{rl:.2f}, {rh:.2f}]")


def timed(*a):
    t = time.perf_counter_ns()
    sh(*a)
    return (time.perf_counter_ns() - t) / 1e6


def run(VFS, ENTRIES):
    """One shape: VFS emulated VFs, ENTRIES pod-table entries. Returns {name: (adds, dels)}."""
    os.makedirs(W, exist_ok=True)
    sh(f"{BIN}/sriov-device-plugin", "emulate", "up", "--pf", PF, "--vfs", str(VFS), "--sysfs-root", ROOT)
    pods = {f"default/b-{i}": {"ips": [f"10.{40 + i // 60000}.{(i // 250) % 240}.{i % 250 + 2}/8"]}
            for i in range(ENTRIES)}
    table = {"networks": {"bench": {"defaults": {"vlan": 100, "max_tx_rate": 1000}, "pods": pods}}}
    with open(f"{W}/table.json", "w") as f:
        json.dump(table, f)
    with open(f"{W}/pools.json", "w") as f:
        json.dump({"resourceList": [{"resourceName": "emu", "resourcePrefix": "bench.io",
                                     "selectors": {"pfNames": [PF]}}]}, f)
    agent = subprocess.Popen([f"{BIN}/sriov-device-plugin", "run", "--standalone",
                              "--socket", f"{W}/agent.sock", "--state-dir", f"{W}/state",
                              "--sysfs-root", ROOT, "--config", f"{W}/pools.json",
                              "--pod-table", f"{W}/table.json"], stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            if os.path.exists(f"{W}/agent.sock"):
                break
            time.sleep(0.1)
        sh("ip", "netns", "add", "benchns")
        ns = "/run/netns/benchns"
        sconf = {"cniVersion": "1.0.0", "name": "bench", "type": "sriov", "resourceName": "bench.io/emu",
                 "mac": "02:00:00:be:ac:01", "agentSocket": f"{W}/agent.sock"}
        # The peer gets a veth of the same emulated NIC that sriov never uses (the last VF).
        peer_dev = f"{PF}v{VFS - 1}"
        pconf = {"cniVersion": "1.0.0", "name": "bench", "type": "host-device", "device": peer_dev,
                 "ipam": {"type": "static", "addresses": [{"address": "10.99.0.2/24"}]}}
        # Keep the pool from handing out the peer's VF: pin sriov to VF 0 by deviceID.
        inv = json.loads(sh(f"{BIN}/sriov-device-plugin", "inventory", "--json", "--sysfs-root", ROOT).stdout)
        sconf["deviceID"] = inv["pfs"][0]["vfs"][0]["pci"]
        res = {"sriov": ([], []), "host-device+static": ([], []), "floor (ip link netns)": ([], [])}
        floor_dev = f"{PF}v{VFS - 2}"
        for i in range(N):
            pod = f"b-{i % ENTRIES}"
            a = cni(f"{BIN}/sriov", "ADD", f"s{i}", ns, pod, sconf)
            d = cni(f"{BIN}/sriov", "DEL", f"s{i}", ns, pod, sconf)
            res["sriov"][0].append(a); res["sriov"][1].append(d)
            a = cni("/usr/lib/cni/host-device", "ADD", f"p{i}", ns, pod, pconf)
            d = cni("/usr/lib/cni/host-device", "DEL", f"p{i}", ns, pod, pconf)
            res["host-device+static"][0].append(a); res["host-device+static"][1].append(d)
            a = timed("ip", "link", "set", "dev", floor_dev, "netns", "benchns", "name", "net1")
            d = timed("ip", "-n", "benchns", "link", "set", "dev", "net1", "netns", "1", "name", floor_dev)
            res["floor (ip link netns)"][0].append(a); res["floor (ip link netns)"][1].append(d)
        # The fixed cost of talking to the agent: a DEL of a container it never saw is exec,
        # connect, one Fetch and exit; VERSION is exec and exit (no agent), as `ip -V` is.
        fixed = {"ip -V": [], "sriov VERSION": [], "sriov DEL, unknown container": []}
        for i in range(N):
            fixed["ip -V"].append(timed("ip", "-V"))
            fixed["sriov VERSION"].append(cni(f"{BIN}/sriov", "VERSION", "v", ns, "b-0", sconf))
            fixed["sriov DEL, unknown container"].append(
                cni(f"{BIN}/sriov", "DEL", f"none{i}", ns, "b-0", sconf))
        print(f"CNI latency, whole process, N={N}, {VFS} VFs, {ENTRIES} pod-table entries")
        for name, xs in fixed.items():
            print(f"  {name:30s} median {statistics.median(xs):6.2f} ms")
        cyc = {}
        for name, (adds, dels) in res.items():
            am, a90 = stats(adds); dm, d90 = stats(dels)
            cyc[name] = am + dm
            print(f"  {name:22s} ADD median {am:7.2f} ms (p90 {a90:6.2f})   DEL median {dm:7.2f} ms (p90 {d90:6.2f})   ADD+DEL {am + dm:7.2f} ms")
        print(f"  ratio sriov / peer (ADD+DEL medians): {cyc['sriov'] / cyc['host-device+static']:.2f}")
        print(f"  ratio sriov / floor (ADD+DEL medians): {cyc['sriov'] / cyc['floor (ip link netns)']:.2f}")
        overheads(res)
        return res
    finally:
        subprocess.run(["ip", "netns", "del", "benchns"], capture_output=True)
        agent.terminate(); agent.wait()
        sh(f"{BIN}/sriov-device-plugin", "emulate", "down", "--pf", PF, "--sysfs-root", ROOT, check=False)
        subprocess.run(["rm", "-rf", W])


def main():
    shapes = os.environ.get("SWEEP") or f"{os.environ.get('VFS', '8')}:{os.environ.get('ENTRIES', '10')}"
    shapes = [tuple(int(x) for x in s.split(":")) for s in shapes.split(",")]
    base = None
    for vfs, entries in shapes:
        res = run(vfs, entries)
        am = stats(res["sriov"][0])[0]; dm = stats(res["sriov"][1])[0]
        if base is None:
            base = (am, dm)
        elif len(shapes) > 1:
            print(f"  flatness vs {shapes[0][0]} VFs / {shapes[0][1]} entries: "
                  f"ADD {am / base[0]:.2f}x, DEL {dm / base[1]:.2f}x")


if __name__ == "__main__":
    main()
