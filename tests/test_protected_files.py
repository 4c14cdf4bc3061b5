"""C06: no package may replace /etc/docker/daemon.json, because gpurun merges into that file.

Older nvidia-docker2 packages shipped their own daemon.json. The tests build stand-ins of that
shape with the real dpkg-deb and rpmbuild: a package named nvidia-docker2 whose only file is
/etc/docker/daemon.json. The real dpkg-deb and rpm then list them on a host whose address is
`local`, as the toolkit step does on a remote host before it installs anything.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path, PurePosixPath

import pytest

from gpurun.demo.standin_deb import build_standin_debs
from gpurun.errors import BundleError
from gpurun.operations.packages import reject_protected_files

# What nvidia-docker2 2.x put in daemon.json, to register its runtime.
LEGACY_DAEMON_JSON = (
    '{\n    "runtimes": {\n        "nvidia": {\n'
    '            "path": "nvidia-container-runtime",\n            "runtimeArgs": []\n'
    '        }\n    }\n}\n'
)


def legacy_deb(folder: Path) -> PurePosixPath:
    """Build a stand-in nvidia-docker2 .deb that ships /etc/docker/daemon.json."""
    root = folder / "nvidia-docker2"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN" / "control").write_text(
        "Package: nvidia-docker2\nVersion: 2.13.0-1\nArchitecture: all\n"
        "Maintainer: gpurun tests <root@localhost>\n"
        "Description: stand-in of the legacy package (gpurun test)\n"
    )
    (root / "etc" / "docker").mkdir(parents=True)
    (root / "etc" / "docker" / "daemon.json").write_text(LEGACY_DAEMON_JSON)
    package = folder / "nvidia-docker2_2.13.0-1_all.deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", "--build", str(root), str(package)],
                   check=True, capture_output=True)
    return PurePosixPath(package)


def legacy_rpm(folder: Path) -> PurePosixPath:
    """Build a stand-in nvidia-docker2 .rpm that ships /etc/docker/daemon.json."""
    staged = folder / "files"
    (staged / "etc" / "docker").mkdir(parents=True)
    (staged / "etc" / "docker" / "daemon.json").write_text(LEGACY_DAEMON_JSON)
    spec = folder / "nvidia-docker2.spec"
    spec.write_text("\n".join([
        "Name: nvidia-docker2", "Version: 2.13.0", "Release: 1",
        "Summary: stand-in of the legacy package (gpurun test)", "License: Apache-2.0",
        "BuildArch: noarch", "AutoReqProv: no", "", "%description", "gpurun test package", "",
        "%install", "mkdir -p %{buildroot}", f"cp -a {staged}/. %{{buildroot}}/", "",
        "%files", "/etc/docker/daemon.json", "",
    ]))
    subprocess.run(["rpmbuild", "-bb", "--define", f"_topdir {folder / 'top'}", str(spec)],
                   check=True, capture_output=True)
    return PurePosixPath(folder / "top" / "RPMS" / "noarch" / "nvidia-docker2-2.13.0-1.noarch.rpm")


NO_RPMBUILD = pytest.mark.skipif(
    shutil.which("rpmbuild") is None,
    reason="rpmbuild is missing: scripts/setup.sh installs Debian's rpm package")


@pytest.mark.parametrize(("package_format", "build", "file_name"), [
    ("deb", legacy_deb, "nvidia-docker2_2.13.0-1_all.deb"),
    pytest.param("rpm", legacy_rpm, "nvidia-docker2-2.13.0-1.noarch.rpm", marks=NO_RPMBUILD),
])
def test_package_shipping_daemon_json_rejected(local_host, tmp_path, package_format, build,
                                               file_name):
    package = build(tmp_path)

    with pytest.raises(BundleError) as caught:
        reject_protected_files(local_host, package, package_format)

    message = str(caught.value)
    assert f"package {file_name}" in message
    assert "would replace /etc/docker/daemon.json on host local-host" in message
    assert "next step: leave this package out of the bundle" in message


def test_toolkit_packages_pass_the_check(local_host, tmp_path):
    packages = build_standin_debs(tmp_path)

    for package in packages:
        reject_protected_files(local_host, PurePosixPath(package), "deb")

    assert [p.name.split("_")[0] for p in packages] == [
        "libnvidia-container1", "libnvidia-container-tools", "nvidia-container-toolkit-base",
        "nvidia-container-toolkit",
    ]
