#!/usr/bin/env bash
# Build cuddy and run one container from the busybox fixture (README.md):
#
#   bash integration/quickstart.sh
#
# Run as root. Installs busybox-static and gcc from Debian when missing.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
[ "$(id -u)" = 0 ] || { echo "quickstart.sh: run as root" >&2; exit 1; }
command -v cargo >/dev/null || { echo "quickstart.sh: cargo not found: install Rust >= 1.85 (https://rustup.rs)" >&2; exit 1; }
bundle=$(bash rootfs-fixtures/build.sh)
cargo build --release
cuddy=$PWD/target/release/cuddy
# A bundle of our own next to the fixture's rootfs: `cuddy spec` writes the
# default config.json, then the process is set to a short greeting.
demo=$(mktemp -d /tmp/cuddy-quickstart.XXXXXX)
trap 'rm -rf "$demo"' EXIT
(cd "$demo" && "$cuddy" spec)
python3 - "$demo/config.json" "$bundle/rootfs" <<'PY'
import json, sys
path, rootfs = sys.argv[1], sys.argv[2]
c = json.load(open(path))
c["root"]["path"] = rootfs
c["process"]["terminal"] = False
c["process"]["args"] = ["/bin/sh", "-c", "echo hello from cuddy: pid $$ on $(hostname); ls /"]
json.dump(c, open(path, "w"), indent=2)
PY
"$cuddy" run --bundle "$demo" "quickstart-$$"
