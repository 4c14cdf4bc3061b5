"""Reading a downloaded Docker static tarball: its binaries, their SHA-256 and CPU architecture.

Docker publishes no checksums for the static tarballs, so the bundle records the SHA-256 of the
tarball and of each binary inside it at download time. The host step compares the installed
binaries with those. Each ELF binary's machine field must match the bundle's architecture, so a
tarball of the wrong architecture is rejected on the connected machine, long before a host.
"""

from __future__ import annotations

import hashlib
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from gpurun.bundle.archs import normalize_arch
from gpurun.errors import BundleError

# ELF e_machine values (the ELF specification's registry) of the supported architectures.
_ELF_MACHINES = {0x3E: "x86_64", 0xB7: "aarch64"}
_ELF_MAGIC = b"\x7fELF"


@dataclass(frozen=True)
class TarballContents:
    """The regular files in a tarball's top folder, by name, with their SHA-256."""

    folder: str  # docker or docker-rootless-extras
    files: dict[str, str]  # file name -> SHA-256
    elf_arches: dict[str, str]  # file name -> `uname -m` name, for the ELF files


def read_tarball(path: Path, folder: str) -> TarballContents:
    """List the files under `folder`/ in a .tgz, rejecting links, devices and unsafe names.

    Raises BundleError naming the tarball when it cannot be read or contains something else.
    """
    files: dict[str, str] = {}
    arches: dict[str, str] = {}
    try:
        with tarfile.open(path, mode="r:gz") as tar:
            for member in tar:
                name = PurePosixPath(member.name)
                if member.isdir() and name.parts == (folder,):
                    continue
                if len(name.parts) != 2 or name.parts[0] != folder or not member.isfile():
                    raise BundleError(
                        f"{path} contains {member.name!r} ({_kind(member)}), but a Docker static "
                        f"tarball contains only regular files directly under {folder}/"
                        "\n  next step: check the mirror; the file is not Docker's tarball"
                    )
                handle = tar.extractfile(member)
                assert handle is not None  # regular files always have a body
                digest = hashlib.sha256()
                head = handle.read(20)
                digest.update(head)
                while chunk := handle.read(1024 * 1024):
                    digest.update(chunk)
                files[name.name] = digest.hexdigest()
                elf_arch = _elf_arch(head)
                if elf_arch:
                    arches[name.name] = elf_arch
    except (tarfile.TarError, OSError, EOFError, zlib.error) as error:
        raise BundleError(f"{path} is not a readable .tgz file ({error})"
                          "\n  next step: delete it and run the build again") from error
    if not files:
        raise BundleError(f"{path} contains no files under {folder}/"
                          "\n  next step: check the mirror; the file is not Docker's tarball")
    return TarballContents(folder=folder, files=files, elf_arches=arches)


def require_arch(contents: TarballContents, path: Path, arch: str) -> None:
    """Reject a tarball whose ELF binaries are for another CPU architecture than `arch`."""
    wanted = normalize_arch(arch)
    wrong = {name: found for name, found in contents.elf_arches.items() if found != wanted}
    if wrong:
        listing = ", ".join(f"{name} is {found}" for name, found in sorted(wrong.items()))
        raise BundleError(
            f"{path} is not for {wanted}: {listing}\n  next step: check the mirror layout "
            f"(<base>/linux/static/stable/{wanted}/) and the architecture you asked for"
        )


def require_binaries(contents: TarballContents, path: Path, names: tuple[str, ...]) -> None:
    """Reject a tarball that lacks one of the programs the host steps install and start."""
    missing = [name for name in names if name not in contents.files]
    if missing:
        raise BundleError(f"{path} lacks {', '.join(f'{contents.folder}/{n}' for n in missing)}"
                          "\n  next step: check the Docker version and the mirror")
    not_elf = [name for name in names if name not in contents.elf_arches]
    if not_elf:
        raise BundleError(f"{path}: {', '.join(not_elf)} are not ELF executables"
                          "\n  next step: check the mirror; the file is not Docker's tarball")


def _elf_arch(head: bytes) -> str | None:
    if len(head) < 20 or not head.startswith(_ELF_MAGIC):
        return None
    # EI_DATA (byte 5) is 1 for little-endian files, 2 for big-endian ones.
    machine = int.from_bytes(head[18:20], "little" if head[5] == 1 else "big")
    return _ELF_MACHINES.get(machine, f"ELF machine {machine:#x}")


def _kind(member: tarfile.TarInfo) -> str:
    if member.issym() or member.islnk():
        return f"a link to {member.linkname}"
    if member.isdir():
        return "a folder"
    if member.isfile():
        return "a file"
    return "a special file"
