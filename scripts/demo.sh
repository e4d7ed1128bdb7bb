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

step "sh airgap-v1.0.0.bin --target extracted && skopeo inspect"
sh airgap-v1.0.0.bin --target extracted --quiet
skopeo inspect "oci:extracted/oci:library/busybox:1.35" | head -12

cat <<MSG

Done. The signed payload is $demo/airgap-v1.0.0.bin.
Copy it to an appliance and run it there ('./airgap-v1.0.0.bin'); the appliance side
(import, registries, airgap-setup) arrives with the next releases of this project.
MSG
