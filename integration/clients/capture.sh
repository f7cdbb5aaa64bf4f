#!/bin/bash
# Captures the config.json that Debian 12's podman 4.3 and Docker 20.10 send
# to their OCI runtime, and writes them (host paths replaced by placeholders)
# to tests/fixtures/clients/. A developer's tool, not run by CI:
#   bash integration/clients/capture.sh        (as root; needs podman, docker.io)
# The runtime is a wrapper that copies each create's config.json (and the
# resources JSON of `update`) and then hands over to runc. dockerd runs in a
# network and mount namespace of its own (--bridge=none --iptables=false) so
# it changes nothing on the host; podman runs with --network none.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
CAP=$(mktemp -d /tmp/cuddy-capture-XXXXXX)
stop_dockerd() {
    local pid; pid=$(cat "$CAP/d/docker.pid" 2>/dev/null) || return 0
    kill "$pid" 2>/dev/null && timeout 30 tail --pid="$pid" -f /dev/null || true
}
trap stop_dockerd EXIT
mkdir -p "$CAP/configs" "$CAP/d" "$CAP/vol" "$CAP/img"
cat > "$CAP/runtime" <<WRAP
#!/bin/sh
prev=""; b=""
for a in "\$@"; do
  case "\$prev" in --bundle|-b) b="\$a";; esac
  case "\$prev" in -r|--resources)
    f="$CAP/configs/\$(ls $CAP/configs | wc -l | xargs printf %02d)-update.json"
    if [ "\$a" = - ]; then cat > "\$f"; exec runc "\$@" < "\$f"; fi
    cp "\$a" "\$f";;
  esac
  prev="\$a"
done
for a in "\$@"; do
  if [ "\$a" = create ]; then
    cp "\${b:-.}/config.json" "$CAP/configs/\$(ls $CAP/configs | wc -l | xargs printf %02d)-x.json"; break
  fi
done
exec runc "\$@"
WRAP
chmod +x "$CAP/runtime"
cp -a "$REPO/rootfs-fixtures/build/busybox/rootfs" "$CAP/img/"
tar -C "$CAP/img/rootfs" -cf "$CAP/busybox.tar" .
name() { local f; f=$(ls -t "$CAP/configs" | head -1); mv "$CAP/configs/$f" "$CAP/configs/${f%-x.json}-$1.json"; }

P=(podman --root "$CAP/proot" --runroot "$CAP/prun" --tmpdir "$CAP/ptmp" --runtime "$CAP/runtime"
   --cgroup-manager cgroupfs --events-backend file)
"${P[@]}" import "$CAP/busybox.tar" localhost/busybox >/dev/null
pcap() { local tag=$1; shift
  unshare -m --propagation private "${P[@]}" run --rm --network none --ulimit nofile=1024:1024 \
    "$@" localhost/busybox /bin/true >/dev/null 2>&1 || true
  name "podman-$tag"; }
pcap run
pcap read-only --read-only
pcap tmpfs --tmpfs /scratch
pcap pids-limit-unlimited --pids-limit -1
pcap memory -m 64m
pcap user-cap-drop-all --user 1000:1000 --cap-drop ALL
pcap volume-ro -v "$CAP/vol:/data:ro"

setsid unshare -n -m --propagation private sh -c "ip link set lo up; exec dockerd \
  --data-root $CAP/d/data --exec-root $CAP/d/exec -H unix://$CAP/d/docker.sock \
  --pidfile $CAP/d/docker.pid --bridge=none --iptables=false --ip6tables=false \
  --add-runtime capture=$CAP/runtime --default-ulimit nofile=1024:1024" >"$CAP/d/log" 2>&1 &
D=(docker -H "unix://$CAP/d/docker.sock")
for _ in $(seq 60); do "${D[@]}" version >/dev/null 2>&1 && break; sleep 1; done
"${D[@]}" import "$CAP/busybox.tar" busybox:fixture >/dev/null
dcap() { local tag=$1; shift
  "${D[@]}" run --rm --runtime capture --network none "$@" busybox:fixture /bin/true >/dev/null 2>&1 || true
  name "docker-$tag"; }
dcap run
dcap read-only-tmpfs --read-only --tmpfs /scratch
dcap memory-pids-shares -m 64m --pids-limit 100 --cpu-shares 512
dcap user-cap-drop-all --user 1000:1000 --cap-drop ALL
dcap init --init
"${D[@]}" run -d --name upd --runtime capture --network none -m 64m busybox:fixture sleep 1000 >/dev/null
name docker-run-for-update
"${D[@]}" update --memory 128m --memory-swap 256m --cpu-shares 256 --pids-limit 50 upd >/dev/null
"${D[@]}" rm -f upd >/dev/null

python3 - "$CAP" "$REPO/tests/fixtures/clients" <<'PY'
import json, os, sys, glob
cap, out = sys.argv[1], sys.argv[2]
for f in sorted(glob.glob(f"{cap}/configs/*.json")):
    name = os.path.basename(f)[3:-5]
    c = json.load(open(f))
    if name == "update":
        open(f"{out}/docker-update-resources.json", "w").write(json.dumps(c) + "\n")
        continue
    c["root"]["path"] = "rootfs"
    c.pop("hooks", None)   # Docker's libnetwork-setkey calls back into dockerd
    c["linux"]["cgroupsPath"] = "@CGROUP@"
    for m in c["mounts"]:
        s = m.get("source", "")
        if s.startswith(cap) or s == "/usr/bin/docker-init":
            m["source"] = "@DATA@/" + os.path.basename(s).lstrip(".")
    text = json.dumps(c, indent=1)
    assert cap not in text, name
    open(f"{out}/{name}.json", "w").write(text + "\n")
PY
echo "fixtures written to tests/fixtures/clients (from $CAP)"
