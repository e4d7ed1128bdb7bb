#!/usr/bin/env bash
# `make demo`: the main job on an embedded default. Makes sample content (a real busybox
# image built with umoci from Debian's busybox-static, a Helm chart, a pack, files), a
# signing key, builds and signs airgap-v1.0.0.bin, then shows what an admin sees of it.
# Everything lands in ./demo/ (removed by `make clean`).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
airgap="$root/scripts/airgap"
demo="$root/demo"
rm -rf "$demo"
mkdir -p "$demo"
cd "$demo"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "Sample content"
umoci init --layout images
umoci new --image images:busybox
umoci unpack --image images:busybox rootfs-bundle >/dev/null
mkdir -p rootfs-bundle/rootfs/bin
cp /bin/busybox rootfs-bundle/rootfs/bin/busybox
ln -s busybox rootfs-bundle/rootfs/bin/sh
umoci repack --image images:busybox rootfs-bundle
umoci config --image images:busybox --config.cmd /bin/sh --os linux --architecture amd64
rm -rf rootfs-bundle
echo "busybox image (umoci): images:busybox"

mkdir -p charts/src/hello/templates
printf 'apiVersion: v2\nname: hello\nversion: 0.1.0\ndescription: A demo chart\n' > charts/src/hello/Chart.yaml
printf 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: hello\n' > charts/src/hello/templates/cm.yaml
tar -C charts/src -czf charts/hello-0.1.0.tgz hello
echo "chart: charts/hello-0.1.0.tgz"

mkdir -p packs/cilium
printf 'name: cilium\nversion: 1.14.2\ndescription: CNI add-on pack\n' > packs/cilium/pack.yaml
printf 'cluster:\n  name: demo\n' > packs/cilium/values.yaml
echo "pack: packs/cilium"

mkdir -p manifests
printf 'apiVersion: v1\nkind: Namespace\nmetadata:\n  name: demo\n' > manifests/namespace.yaml
echo "files: manifests/"

cat > bundle.yaml <<'YAML'
apiVersion: airgap/v1
kind: Bundle
name: demo
version: 1.0.0
images:
  - source: oci:./images:busybox
    target: library/busybox:1.35
charts:
  - source: ./charts/hello-0.1.0.tgz
packs:
  - source: ./packs/cilium
files:
  - source: ./manifests/
    target: manifests/
YAML

step "airgap keygen --out keys"
"$airgap" keygen --out keys

step "airgap build bundle.yaml --out . --key keys/airgap-signing.key"
"$airgap" build bundle.yaml --out . --key keys/airgap-signing.key

step "sh airgap-v1.0.0.bin --info"
sh airgap-v1.0.0.bin --info

step "sh airgap-v1.0.0.bin --check"
sh airgap-v1.0.0.bin --check

step "airgap inspect airgap-v1.0.0.bin --key keys/airgap-signing.pub"
"$airgap" inspect airgap-v1.0.0.bin --key keys/airgap-signing.pub --quiet

step "The appliance: airgap serve (state in demo/state, 127.0.0.1, ports 8443 8080 5000 8000)"
export AIRGAP_STATE_DIR="$demo/state"
mkdir -p "$AIRGAP_STATE_DIR/trusted-keys"
cp keys/airgap-signing.pub "$AIRGAP_STATE_DIR/trusted-keys/demo.pub"
"$airgap" serve --address 127.0.0.1 --https-port 8443 --http-port 8080 --registry-port 5000 --pack-registry-port 8000 >appliance.log 2>&1 &
daemon=$!
stop() {
  if kill -0 "$daemon" 2>/dev/null; then
    echo; echo "Stopping the appliance..."
    kill -TERM "$daemon"; wait "$daemon" || true
  fi
}
trap stop EXIT
trap 'exit 130' INT TERM
ready=0
for _ in $(seq 1 120); do
  if "$airgap" status >/dev/null 2>&1; then ready=1; break; fi
  kill -0 "$daemon" 2>/dev/null || break
  sleep 0.5
done
if [ "$ready" -ne 1 ]; then
  echo "the appliance did not start; the end of $demo/appliance.log:" >&2
  tail -n 20 appliance.log >&2
  exit 1
fi
echo "running (pid $daemon); log in $demo/appliance.log"

step "airgap-setup 127.0.0.1"
"$root/scripts/airgap-setup" 127.0.0.1
"$airgap" setup 127.0.0.1 --json >setup.json 2>/dev/null

step "./airgap-v1.0.0.bin (on the box: verify, then import)"
PATH="$root/scripts:$PATH" ./airgap-v1.0.0.bin

step "Pull it back with standard tools, using only what airgap-setup printed"
mkdir -p certs
json() { node -e "const d=JSON.parse(require('fs').readFileSync('setup.json','utf8')); console.log($1)"; }
json "Buffer.from(d.caCertificateBase64, 'base64').toString().trimEnd()" >certs/ca.crt
images_creds=$(json "d.imageRegistry.username + ':' + d.imageRegistry.password")
packs_creds=$(json "d.packRegistry.username + ':' + d.packRegistry.password")
repo_creds=$(json "d.repository.username + ':' + d.repository.password")
echo "\$ skopeo inspect --cert-dir certs --creds airgap-images:*** docker://127.0.0.1:5000/library/busybox:1.35"
skopeo inspect --cert-dir certs --creds "$images_creds" docker://127.0.0.1:5000/library/busybox:1.35 | head -8
echo "\$ skopeo copy ... docker://127.0.0.1:5000/library/busybox:1.35 oci:pulled:busybox"
skopeo copy --quiet --src-cert-dir certs --src-creds "$images_creds" docker://127.0.0.1:5000/library/busybox:1.35 oci:pulled:busybox
echo "\$ skopeo inspect ... docker://127.0.0.1:8000/packs/cilium:1.14.2 (the pack registry)"
skopeo inspect --raw --cert-dir certs --creds "$packs_creds" docker://127.0.0.1:8000/packs/cilium:1.14.2 | head -c 200; echo
echo "\$ curl --cacert certs/ca.crt -u airgap-repo:*** https://127.0.0.1:8443/repo/1.0.0/manifests/namespace.yaml"
curl -sf --cacert certs/ca.crt -u "$repo_creds" https://127.0.0.1:8443/repo/1.0.0/manifests/namespace.yaml

step "Again: importing the same release is a no-op"
"$airgap" import airgap-v1.0.0.bin

"$airgap" releases
cat <<MSG

The appliance runs on 127.0.0.1 (repository https://127.0.0.1:8443, registries :5000 and :8000).
Try: AIRGAP_STATE_DIR=$demo/state $airgap status
MSG
if [ "${AIRGAP_DEMO_KEEP:-1}" = "1" ] && [ -t 0 ]; then
  echo "Press Ctrl-C to stop it."
  wait "$daemon"
fi
