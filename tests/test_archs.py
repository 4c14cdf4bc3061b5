from __future__ import annotations

import platform

import pytest

from gpurun.bundle.archs import (
    deb_arch,
    docker_static_arch,
    local_arch,
    normalize_arch,
    rpm_arch,
)
from gpurun.errors import BundleError

# (input spelling, uname -m name, Debian name, RPM name, Docker static folder)
KNOWN_SPELLINGS = [
    ("x86_64", "x86_64", "amd64", "x86_64", "x86_64"),
    ("amd64", "x86_64", "amd64", "x86_64", "x86_64"),
    ("x86-64", "x86_64", "amd64", "x86_64", "x86_64"),
    ("X86_64", "x86_64", "amd64", "x86_64", "x86_64"),
    ("x86_64\n", "x86_64", "amd64", "x86_64", "x86_64"),
    (" AMD64 ", "x86_64", "amd64", "x86_64", "x86_64"),
    ("aarch64", "aarch64", "arm64", "aarch64", "aarch64"),
    ("arm64", "aarch64", "arm64", "aarch64", "aarch64"),
    ("ARM64", "aarch64", "arm64", "aarch64", "aarch64"),
    ("aarch64\n", "aarch64", "arm64", "aarch64", "aarch64"),
]

UNSUPPORTED = ["i686", "i386", "armv7l", "armhf", "ppc64le", "s390x", "riscv64", "", "x86", "arm"]


@pytest.mark.parametrize(("spelling", "uname", "deb", "rpm", "docker"), KNOWN_SPELLINGS)
def test_arch_names_of_spelling(spelling: str, uname: str, deb: str, rpm: str, docker: str) -> None:
    assert normalize_arch(spelling) == uname
    assert deb_arch(spelling) == deb
    assert rpm_arch(spelling) == rpm
    assert docker_static_arch(spelling) == docker


@pytest.mark.parametrize("spelling", UNSUPPORTED)
def test_unsupported_arch_names_value(spelling: str) -> None:
    with pytest.raises(BundleError) as caught:
        normalize_arch(spelling)
    message = str(caught.value)
    assert repr(spelling) in message
    assert "x86_64" in message
    assert "aarch64" in message
    assert "arm64" in message


@pytest.mark.parametrize("function", [deb_arch, rpm_arch, docker_static_arch])
def test_every_mapping_rejects_unknown(function: object) -> None:
    with pytest.raises(BundleError, match="ppc64le"):
        function("ppc64le")  # type: ignore[operator]


def test_local_arch_matches_machine() -> None:
    assert local_arch() == normalize_arch(platform.machine())
