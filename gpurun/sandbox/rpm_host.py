"""Make a sandbox host stand in for an RPM distribution: an rpm database that owns the base.

RPM distributions cannot be downloaded here, so the host stays Debian underneath. Two things
make rpm on it behave as on RHEL: the database lives at /var/lib/rpm for every user (Debian's
rpm keeps one per user in ~/.rpmdb, so root and a sudo user would see different ones), and
one package provides what an RPM base system provides to package dependencies, such as
/bin/sh, which every package with a shell scriptlet requires.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from gpurun.sandbox.commands import run_checked

PACKAGE_TOOLS = ("dpkg", "rpm")

RPM_MACROS_PATH = "etc/rpm/macros"
RPM_MACROS = """\
# gpurun sandbox: one rpm database for every user, where RPM distributions keep it.
%_dbpath /var/lib/rpm
"""

BASE_PACKAGE = "gpurun-sandbox-base"

# What the packages of a minimal RHEL install (bash, coreutils, glibc, tar, util-linux) give
# to the dependencies of other packages, for the commands this Debian base also has.
BASE_PROVIDES = (
    "/bin/sh", "/bin/bash", "/usr/bin/sh", "/usr/bin/bash", "bash", "coreutils", "glibc",
    "tar", "util-linux", "findutils", "grep", "sed", "gawk", "procps-ng", "iptables",
    "shadow-utils",
)

_RPMBUILD_HINT = "install rpm on the control node (apt-get install rpm)"


def make_rpm_host(root: Path, name: str) -> None:
    """Set up the rpm database in the host root folder `root`, before the host boots."""
    macros = root / RPM_MACROS_PATH
    macros.parent.mkdir(parents=True, exist_ok=True)
    macros.write_text(RPM_MACROS)

    with tempfile.TemporaryDirectory(prefix="gpurun-sandbox-rpm-") as work:
        package = _build_base_package(Path(work), name)
        # The control node's rpm writes the database inside the host's root folder.
        run_checked(
            ["rpm", "--root", str(root), "--dbpath", "/var/lib/rpm", "--initdb"],
            host=name, next_step=_RPMBUILD_HINT,
        )
        run_checked(
            ["rpm", "--root", str(root), "--dbpath", "/var/lib/rpm", "-U", str(package)],
            host=name, next_step="read the rpm output above",
        )


def _build_base_package(work: Path, name: str) -> Path:
    spec = work / f"{BASE_PACKAGE}.spec"
    lines = [
        f"Name: {BASE_PACKAGE}",
        "Version: 1",
        "Release: 1",
        "Summary: The Debian base of a gpurun sandbox host, as an rpm database sees it",
        "License: Apache-2.0",
        "BuildArch: noarch",
        *(f"Provides: {provided}" for provided in BASE_PROVIDES),
        "",
        "%description",
        "Owns no files. It tells rpm that the commands of the Debian base are installed.",
        "",
        "%files",
        "",
    ]
    spec.write_text("\n".join(lines))
    run_checked(
        ["rpmbuild", "-bb", "--define", f"_topdir {work / 'top'}", str(spec)],
        host=name, next_step=_RPMBUILD_HINT,
    )
    return next((work / "top" / "RPMS" / "noarch").glob(f"{BASE_PACKAGE}-*.rpm"))
