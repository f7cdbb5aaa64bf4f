#!/usr/bin/env python3
"""Resolve a Docker (moby) seccomp profile into the OCI `linux.seccomp` object
that dockerd puts in config.json.

Docker's profile format (moby `profiles/seccomp/default.json`) is a superset
of config-linux.md "Seccomp": it adds `archMap` (per native architecture, the
architectures to put in the filter) and, per rule, `includes`/`excludes`
filters on the container's capabilities, the native architecture and the
host kernel, plus a free-form `comment`. dockerd resolves them when it builds
the spec (moby `profiles/seccomp/seccomp_linux.go`, `setupSeccomp`); the
runtime only ever sees the result. This script applies the same rules, so the
result is what `docker run` (no --privileged, no --security-opt seccomp=...,
no --cap-add/--cap-drop) sends to the runtime:

- `architectures`: kept as is when the profile lists them (old format);
  otherwise, from `archMap`, the entry whose `architecture` is the native
  one (amd64: SCMP_ARCH_X86_64) followed by its `subArchitectures`
  (SCMP_ARCH_X86, SCMP_ARCH_X32). Both present is an error, as in moby.
- each rule, in order, is dropped when
    excludes.arches contains the native arch (libseccomp name: "amd64"),
    excludes.caps has any capability of the bounding set,
    excludes.minKernel <= the kernel,
    includes.arches does not contain the native arch,
    includes.caps has a capability not in the bounding set,
    includes.minKernel > the kernel;
  otherwise it becomes {names, action, errnoRet (when set), args (when
  non-empty)}; `name` becomes a one-element `names`, `comment`, `includes`
  and `excludes` are dropped. Both `name` and `names` is an error, as in moby.
- `defaultAction` is copied; `defaultErrnoRet` is copied when the profile has
  one (moby >= 22.06 does; 20.10's Seccomp struct has no such field, and its
  default profile has none, so the default errno is the spec's EPERM).
- Kernel versions compare "<kernel>.<major>" only, as moby's
  kernelGreaterEqualThan ("6.1.0-18-amd64" is 6.1).

The kernel is a parameter (--kernel, default 6.1: Debian 12's), not this
host's uname, so the output does not depend on where it is generated. The
only minKernel rule in 20.10's profile (ptrace, process_vm_readv/writev
allowed from 4.8) is included for any kernel >= 4.8.

Usage (Python 3, standard library only):

    docker_profile.py default.json > tests/fixtures/seccomp-docker.json
    docker_profile.py --arch amd64 --kernel 6.1 \\
        --caps CAP_CHOWN,CAP_KILL,... default.json -o out.json

--caps defaults to Docker's default capability set (moby
oci/caps/defaults.go). The output is JSON with one-space indentation and a
trailing newline, like tests/fixtures/seccomp-podman.json.
"""

import argparse
import json
import re
import sys

# moby oci/caps/defaults.go (20.10): the capabilities of a default container;
# dockerd checks includes/excludes.caps against the bounding set, which is
# this list.
DOCKER_DEFAULT_CAPS = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
]

# moby seccomp_linux.go: GOARCH -> libseccomp name (used in includes/excludes
# .arches) and libseccomp name -> SCMP_ARCH_* (matched against archMap).
GO_TO_NATIVE = {
    "386": "x86",
    "amd64": "amd64",
    "arm": "arm",
    "arm64": "arm64",
    "mips64": "mips64",
    "mips64p32": "mips64n32",
    "mips64le": "mipsel64",
    "mips64p32le": "mips3l64n32",
    "mipsle": "mipsel",
    "ppc": "ppc",
    "ppc64": "ppc64",
    "ppc64le": "ppc64le",
    "s390": "s390",
    "s390x": "s390x",
}
NATIVE_TO_SECCOMP = {
    "x86": "SCMP_ARCH_X86",
    "amd64": "SCMP_ARCH_X86_64",
    "arm": "SCMP_ARCH_ARM",
    "arm64": "SCMP_ARCH_AARCH64",
    "mips64": "SCMP_ARCH_MIPS64",
    "mips64n32": "SCMP_ARCH_MIPS64N32",
    "mipsel64": "SCMP_ARCH_MIPSEL64",
    "mips3l64n32": "SCMP_ARCH_MIPSEL64N32",
    "mipsle": "SCMP_ARCH_MIPSEL",
    "ppc": "SCMP_ARCH_PPC",
    "ppc64": "SCMP_ARCH_PPC64",
    "ppc64le": "SCMP_ARCH_PPC64LE",
    "s390": "SCMP_ARCH_S390",
    "s390x": "SCMP_ARCH_S390X",
}


class ProfileError(Exception):
    """The profile is not one moby would accept."""


def parse_kernel(text, what):
    """'<kernel>.<major>[anything]' -> (kernel, major), like moby's
    parseRelease (Sscanf "%d.%d")."""
    m = re.match(r"^(\d+)\.(\d+)", text or "")
    if not m:
        raise ProfileError(f'{what}: "{text}" is not "<kernel>.<major>"')
    return (int(m.group(1)), int(m.group(2)))


def rule_applies(rule, native, caps, kernel):
    """moby setupSeccomp's filter on one rule (same order of checks)."""
    exc = rule.get("excludes") or {}
    inc = rule.get("includes") or {}
    if native in (exc.get("arches") or []):
        return False
    if any(c in caps for c in exc.get("caps") or []):
        return False
    if exc.get("minKernel"):
        if kernel >= parse_kernel(exc["minKernel"], "excludes.minKernel"):
            return False
    if inc.get("arches") and native not in inc["arches"]:
        return False
    if any(c not in caps for c in inc.get("caps") or []):
        return False
    if inc.get("minKernel"):
        if kernel < parse_kernel(inc["minKernel"], "includes.minKernel"):
            return False
    return True


def convert_rule(rule, index):
    """A kept rule as an OCI LinuxSyscall (field order as runtime-spec's Go
    struct: names, action, errnoRet, args; empty ones omitted)."""
    if rule.get("name") and rule.get("names"):
        raise ProfileError(f"syscalls[{index}]: both 'name' and 'names'")
    out = {"names": [rule["name"]] if rule.get("name") else list(rule["names"])}
    out["action"] = rule["action"]
    if rule.get("errnoRet") is not None:
        out["errnoRet"] = rule["errnoRet"]
    if rule.get("args"):
        out["args"] = rule["args"]
    return out


def architectures(profile, native):
    if profile.get("architectures") and profile.get("archMap"):
        raise ProfileError("both 'architectures' and 'archMap'")
    if profile.get("architectures"):
        return list(profile["architectures"])
    want = NATIVE_TO_SECCOMP.get(native)
    for entry in profile.get("archMap") or []:
        if want is not None and entry["architecture"] == want:
            return [entry["architecture"]] + list(entry.get("subArchitectures") or [])
    return []


def convert(profile, goarch="amd64", caps=None, kernel="6.1"):
    """Docker profile (dict) -> OCI linux.seccomp (dict)."""
    if goarch not in GO_TO_NATIVE:
        raise ProfileError(f"--arch {goarch}: not a GOARCH moby knows")
    native = GO_TO_NATIVE[goarch]
    caps = set(DOCKER_DEFAULT_CAPS if caps is None else caps)
    kv = parse_kernel(kernel, "--kernel")
    out = {"defaultAction": profile["defaultAction"]}
    if profile.get("defaultErrnoRet") is not None:
        out["defaultErrnoRet"] = profile["defaultErrnoRet"]
    archs = architectures(profile, native)
    if archs:
        out["architectures"] = archs
    out["syscalls"] = [
        convert_rule(r, i)
        for i, r in enumerate(profile.get("syscalls") or [])
        if rule_applies(r, native, caps, kv)
    ]
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(
        description="Resolve a Docker seccomp profile into OCI linux.seccomp."
    )
    ap.add_argument("profile", help="moby profiles/seccomp/default.json (or any Docker profile)")
    ap.add_argument("--arch", default="amd64", help="GOARCH of dockerd (default amd64)")
    ap.add_argument(
        "--caps",
        help="comma-separated bounding set (default: Docker's default capabilities)",
    )
    ap.add_argument("--kernel", default="6.1", help="host kernel <kernel>.<major> (default 6.1)")
    ap.add_argument("-o", "--output", help="write here instead of stdout")
    a = ap.parse_args(argv)
    caps = [c.strip() for c in a.caps.split(",") if c.strip()] if a.caps else None
    try:
        with open(a.profile, encoding="utf-8") as f:
            profile = json.load(f)
        result = convert(profile, a.arch, caps, a.kernel)
    except (OSError, ValueError, KeyError, ProfileError) as e:
        print(f"docker_profile.py: {a.profile}: {e}", file=sys.stderr)
        return 1
    text = json.dumps(result, indent=1) + "\n"
    if a.output:
        with open(a.output, "w", encoding="utf-8") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
