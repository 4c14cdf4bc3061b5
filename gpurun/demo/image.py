"""A one-layer busybox image in the archive format of `docker save`, written in pure Python.

`docker load` reads the archive's manifest.json, which names the image config (a JSON file named
by its SHA-256) and the layer tars. The per-layer VERSION and json files and `repositories` are
the older layout, kept so that older loaders accept the archive too. The layer contains Debian's
statically linked /bin/busybox, so the image needs nothing from the host.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path

from gpurun.bundle.archs import deb_arch
from gpurun.demo.debian import deb_field, unpack_deb
from gpurun.errors import BundleError

IMAGE_REPOSITORY = "gpurun/busybox"
IMAGE_TAG = "demo"
IMAGE_REFERENCE = f"{IMAGE_REPOSITORY}:{IMAGE_TAG}"

# Names under /bin that link to busybox. Other applets need a `busybox` prefix in the image.
BUSYBOX_LINKS: tuple[str, ...] = ("sh", "echo", "cat", "true", "ls")

# Folders a container runtime expects to find or mount over, with their modes.
ROOT_FOLDERS: dict[str, int] = {
    "dev": 0o755, "proc": 0o555, "sys": 0o555, "etc": 0o755, "tmp": 0o1777, "root": 0o700,
}

_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class BusyboxImage:
    """A written image archive and what the manifest records about it."""

    path: Path
    reference: str  # repository:tag that `docker load` gives the image
    busybox_version: str  # Debian version of busybox-static


def build_busybox_image(
    out_path: Path, busybox_deb: Path, work_dir: Path, arch: str
) -> BusyboxImage:
    """Write the image archive to `out_path` from the busybox-static package `busybox_deb`.

    Times inside come from the package's busybox file, so the same package gives the same bytes.
    """
    busybox = unpack_deb(busybox_deb, work_dir / "busybox-static") / "bin" / "busybox"
    if busybox.is_symlink() or not busybox.is_file():
        raise BundleError(
            f"{busybox_deb} has no regular file bin/busybox"
            "\n  next step: check that it is Debian's busybox-static package"
        )
    busybox_version = deb_field(busybox_deb, "Version")
    mtime = int(busybox.stat().st_mtime)

    layer = _layer_tar(busybox, mtime)
    diff_id = hashlib.sha256(layer).hexdigest()
    config = _image_config(diff_id, deb_arch(arch), mtime, busybox_version)
    config_id = hashlib.sha256(config).hexdigest()

    out_path.parent.mkdir(parents=True, exist_ok=True)
    _write_archive(out_path, layer, diff_id, config, config_id, mtime)
    return BusyboxImage(path=out_path, reference=IMAGE_REFERENCE, busybox_version=busybox_version)


def _layer_tar(busybox: Path, mtime: int) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        _add_folder(tar, "bin", 0o755, mtime)
        info = _member("bin/busybox", tarfile.REGTYPE, 0o755, mtime)
        info.size = busybox.stat().st_size
        with open(busybox, "rb") as handle:
            tar.addfile(info, handle)
        for name in BUSYBOX_LINKS:
            link = _member(f"bin/{name}", tarfile.SYMTYPE, 0o777, mtime)
            link.linkname = "busybox"
            tar.addfile(link)

        for folder, mode in ROOT_FOLDERS.items():
            _add_folder(tar, folder, mode, mtime)
        _add_text(tar, "etc/passwd", "root:x:0:0:root:/root:/bin/sh\n", mtime)
        _add_text(tar, "etc/group", "root:x:0:\n", mtime)
    return buffer.getvalue()


def _image_config(diff_id: str, goarch: str, mtime: int, busybox_version: str) -> bytes:
    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(mtime))
    config = {
        "architecture": goarch,  # Go's names, which match Debian's: amd64, arm64
        "os": "linux",
        "created": created,
        "config": {"Env": [_PATH], "Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": [f"sha256:{diff_id}"]},
        "history": [{
            "created": created,
            "created_by": f"gpurun demo builder: /bin/busybox of Debian's busybox-static "
                          f"{busybox_version}",
        }],
    }
    return json.dumps(config, sort_keys=True, separators=(",", ":")).encode()


def _write_archive(
    out_path: Path, layer: bytes, diff_id: str, config: bytes, config_id: str, mtime: int
) -> None:
    # The layer folder is named by the layer's digest, and loaders find it through manifest.json.
    layer_dir = diff_id
    manifest = [{
        "Config": f"{config_id}.json",
        "RepoTags": [IMAGE_REFERENCE],
        "Layers": [f"{layer_dir}/layer.tar"],
    }]
    legacy_layer_json = {"id": layer_dir, "created": json.loads(config)["created"], "os": "linux"}
    repositories = {IMAGE_REPOSITORY: {IMAGE_TAG: layer_dir}}

    with tarfile.open(out_path, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        _add_folder(tar, layer_dir, 0o755, mtime)
        _add_bytes(tar, f"{layer_dir}/VERSION", b"1.0", mtime)
        _add_bytes(tar, f"{layer_dir}/json", _json_bytes(legacy_layer_json), mtime)
        _add_bytes(tar, f"{layer_dir}/layer.tar", layer, mtime)
        _add_bytes(tar, f"{config_id}.json", config, mtime)
        _add_bytes(tar, "manifest.json", _json_bytes(manifest), mtime)
        _add_bytes(tar, "repositories", _json_bytes(repositories), mtime)


def _json_bytes(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _member(name: str, kind: bytes, mode: int, mtime: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.mtime = mtime
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info


def _add_folder(tar: tarfile.TarFile, name: str, mode: int, mtime: int) -> None:
    tar.addfile(_member(f"{name}/", tarfile.DIRTYPE, mode, mtime))


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes, mtime: int) -> None:
    info = _member(name, tarfile.REGTYPE, 0o644, mtime)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def _add_text(tar: tarfile.TarFile, name: str, text: str, mtime: int) -> None:
    _add_bytes(tar, name, text.encode(), mtime)
