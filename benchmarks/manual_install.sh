#!/bin/sh
# The classic manual install, as an operator types it from a how-to: Docker from the static
# tarball with its three systemd units, the NVIDIA toolkit packages with dpkg, the nvidia
# runtime as the default in daemon.json, then a test container. No checks, no backups, no
# record. It runs on the host, with the bundle files already copied to $1.
#
# usage: manual_install.sh BUNDLE_FOLDER TARBALL IMAGE_FILE IMAGE_NAME PACKAGE...
set -eu
bundle=$1 tarball=$2 image_file=$3 image_name=$4
shift 4

tar -xzf "$bundle/$tarball" -C /tmp
install -m 0755 -o root -g root /tmp/docker/* /usr/bin/

groupadd --system docker
cp "$bundle"/units/* /etc/systemd/system/
systemctl daemon-reload
systemctl enable --now containerd.service docker.socket docker.service

cd "$bundle"
dpkg -i "$@"

mkdir -p /etc/docker
cat > /etc/docker/daemon.json <<'JSON'
{
  "default-runtime": "nvidia",
  "runtimes": {"nvidia": {"args": [], "path": "/usr/bin/nvidia-container-runtime"}}
}
JSON
systemctl restart docker

docker load -i "$bundle/$image_file"
docker run --rm "$image_name" echo manual-install-ok
docker info --format '{{.DefaultRuntime}}'
