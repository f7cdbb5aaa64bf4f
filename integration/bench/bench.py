#!/usr/bin/env python3
"""Measurement loops, statistics and the Markdown table for bench.sh.

Not meant to be run by hand: bench.sh prepares the bundles, the per-runtime
--root directories, the crun mount namespace (if needed) and the cleanup.

Every runtime command is started the same way (fork + exec from this process,
stdin/stdout on /dev/null, stderr to a file) and waited for with a pidfd, so the
overhead of the harness is identical for every runtime. For a runtime with a
mount namespace (crun on a hybrid cgroup host, see bench.sh) the forked child
calls setns(2) into it before exec: no extra process in the timed path.
"""
import argparse
import ctypes
import json
import os
import select
import shutil
import signal
import sys
import time

CLONE_NEWNS = 0x00020000
_libc = ctypes.CDLL(None, use_errno=True)
DEVNULL = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)


class Failed(Exception):
    pass


class Runtime:
    def __init__(self, name, binary, root, mntns, errfile):
        self.name = name
        self.binary = binary
        self.root = root
        self.ns_fd = os.open(mntns, os.O_RDONLY | os.O_CLOEXEC) if mntns else None
        self.errfile = errfile
        self.error = None  # set when the runtime is unusable as a whole

    def argv(self, *args):
        return [self.binary, "--root", self.root, *args]


def spawn(rt, argv, stdout=None, errfile=None):
    """fork+exec argv (for rt: setns first). stderr goes to errfile or rt.errfile (truncated)."""
    err = os.open(errfile or rt.errfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    out = DEVNULL if stdout is None else stdout
    pid = os.fork()
    if pid == 0:  # child: only async-signal-safe-ish work, then exec
        try:
            if rt.ns_fd is not None and _libc.setns(rt.ns_fd, CLONE_NEWNS) != 0:
                os.write(err, b"bench: setns into the crun mount namespace failed\n")
                os._exit(126)
            os.dup2(DEVNULL, 0)
            os.dup2(out, 1)
            os.dup2(err, 2)
            os.execv(argv[0], argv)
        except BaseException as e:  # noqa: BLE001
            try:
                os.write(2, f"bench: exec {argv[0]}: {e}\n".encode())
            finally:
                os._exit(127)
    os.close(err)
    return pid


def wait_all(pids, timeout):
    """Wait for all pids (pidfd + poll, no sleeping). Returns {pid: exit code}.

    on_exit(pid, code) may return a new pid to wait for as well (used to chain
    create -> start in the concurrent test)."""
    return wait_chain(pids, timeout, None)


def wait_chain(pids, timeout, on_exit):
    deadline = time.monotonic() + timeout
    fds = {}
    poller = select.poll()

    def add(pid):
        fd = os.pidfd_open(pid)
        fds[fd] = pid
        poller.register(fd, select.POLLIN)

    for p in pids:
        add(p)
    codes = {}
    while fds:
        left = deadline - time.monotonic()
        if left <= 0:
            for fd, pid in fds.items():
                try:
                    os.kill(pid, signal.SIGKILL)
                    os.waitpid(pid, 0)
                except OSError:
                    pass
                os.close(fd)
                codes[pid] = "timeout"
            return codes
        for fd, _ in poller.poll(left * 1000):
            pid = fds.pop(fd)
            poller.unregister(fd)
            os.close(fd)
            _, status = os.waitpid(pid, 0)
            codes[pid] = os.waitstatus_to_exitcode(status)
            if on_exit:
                nxt = on_exit(pid, codes[pid])
                if nxt:
                    add(nxt)
    return codes


def last_error(rt, errfile=None):
    try:
        with open(errfile or rt.errfile, errors="replace") as f:
            lines = [l.strip() for l in f if l.strip()]
    except OSError:
        lines = []
    msg = lines[-1] if lines else "(no message on stderr)"
    return msg[:300]


def timed(rt, *args, timeout=60, stdout=None, argv=None):
    """Run one runtime command; return elapsed ms or raise Failed(message)."""
    argv = argv or rt.argv(*args)
    t0 = time.perf_counter()
    pid = spawn(rt, argv, stdout)
    code = wait_all([pid], timeout)[pid]
    ms = (time.perf_counter() - t0) * 1000.0
    if code != 0:
        raise Failed(f"`{' '.join(args or argv[1:])}` exit {code}: {last_error(rt)}")
    return ms


def quiet(rt, *args, timeout=30):
    """Untimed helper command; returns exit code (never raises)."""
    pid = spawn(rt, rt.argv(*args))
    return wait_all([pid], timeout)[pid]


def capture(rt, argv, timeout=30):
    """Run argv, return (exit code, stdout bytes)."""
    r, w = os.pipe()
    pid = spawn(rt, argv, stdout=w)
    os.close(w)
    data = b""
    while True:
        chunk = os.read(r, 65536)
        if not chunk:
            break
        data += chunk
    os.close(r)
    return wait_all([pid], timeout)[pid], data


def state_status(rt, name):
    code, data = capture(rt, rt.argv("state", name))
    if code != 0:
        return None
    try:
        return json.loads(data).get("status")
    except ValueError:
        return None


def wait_stopped(rt, name, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st = state_status(rt, name)
        if st in ("stopped", None):
            return
        time.sleep(0.002)
    raise Failed(f"{name} not stopped {timeout}s after kill")


def expect_status(rt, name, want):
    st = state_status(rt, name)
    if st != want:
        raise Failed(f"after the command, `state {name}` says {st!r}, expected {want!r}")


def force_delete(rt, name):
    quiet(rt, "delete", "--force", name)


# --------------------------------------------------------------------------- stats

def pct(xs, p):
    xs = sorted(xs)
    if not xs:
        return None
    k = (len(xs) - 1) * p / 100.0
    lo = int(k)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def fmt(v, unit):
    if v is None:
        return "n/a"
    if unit == "KiB":
        return f"{v:,.0f}"
    return f"{v:.1f}" if v >= 10 else f"{v:.2f}"


# --------------------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rt", action="append", default=[], help="name=binary:root[:mntns][:error]")
    ap.add_argument("--bundle-true", required=True)
    ap.add_argument("--bundle-true-seccomp", required=True)
    ap.add_argument("--bundle-sleep", required=True)
    ap.add_argument("--bundle-echo", required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("-n", type=int, default=50)
    ap.add_argument("--conc", type=int, default=20)
    ap.add_argument("--conc-runs", type=int, default=10)
    ap.add_argument("--skip", default="", help="comma list of rows to skip: run,seccomp,rss,phases,conc")
    ap.add_argument("--header", default="")
    ap.add_argument("-o", dest="out")
    a = ap.parse_args()
    skip = set(filter(None, a.skip.split(",")))

    rts = []
    for spec in a.rt:
        name, rest = spec.split("=", 1)
        binary, root, mntns, error = (rest.split("\x1f") + ["", ""])[:4]
        rt = Runtime(name, binary, root, mntns or None, os.path.join(a.workdir, f"stderr-{name}"))
        rt.error = error or None
        rts.append(rt)

    def log(msg):
        print(f"bench: {msg}", file=sys.stderr, flush=True)

    # Smoke test + warm-up: a runtime that cannot `run` /bin/true is n/a everywhere.
    for rt in rts:
        if rt.error:
            log(f"{rt.name}: n/a ({rt.error})")
            continue
        try:
            # The container must really run: its echo has to come out on stdout.
            i = "echo"
            code, data = capture(rt, rt.argv("run", "--bundle", a.bundle_echo, f"cuddy-bench-{rt.name}-warmup-echo"))
            if code != 0:
                raise Failed(f"`run` of /bin/echo: exit {code}: {last_error(rt)}")
            if b"cuddy-bench-ok" not in data:
                raise Failed(f"`run` of /bin/echo exited 0 but printed {data[:80]!r}, not the expected text")
            for i in range(3):
                timed(rt, "run", "--bundle", a.bundle_true, f"cuddy-bench-{rt.name}-warmup-{i}")
        except Failed as e:
            rt.error = str(e)
            log(f"{rt.name}: n/a ({rt.error})")
            force_delete(rt, f"cuddy-bench-{rt.name}-warmup-{i}")
    live = [rt for rt in rts if not rt.error]

    rows = []  # (label, unit, {rt: [values]}, {rt: error})

    def row(label, unit):
        r = (label, unit, {rt.name: [] for rt in rts}, {rt.name: rt.error for rt in rts if rt.error})
        rows.append(r)
        return r

    def ok(r, rt):
        return rt.name not in r[3]

    # 1. run /bin/true
    if "run" not in skip:
        r = row("`run` /bin/true", "ms")
        log(f"run: {a.n} x {len(live)} runtimes")
        for i in range(a.n):
            for rt in live:
                if not ok(r, rt):
                    continue
                name = f"cuddy-bench-{rt.name}-run-{i}"
                try:
                    r[2][rt.name].append(timed(rt, "run", "--bundle", a.bundle_true, name))
                except Failed as e:
                    r[3][rt.name] = str(e)
                    force_delete(rt, name)

    # 1b. run /bin/true with podman's default seccomp profile; cuddy also
    # with a cold cache (its cache directory removed before each run, untimed).
    if "seccomp" not in skip:
        warm = row("`run` /bin/true with podman's default seccomp profile", "ms")
        cold = row("same, cuddy with a cold seccomp cache", "ms")
        log(f"seccomp: {a.n} x {len(live)} runtimes")
        for rt in rts:
            if rt.name != "cuddy":
                cold[3].setdefault(rt.name, "(cuddy only: its filter cache)")
        for i in range(a.n):
            for rt in live:
                for r, kind in ((warm, "warm"), (cold, "cold")):
                    if not ok(r, rt):
                        continue
                    if kind == "cold":
                        shutil.rmtree(os.path.join(rt.root, ".seccomp-cache"), ignore_errors=True)
                    name = f"cuddy-bench-{rt.name}-sc{kind}-{i}"
                    try:
                        r[2][rt.name].append(timed(rt, "run", "--bundle", a.bundle_true_seccomp, name))
                    except Failed as e:
                        r[3][rt.name] = str(e)
                        force_delete(rt, name)

    # 2. peak RSS of the runtime process for `run` (GNU time %M)
    if "rss" not in skip:
        r = row("`run` peak RSS (GNU time %M)", "KiB")
        log(f"rss: {a.n} x {len(live)} runtimes")
        tfile = os.path.join(a.workdir, "time.out")
        for i in range(a.n):
            for rt in live:
                if not ok(r, rt):
                    continue
                name = f"cuddy-bench-{rt.name}-rss-{i}"
                argv = ["/usr/bin/time", "-f", "%M", "-o", tfile] + rt.argv("run", "--bundle", a.bundle_true, name)
                try:
                    timed(rt, argv=argv)
                    with open(tfile) as f:
                        r[2][rt.name].append(float(f.read().split()[-1]))
                except (Failed, ValueError, IndexError, OSError) as e:
                    r[3][rt.name] = str(e)
                    force_delete(rt, name)

    # 3. create / start / kill / delete separately
    if "phases" not in skip:
        phases = ["create", "start", "kill KILL", "delete"]
        pr = {p: row(f"`{p}` (sleep 1000)", "ms") for p in phases}
        log(f"phases: {a.n} x {len(live)} runtimes")
        for i in range(a.n):
            for rt in live:
                if not all(ok(pr[p], rt) for p in phases):
                    continue
                name = f"cuddy-bench-{rt.name}-ph-{i}"
                cur = "create"
                try:
                    ms = timed(rt, "create", "--bundle", a.bundle_sleep, name)
                    expect_status(rt, name, "created")
                    pr["create"][2][rt.name].append(ms)
                    cur = "start"
                    ms = timed(rt, "start", name)
                    expect_status(rt, name, "running")
                    pr["start"][2][rt.name].append(ms)
                    cur = "kill KILL"
                    pr["kill KILL"][2][rt.name].append(timed(rt, "kill", name, "KILL"))
                    wait_stopped(rt, name)
                    cur = "delete"
                    pr["delete"][2][rt.name].append(timed(rt, "delete", name))
                except Failed as e:
                    for p in phases[phases.index(cur):]:
                        pr[p][3][rt.name] = str(e) if p == cur else f"not reached ({cur} failed)"
                    force_delete(rt, name)

    # 4. N containers at once
    if "conc" not in skip:
        n = a.conc
        rcs = row(f"{n}× create+start, concurrent", "ms")
        rdl = row(f"{n}× delete --force, concurrent", "ms")
        rtot = row(f"{n}× total (create+start, then delete)", "ms")
        log(f"concurrent: {a.conc_runs} x {len(live)} runtimes, {n} containers each")
        for j in range(a.conc_runs):
            for rt in live:
                if not ok(rtot, rt):
                    continue
                names = [f"cuddy-bench-{rt.name}-c{j}-{k}" for k in range(n)]

                def errf(name):
                    return os.path.join(a.workdir, f"stderr-{name}")
                pending = {}
                failures = []

                def on_exit(pid, code):
                    name, phase = pending.pop(pid)
                    if code != 0:
                        failures.append(f"{phase} {name}: exit {code}: {last_error(rt, errf(name))}")
                        return None
                    if phase == "create":
                        nxt = spawn(rt, rt.argv("start", name), errfile=errf(name))
                        pending[nxt] = (name, "start")
                        return nxt
                    return None

                t0 = time.perf_counter()
                for name in names:
                    pending[spawn(rt, rt.argv("create", "--bundle", a.bundle_sleep, name), errfile=errf(name))] = (name, "create")
                wait_chain(list(pending), 120, on_exit)
                t1 = time.perf_counter()
                if not failures:  # untimed check that they really run
                    for name in names:
                        st = state_status(rt, name)
                        if st != "running":
                            failures.append(f"after create+start, `state {name}` says {st!r}, expected 'running'")
                            break
                t1b = time.perf_counter()
                dpids = {spawn(rt, rt.argv("delete", "--force", name), errfile=errf(name)): name for name in names}
                codes = wait_all(list(dpids), 120)
                t2 = time.perf_counter()
                failures += [f"delete {dpids[p]}: exit {c}: {last_error(rt, errf(dpids[p]))}"
                             for p, c in codes.items() if c != 0]
                if failures:
                    msg = f"{len(failures)} failure(s), first: {failures[0]}"
                    for r in (rcs, rdl, rtot):
                        r[3][rt.name] = msg
                    for name in names:
                        force_delete(rt, name)
                    continue
                rcs[2][rt.name].append((t1 - t0) * 1000)
                rdl[2][rt.name].append((t2 - t1b) * 1000)
                rtot[2][rt.name].append((t1 - t0 + t2 - t1b) * 1000)

    # ----------------------------------------------------------------- table
    names = [rt.name for rt in rts]
    ref = "crun" if "crun" in names else names[-1]
    head = ["metric"]
    for nm in names:
        head += [f"{nm} median", f"{nm} p90"]
    head += [f"{nm}/{ref}" for nm in names if nm != ref]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"]
    notes = {}
    for label, unit, vals, errs in rows:
        cells = [f"{label} ({unit})"]
        med = {}
        for nm in names:
            if nm in errs or not vals[nm]:
                cells += ["n/a", "n/a"]
                notes.setdefault(nm, []).append(f"{label}: {errs.get(nm, 'no data')}")
                med[nm] = None
            else:
                med[nm] = pct(vals[nm], 50)
                cells += [fmt(med[nm], unit), fmt(pct(vals[nm], 90), unit)]
        for nm in names:
            if nm == ref:
                continue
            if med[nm] is None or not med.get(ref):
                cells.append("n/a")
            else:
                cells.append(f"{med[nm] / med[ref]:.2f}×")
        lines.append("| " + " | ".join(cells) + " |")

    out = []
    if a.header:
        out.append(a.header.rstrip("\n"))
        out.append("")
    out += lines
    if notes:
        out.append("")
        out.append("n/a:")
        for nm, msgs in notes.items():
            by_msg = {}
            for m in msgs:
                label, msg = m.split(": ", 1)
                by_msg.setdefault(msg, []).append(label)
            for msg, labels in by_msg.items():
                where = "all rows" if len(labels) == len(rows) else ", ".join(labels)
                out.append(f"- {nm} ({where}): {msg}")
    text = "\n".join(out) + "\n"
    sys.stdout.write(text)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
