"""Host aliases in ssh's own configuration, for tests of inventories that name an alias.

ssh reads ~/.ssh/config from the passwd home, not $HOME, so a test cannot point it at a file
of its own there. Debian's /etc/ssh/ssh_config includes /etc/ssh/ssh_config.d/*.conf, so a test
adds a file there with one uniquely named `Host` block, and removes it afterwards.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

SYSTEM_CONFIG = Path("/etc/ssh/ssh_config")
INCLUDE_DIR = Path("/etc/ssh/ssh_config.d")


@contextmanager
def ssh_alias(alias: str, **options: str) -> Iterator[str]:
    """Define `Host <alias>` with the given options (HostName=..., User=...) while inside."""
    if os.geteuid() != 0 or f"Include {INCLUDE_DIR}/*.conf" not in _read(SYSTEM_CONFIG):
        pytest.skip(f"ssh alias tests need root and an `Include {INCLUDE_DIR}/*.conf` line in "
                    f"{SYSTEM_CONFIG}")
    path = INCLUDE_DIR / f"gpurun-test-{alias}.conf"
    lines = [f"Host {alias}", *(f"    {key} {value}" for key, value in options.items())]
    path.write_text("\n".join(lines) + "\n")
    try:
        yield alias
    finally:
        path.unlink(missing_ok=True)


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""
