#!/usr/bin/env python3
"""Unit tests of docker_profile.py on small synthetic profiles (stdlib only):

    python3 integration/seccomp/test_docker_profile.py
"""

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import docker_profile as dp  # noqa: E402

ARCHMAP = [
    {"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]},
    {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]},
]


def rule(names, **kw):
    r = {"names": names, "action": "SCMP_ACT_ALLOW", "args": [], "comment": "", "includes": {}, "excludes": {}}
    r.update(kw)
    return r


def names(out):
    return [n for r in out["syscalls"] for n in r["names"]]


class Convert(unittest.TestCase):
    def test_archmap_amd64_and_arm64(self):
        p = {"defaultAction": "SCMP_ACT_ERRNO", "archMap": ARCHMAP, "syscalls": []}
        self.assertEqual(
            dp.convert(p)["architectures"], ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
        )
        self.assertEqual(dp.convert(p, "arm64")["architectures"], ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"])
        self.assertNotIn("architectures", dp.convert(p, "ppc64le"))

    def test_caps_arches_kernel(self):
        p = {
            "defaultAction": "SCMP_ACT_ERRNO",
            "syscalls": [
                rule(["read"]),
                rule(["mount"], includes={"caps": ["CAP_SYS_ADMIN"]}),
                rule(["chroot"], includes={"caps": ["CAP_SYS_CHROOT"]}),
                rule(["clone"], excludes={"caps": ["CAP_SYS_ADMIN"]}),
                rule(["arch_prctl"], includes={"arches": ["amd64", "x32"]}),
                rule(["set_tls"], includes={"arches": ["arm", "arm64"]}),
                rule(["notamd"], excludes={"arches": ["amd64"]}),
                rule(["ptrace"], includes={"minKernel": "4.8"}),
                rule(["future"], includes={"minKernel": "9.0"}),
                rule(["oldonly"], excludes={"minKernel": "5.10"}),
            ],
        }
        self.assertEqual(names(dp.convert(p)), ["read", "chroot", "clone", "arch_prctl", "ptrace"])
        admin = dp.DOCKER_DEFAULT_CAPS + ["CAP_SYS_ADMIN"]
        self.assertEqual(
            names(dp.convert(p, caps=admin, kernel="4.4.0-1-amd64")),
            ["read", "mount", "chroot", "arch_prctl", "oldonly"],
        )

    def test_rule_shape_errno_and_default_errno(self):
        p = {
            "defaultAction": "SCMP_ACT_ERRNO",
            "defaultErrnoRet": 38,
            "syscalls": [
                rule(["clone3"], action="SCMP_ACT_ERRNO", errnoRet=38),
                {"name": "personality", "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]},
            ],
        }
        out = dp.convert(p)
        self.assertEqual(out["defaultErrnoRet"], 38)
        self.assertEqual(
            out["syscalls"],
            [
                {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
                {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]},
            ],
        )

    def test_refusals(self):
        with self.assertRaises(dp.ProfileError):
            dp.convert({"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_X86_64"],
                        "archMap": ARCHMAP, "syscalls": []})
        with self.assertRaises(dp.ProfileError):
            dp.convert({"defaultAction": "SCMP_ACT_ERRNO",
                        "syscalls": [{"name": "a", "names": ["b"], "action": "SCMP_ACT_ALLOW"}]})
        with self.assertRaises(dp.ProfileError):
            dp.convert({"defaultAction": "SCMP_ACT_ERRNO",
                        "syscalls": [rule(["x"], includes={"minKernel": "four"})]})


if __name__ == "__main__":
    unittest.main()
