"""The layout of the sandbox state directory: base image, keys and hosts on the control node."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from gpurun.errors import SandboxError

DEFAULT_STATE_DIR = Path("/var/lib/gpurun/sandbox")
STATE_DIR_ENV = "GPURUN_SANDBOX_DIR"

# Host names end up in hostnames, netns names, file names and ssh command lines.
HOST_NAME_PATTERN = re.compile(r"[a-z][a-z0-9-]{0,22}[a-z0-9]")
HOST_NAME_RULE = "2 to 24 characters: lowercase letters, digits and dashes, starting with a letter"

# overlayfs options use ',' and ':' as separators, and nspawn's --bind uses ':'.
UNSAFE_PATH_CHARACTERS = set(",: \t\n")


@dataclass(frozen=True)
class StateLayout:
    """The files and folders under one sandbox state directory."""

    root: Path

    @property
    def lock_file(self) -> Path:
        return self.root / "state.lock"

    @property
    def images_dir(self) -> Path:
        return self.root / "images"

    def image(self, recipe_digest: str) -> ImageLayout:
        """Return the layout of the base image built from the recipe with this digest."""
        return ImageLayout(self.images_dir / recipe_digest[:16])

    @property
    def base_lock_file(self) -> Path:
        return self.root / "base.lock"

    @property
    def client_key(self) -> Path:
        return self.root / "id_ed25519"

    @property
    def known_hosts(self) -> Path:
        return self.root / "known_hosts"

    @property
    def hosts_dir(self) -> Path:
        return self.root / "hosts"

    def host(self, name: str) -> HostLayout:
        return HostLayout(self.hosts_dir / name)


@dataclass(frozen=True)
class ImageLayout:
    """The files of one base image: its root folder and the stamp naming its recipe."""

    dir: Path

    @property
    def rootfs(self) -> Path:
        return self.dir / "rootfs"

    @property
    def stamp(self) -> Path:
        return self.dir / "recipe.json"


@dataclass(frozen=True)
class HostLayout:
    """The files and folders of one sandbox host."""

    dir: Path

    @property
    def record(self) -> Path:
        return self.dir / "host.json"

    @property
    def upper(self) -> Path:
        return self.dir / "upper"

    @property
    def work(self) -> Path:
        return self.dir / "work"

    @property
    def root(self) -> Path:
        """The merged overlay root: the host's / as mounted on the control node."""
        return self.dir / "root"

    @property
    def docker_data(self) -> Path:
        return self.dir / "docker"

    @property
    def log(self) -> Path:
        return self.dir / "nspawn.log"


def resolve_state_dir(state_dir: Path | None = None) -> StateLayout:
    """Pick the state directory: the argument, else $GPURUN_SANDBOX_DIR, else the default."""
    if state_dir is None:
        state_dir = Path(os.environ.get(STATE_DIR_ENV) or DEFAULT_STATE_DIR)
    state_dir = state_dir.absolute()

    unsafe = UNSAFE_PATH_CHARACTERS.intersection(str(state_dir))
    if unsafe:
        raise SandboxError(
            f"invalid sandbox state directory {str(state_dir)!r}: it contains {sorted(unsafe)!r}, "
            f"which overlayfs and systemd-nspawn cannot take in a path. "
            f"set {STATE_DIR_ENV} to a path without them"
        )
    return StateLayout(state_dir)


def validate_host_name(name: str) -> None:
    """Raise SandboxError unless the name is safe as a hostname, netns name and file name."""
    if not HOST_NAME_PATTERN.fullmatch(name):
        raise SandboxError(
            f"invalid sandbox host name {name!r}: use {HOST_NAME_RULE}, for example 'sbx1'"
        )
