"""Raw probe output to parsed facts."""

from __future__ import annotations

import pytest

from gpurun.facts import system, systemd

DEBIAN_OS_RELEASE = '''PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
ID=debian
'''

ROCKY_OS_RELEASE = '''NAME="Rocky Linux"
ID="rocky"
ID_LIKE="rhel centos fedora"
VERSION_ID="9.3"
PRETTY_NAME="Rocky Linux 9.3 (Blue Onyx)"
'''


def test_parse_os_release():
    values = system.parse_os_release(DEBIAN_OS_RELEASE)
    assert values["ID"] == "debian"
    assert values["PRETTY_NAME"] == "Debian GNU/Linux 12 (bookworm)"


@pytest.mark.parametrize(
    ("text", "has_dpkg", "has_rpm", "expected"),
    [
        (DEBIAN_OS_RELEASE, True, False, "deb"),
        (DEBIAN_OS_RELEASE, True, True, "deb"),  # rpm installed on Debian stays deb
        (ROCKY_OS_RELEASE, False, True, "rpm"),
        ('ID=ubuntu\nID_LIKE=debian\n', True, False, "deb"),
        ('ID=openEuler\n', False, True, "rpm"),
        ('ID=mystery\n', False, True, "rpm"),
        ('ID=mystery\n', False, False, "unknown"),
    ],
)
def test_package_format_for(text, has_dpkg, has_rpm, expected):
    release = system.parse_os_release(text)
    assert system.package_format_for(release, has_dpkg, has_rpm) == expected


def test_parse_exec_start_with_drop_in():
    value = (
        "{ path=/usr/bin/dockerd ; argv[]=/usr/bin/dockerd -H fd:// "
        "--containerd=/run/containerd/containerd.sock ; ignore_errors=no ; "
        "start_time=[n/a] ; stop_time=[n/a] ; pid=0 ; code=(null) ; status=0/0 }"
    )
    assert systemd.parse_exec_start(value) == [
        ["/usr/bin/dockerd", "-H", "fd://", "--containerd=/run/containerd/containerd.sock"]
    ]


def test_parse_exec_start_empty():
    assert systemd.parse_exec_start("") == []


def test_parse_show():
    values = systemd.parse_show("LoadState=loaded\nActiveState=active\nDropInPaths=\n")
    assert values == {"LoadState": "loaded", "ActiveState": "active", "DropInPaths": ""}
