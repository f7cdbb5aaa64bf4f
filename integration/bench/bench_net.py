#!/usr/bin/env python3
"""The cost of networking on `run` (issue 10, item 8): run by bench-net.sh
inside a network namespace of its own (nsenter --net, so the host's
interfaces, routes and iptables are never touched).

Cases, interleaved, N runs each (wall ms of the whole `run` of /bin/true):
  cuddy              cuddy run, the config's new network namespace (lo only)
  cuddy-bridge       cuddy run --network bridge (veth, IPAM, routes, /etc files)
  cuddy-cni          cuddy run --network cni (the Debian plugins of the list)
  runc               runc run, the config's new network namespace
  runc+cni           what podman (CNI backend) does around runc: a network
                     namespace made and pinned in-process, ADD of each plugin of
                     the same list, runc run joining that namespace, DEL of each
                     plugin in reverse, namespace unpinned
The table gives medians, p90, and the median added to the plain run of the
same runtime.
"""

import argparse
import ctypes
import json
import os
import statistics
import subprocess
import sys
import time

libc = ctypes.CDLL(None, use_errno=True)
CLONE_NEWNET = 0x40000000
MS_BIND = 4096
MNT_DETACH = 2


def check(r, what):
    if r != 0:
        e = ctypes.get_errno()
        raise OSError(e, f"{what}: {os.strerror(e)}")


def pin_netns(path):
    """A new network namespace, bind-mounted on `path` (podman's netns
    package does the same from a locked thread)."""
    home = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        check(libc.unshare(CLONE_NEWNET), "unshare")
        open(path, "w").close()
        check(libc.mount(b"/proc/self/ns/net", path.encode(), None, MS_BIND, None), "mount")
    finally:
        check(libc.setns(home, CLONE_NEWNET), "setns back")
        os.close(home)


def unpin_netns(path):
    libc.umount2(path.encode(), MNT_DETACH)
    os.unlink(path)


def plugin(verb, conf, netns, cid, plugin_dir, prev=None):
    """One plugin invocation, as libcni does it."""
    c = dict(conf)
    c["name"], c["cniVersion"] = LIST["name"], LIST["cniVersion"]
    if prev is not None:
        c["prevResult"] = prev
    env = dict(os.environ, CNI_COMMAND=verb, CNI_CONTAINERID=cid, CNI_NETNS=netns,
               CNI_IFNAME="eth0", CNI_PATH=plugin_dir)
    p = subprocess.run([os.path.join(plugin_dir, conf["type"])], input=json.dumps(c).encode(),
                       env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if p.returncode != 0:
        raise RuntimeError(f"{conf['type']} {verb}: {p.stdout.decode()} {p.stderr.decode()}")
    return json.loads(p.stdout) if verb == "ADD" else None


def runc_cni(a, name):
    ns = os.path.join(a.workdir, "netns-" + name)
    pin_netns(ns)
    try:
        prev = None
        for p in LIST["plugins"]:
            prev = plugin("ADD", p, ns, name, a.plugins, prev)
        cfg = json.load(open(os.path.join(a.bundle, "config.json")))
        for n in cfg["linux"]["namespaces"]:
            if n["type"] == "network":
                n["path"] = ns
        cfg["root"]["path"] = os.path.join(a.bundle, "rootfs")
        b = os.path.join(a.workdir, "bundle-runc-cni")
        os.makedirs(b, exist_ok=True)
        with open(os.path.join(b, "config.json"), "w") as f:
            json.dump(cfg, f)
        run([a.runc, "--root", os.path.join(a.workdir, "root-runc"), "run", "--bundle", b, name])
        for p in reversed(LIST["plugins"]):
            plugin("DEL", p, ns, name, a.plugins, prev)
    finally:
        unpin_netns(ns)


def run(argv):
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: exit {p.returncode}: {p.stderr.decode().strip()}")


def main():
    global LIST
    ap = argparse.ArgumentParser()
    ap.add_argument("--cuddy", required=True)
    ap.add_argument("--runc", default="")
    ap.add_argument("--bundle", required=True)
    ap.add_argument("--conf-dir", required=True)
    ap.add_argument("--plugins", default="/usr/lib/cni")
    ap.add_argument("--workdir", required=True)
    ap.add_argument("-n", type=int, default=30)
    ap.add_argument("-o", default="")
    a = ap.parse_args()
    LIST = json.load(open(os.path.join(a.conf_dir, sorted(os.listdir(a.conf_dir))[0])))
    croot = os.path.join(a.workdir, "root-cuddy")
    cases = {
        "cuddy": lambda n: run([a.cuddy, "--root", croot, "run", "--bundle", a.bundle, n]),
        "cuddy-bridge": lambda n: run([a.cuddy, "--root", croot, "run", "--network", "bridge",
                                       "--bundle", a.bundle, n]),
        "cuddy-cni": lambda n: run([a.cuddy, "--root", croot, "run", "--network", "cni",
                                    "--cni-config-dir", a.conf_dir, "--cni-plugin-dir", a.plugins,
                                    "--bundle", a.bundle, n]),
    }
    if a.runc:
        cases["runc"] = lambda n: run([a.runc, "--root", os.path.join(a.workdir, "root-runc"), "run",
                                       "--bundle", a.bundle, n])
        cases["runc+cni"] = lambda n: runc_cni(a, n)
    times = {k: [] for k in cases}
    errors = {}
    for i in range(a.n + 1):  # the first round warms caches, untimed
        for k, f in cases.items():
            if k in errors:
                continue
            name = f"cuddy-bench-net-{k.replace('+', '-')}-{i}"
            t = time.perf_counter()
            try:
                f(name)
            except Exception as e:  # noqa: BLE001 - reported in the table
                errors[k] = str(e)
                continue
            if i > 0:
                times[k].append((time.perf_counter() - t) * 1000)
    out = table(a, times, errors)
    print(out)
    if a.o:
        with open(a.o, "w") as f:
            f.write(out + "\n")


def p90(xs):
    s = sorted(xs)
    return s[min(len(s) - 1, int(round(0.9 * (len(s) - 1))))]


def table(a, times, errors):
    med = {k: statistics.median(v) for k, v in times.items() if v}
    lines = [
        f"### Networking cost on `run` of /bin/true ({a.n} runs each, interleaved; list: {LIST['name']}, "
        f"plugins: {', '.join(p['type'] for p in LIST['plugins'])})",
        "",
        "| case | median ms | p90 ms | added to the plain run (ms) | ratio to the plain run |",
        "|---|---:|---:|---:|---:|",
    ]
    for k in times:
        if k in errors:
            lines.append(f"| {k} | n/a | n/a | n/a | n/a |")
            continue
        base = "runc" if k.startswith("runc") else "cuddy"
        b = med.get(base)
        added = f"{med[k] - b:+.1f}" if b and k != base else "-"
        ratio = f"{med[k] / b:.2f}" if b else "n/a"
        lines.append(f"| {k} | {med[k]:.1f} | {p90(times[k]):.1f} | {added} | {ratio} |")
    for k, e in errors.items():
        lines.append(f"\n{k}: {e}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
