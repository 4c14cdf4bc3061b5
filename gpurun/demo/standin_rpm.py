"""Stand-in .rpm packages for the NVIDIA Container Toolkit, built with rpmbuild.

They carry the real package names and the same files as the stand-in .deb packages. Their
Requires mirror the relations among the toolkit packages in the deb Depends fields.

NOTE: the Requires are derived from the deb index, not read from NVIDIA's rpm index (its
primary.xml was not available), so they may differ from the real rpm packages in details.
System libraries (libc6, libcap2, libseccomp2) have other names in rpm distributions and are
left out.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

from gpurun.bundle.archs import deb_arch, rpm_arch
from gpurun.demo.standin_contents import standin_description, standin_files
from gpurun.demo.standin_deb import STANDIN_EPOCH, STANDIN_MAINTAINER, release_of
from gpurun.demo.toolkit_facts import (
    INSTALL_ORDER,
    STANDIN_VERSION,
    TOOLKIT_PACKAGES,
    ToolkitPackageFacts,
)
from gpurun.demo.tools import require_tool, run_tool
from gpurun.errors import BundleError

logger = logging.getLogger("gpurun.demo")

_RPMBUILD_HINT = "install rpmbuild (Debian package rpm) to build the stand-in rpm packages"

# Debian relation operators and their rpm spelling.
_RPM_OPERATORS = {">=": ">=", "<=": "<=", "=": "=", ">>": ">", "<<": "<"}
# A Debian relation: a package name, then optionally (OPERATOR VERSION).
_RELATION = re.compile(
    r"^\s*([a-z0-9][a-z0-9+.-]*)\s*(?:\(\s*(>=|<=|>>|<<|=)\s*([^)\s]+)\s*\))?\s*$"
)


def build_standin_rpms(
    out_dir: Path,
    version: str = STANDIN_VERSION,
    arch: str = "x86_64",
    names: Sequence[str] | None = None,
) -> list[Path]:
    """Build stand-in toolkit rpm packages into `out_dir` and return their paths in install order.

    `version` is VERSION-RELEASE (1.17.2-1). `arch` takes any spelling gpurun.bundle.archs
    accepts. `names` selects packages (default: all four).
    """
    require_tool("rpmbuild", hint=_RPMBUILD_HINT)
    if "-" not in version or ":" in version:
        raise BundleError(
            f"invalid rpm stand-in version {version!r}: expected VERSION-RELEASE such as 1.17.2-1"
        )
    upstream, release_number = version.rsplit("-", 1)
    release_of(version)  # rejects characters that the scripts and spec cannot take
    target = rpm_arch(arch)
    selected = [TOOLKIT_PACKAGES[name] for name in INSTALL_ORDER
                if names is None or name in names]
    unknown = sorted(set(names or ()) - set(TOOLKIT_PACKAGES))
    if unknown:
        raise BundleError(
            f"no stand-in exists for the packages {unknown}, known packages: "
            f"{', '.join(INSTALL_ORDER)}"
        )

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    with tempfile.TemporaryDirectory(prefix="gpurun-standin-rpm-") as work_dir:
        for facts in selected:
            requires = rpm_requires(facts, version, deb_arch(arch))
            paths.append(_build_package(Path(work_dir) / facts.name, out_dir, facts,
                                        upstream, release_number, target, requires))
    return paths


def rpm_requires(facts: ToolkitPackageFacts, version: str, debian_arch: str) -> list[str]:
    """Return the package's Requires: its deb Depends on other toolkit packages, in rpm syntax."""
    depends = facts.depends[debian_arch].format(version=version, release=release_of(version))
    requires = []
    for relation in filter(None, (part.strip() for part in depends.split(","))):
        match = _RELATION.match(relation)
        if match is None:
            raise BundleError(f"cannot convert the Debian relation {relation!r} of {facts.name}")
        name, operator, bound = match.groups()
        if name not in TOOLKIT_PACKAGES:
            continue
        requires.append(f"{name} {_RPM_OPERATORS[operator]} {bound}" if operator else name)
    return requires


def _build_package(
    work_dir: Path,
    out_dir: Path,
    facts: ToolkitPackageFacts,
    upstream: str,
    release_number: str,
    target: str,
    requires: list[str],
) -> Path:
    staged = work_dir / "files"
    files = standin_files(facts, upstream)
    for relative, (text, mode) in files.items():
        path = staged / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        path.chmod(mode)

    spec = work_dir / f"{facts.name}.spec"
    spec.write_text(_spec_text(facts, upstream, release_number, requires, staged, files))
    environment = dict(os.environ, SOURCE_DATE_EPOCH=str(STANDIN_EPOCH))
    run_tool(
        ["rpmbuild", "-bb", "--target", target,
         "--define", f"_topdir {work_dir / 'top'}",
         "--define", "use_source_date_epoch_as_buildtime 1",
         "--define", "clamp_mtime_to_source_date_epoch 1",
         "--define", "_buildhost gpurun-demo",
         str(spec)],
        env=environment, hint=_RPMBUILD_HINT,
    )

    rpm_name = f"{facts.name}-{upstream}-{release_number}.{target}.rpm"
    built = work_dir / "top" / "RPMS" / target / rpm_name
    if not built.is_file():
        raise BundleError(
            f"rpmbuild finished but {built} is missing"
            "\n  next step: run rpmbuild by hand to see why"
        )
    rpm = out_dir / built.name
    shutil.move(str(built), rpm)
    logger.debug("built stand-in package %s", rpm)
    return rpm


def _spec_text(
    facts: ToolkitPackageFacts,
    upstream: str,
    release_number: str,
    requires: list[str],
    staged: Path,
    files: dict[str, tuple[str, int]],
) -> str:
    summary, *details = standin_description(facts)
    lines = [
        f"Name: {facts.name}",
        f"Version: {upstream}",
        f"Release: {release_number}",
        f"Summary: {summary}",
        "License: Apache-2.0",
        f"Packager: {STANDIN_MAINTAINER}",
        # The scripts need only /bin/sh, so rpmbuild need not scan for library dependencies.
        "AutoReqProv: no",
        "Requires: /bin/sh",
        *(f"Requires: {relation}" for relation in requires),
        "",
        "%description",
        *details,
        "",
        "%install",
        "mkdir -p %{buildroot}",
        f"cp -a {staged}/. %{{buildroot}}/",
        "",
        "%files",
        "%defattr(-,root,root,-)",
        *(f"/{relative}" for relative in files),
        "",
    ]
    return "\n".join(lines)
