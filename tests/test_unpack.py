"""Unpacking Docker's tarball: only the named binaries, and only as plain files.

A real GNU tar unpacks real tarballs into the staging folder of a run on a host whose address
is `local` (this machine), as it would over ssh.
"""

from __future__ import annotations

import io
import tarfile
from pathlib import Path, PurePosixPath

import pytest

from gpurun.errors import BundleError
from gpurun.operations.binaries import unpack

BINARIES = ["docker", "dockerd"]


def make_tarball(path: Path, members: list[tarfile.TarInfo]) -> PurePosixPath:
    with tarfile.open(path, "w:gz") as archive:
        for member in members:
            content = f"content of {member.name}\n".encode() if member.isfile() else b""
            member.size = len(content)
            archive.addfile(member, io.BytesIO(content) if member.isfile() else None)
    return PurePosixPath(path)


def regular(name: str) -> tarfile.TarInfo:
    member = tarfile.TarInfo(name)
    member.mode = 0o755
    return member


def symlink(name: str, target: str) -> tarfile.TarInfo:
    member = tarfile.TarInfo(name)
    member.type = tarfile.SYMTYPE
    member.linkname = target
    return member


def test_unpack_named_binaries_only(local_host, tmp_path):
    outside = tmp_path / "escaped"
    tarball = make_tarball(tmp_path / "docker.tgz", [
        regular("docker/docker"), regular("docker/dockerd"), regular("docker/extra"),
        regular(f"docker/../../../../../../..{outside}"),
    ])

    folder = unpack(local_host, tarball, BINARIES)

    assert sorted(p.name for p in Path(folder).iterdir()) == BINARIES
    assert Path(folder, "dockerd").read_text() == "content of docker/dockerd\n"
    assert not outside.exists()


def test_unpack_rejects_linked_binary(local_host, tmp_path):
    tarball = make_tarball(tmp_path / "docker.tgz", [
        regular("docker/docker"), symlink("docker/dockerd", "/etc/hostname"),
    ])

    with pytest.raises(BundleError) as caught:
        unpack(local_host, tarball, BINARIES)

    message = str(caught.value)
    assert "unsafe member" in message
    assert "docker/dockerd is a symbolic link" in message
    assert "local-host" in message
    assert "next step: rebuild the bundle" in message


def test_unpack_missing_binary_named(local_host, tmp_path):
    tarball = make_tarball(tmp_path / "docker.tgz", [regular("docker/docker")])

    with pytest.raises(BundleError) as caught:
        unpack(local_host, tarball, BINARIES)

    message = str(caught.value)
    assert f"failed to unpack {tarball} on host local-host" in message
    assert "docker/dockerd" in message
