#!/usr/bin/env python3
"""Build an OCI image archive (for `ctr image import`) from a rootfs directory.

    mkimage.py ROOTFS OUT.tar REF [CMD_JSON]

One layer (the rootfs as a tar), an image config, a manifest and an index
with the org.opencontainers.image.ref.name annotation REF. No registry is
involved: containerd imports the archive as it is. CMD_JSON (default
'["/bin/sh"]') is the image's Cmd (the CRI suite's pause image: '["/pause"]').
"""
import hashlib
import io
import json
import sys
import tarfile


def blob(data: bytes):
    return "sha256:" + hashlib.sha256(data).hexdigest(), data


def main() -> int:
    rootfs, out, ref = sys.argv[1], sys.argv[2], sys.argv[3]
    cmd = json.loads(sys.argv[4]) if len(sys.argv) > 4 else ["/bin/sh"]
    layer_buf = io.BytesIO()
    with tarfile.open(fileobj=layer_buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        t.add(rootfs, arcname=".", recursive=True)
    layer_digest, layer = blob(layer_buf.getvalue())
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                   "Cmd": cmd},
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
    }
    config_digest, config_bytes = blob(json.dumps(config).encode())
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": config_digest, "size": len(config_bytes)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": layer_digest, "size": len(layer)}],
    }
    manifest_digest, manifest_bytes = blob(json.dumps(manifest).encode())
    index = {
        "schemaVersion": 2,
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                       "digest": manifest_digest, "size": len(manifest_bytes),
                       "annotations": {"org.opencontainers.image.ref.name": ref},
                       "platform": {"architecture": "amd64", "os": "linux"}}],
    }
    files = {
        "oci-layout": json.dumps({"imageLayoutVersion": "1.0.0"}).encode(),
        "index.json": json.dumps(index).encode(),
    }
    for d, b in ((layer_digest, layer), (config_digest, config_bytes), (manifest_digest, manifest_bytes)):
        files["blobs/sha256/" + d.split(":")[1]] = b
    with tarfile.open(out, "w") as t:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return 0


if __name__ == "__main__":
    sys.exit(main())
