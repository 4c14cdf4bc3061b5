"""Stand-in .deb packages for the NVIDIA Container Toolkit, and a flat apt index for them.

The packages carry the real names, version and dependency fields (gpurun.demo.toolkit_facts),
so dpkg resolves and orders them as it would the real ones, but their programs are the sh
scripts of gpurun.demo.standin_scripts. They contain no NVIDIA code.
"""

from __future__ import annotations

import logging
import math
import os
import re
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from gpurun.bundle.archs import deb_arch
from gpurun.demo.standin_contents import standin_description, standin_files
from gpurun.demo.toolkit_facts import (
    INSTALL_ORDER,
    STANDIN_VERSION,
    TOOLKIT_PACKAGES,
    ToolkitPackageFacts,
)
from gpurun.demo.tools import require_tool, run_tool
from gpurun.errors import BundleError

logger = logging.getLogger("gpurun.demo")

STANDIN_MAINTAINER = "gpurun demo builder <root@localhost>"

# One fixed time (2024-11-15T00:00:00Z) for every file and archive member, so that building
# the same package twice gives the same bytes.
STANDIN_EPOCH = 1731628800

_DPKG_HINT = "install dpkg (it provides dpkg-deb) on a Debian-based machine"
_DEB_VERSION = re.compile(r"(\d+:)?[0-9][0-9A-Za-z.+~]*(-[0-9A-Za-z.+~]+)?")


def build_standin_debs(
    out_dir: Path,
    *,
    version: str = STANDIN_VERSION,
    names: Sequence[str] | None = None,
    arch: str = "amd64",
    depends_override: Mapping[str, str] | None = None,
) -> list[Path]:
    """Build stand-in toolkit packages into `out_dir` and return their paths in install order.

    `names` selects packages (default: all four), so tests can build incomplete sets.
    `depends_override` maps a package name to the Depends field to write instead of the real
    one ("" writes none), so tests can build mismatched sets. `arch` takes any spelling that
    gpurun.bundle.archs accepts.
    """
    require_tool("dpkg-deb", hint=_DPKG_HINT)
    debian_arch = deb_arch(arch)
    release = release_of(version)
    selected = _select_packages(names)
    overrides = dict(depends_override or {})
    unknown = sorted(set(overrides) - set(TOOLKIT_PACKAGES))
    if unknown:
        raise BundleError(
            f"depends_override names unknown packages {unknown}, "
            f"known packages: {', '.join(INSTALL_ORDER)}"
        )

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    with tempfile.TemporaryDirectory(prefix="gpurun-standin-deb-") as work_dir:
        for facts in selected:
            depends = overrides.get(
                facts.name, facts.depends[debian_arch].format(version=version, release=release)
            )
            control = _control_text(facts, version, debian_arch, depends)
            root = Path(work_dir) / facts.name
            paths.append(_build_package(root, out_dir, facts, control, version, debian_arch))
    return paths


def release_of(version: str) -> str:
    """Return the upstream part of a Debian version (1.17.2-1 -> 1.17.2), after checking it."""
    if not _DEB_VERSION.fullmatch(version):
        raise BundleError(
            f"invalid Debian package version {version!r}: expected e.g. 1.17.2-1 "
            "(digits first, then letters, digits and . + ~, an optional -revision)"
        )
    upstream = version.split(":", 1)[-1]
    return upstream.rsplit("-", 1)[0] if "-" in upstream else upstream


def _select_packages(names: Iterable[str] | None) -> list[ToolkitPackageFacts]:
    if names is None:
        return [TOOLKIT_PACKAGES[name] for name in INSTALL_ORDER]
    requested = set(names)
    unknown = sorted(requested - set(TOOLKIT_PACKAGES))
    if unknown:
        raise BundleError(
            f"no stand-in exists for the packages {unknown}, known packages: "
            f"{', '.join(INSTALL_ORDER)}"
        )
    return [TOOLKIT_PACKAGES[name] for name in INSTALL_ORDER if name in requested]


def _control_text(
    facts: ToolkitPackageFacts, version: str, debian_arch: str, depends: str
) -> str:
    fields: list[tuple[str, str | None]] = [
        ("Package", facts.name),
        ("Version", version),
        ("Architecture", debian_arch),
        ("Multi-Arch", facts.multi_arch),
        ("Priority", "optional"),
        ("Section", facts.section),
        ("Source", facts.source),
        ("Maintainer", STANDIN_MAINTAINER),
        ("Installed-Size", "{installed_size}"),
        ("Depends", depends or None),
        ("Breaks", facts.breaks),
        ("Replaces", facts.replaces),
    ]
    lines = [f"{key}: {value}" for key, value in fields if value]
    summary, *details = standin_description(facts)
    lines.append(f"Description: {summary}")
    lines.extend(f" {line}" for line in details)
    return "\n".join(lines) + "\n"


def _build_package(
    root: Path,
    out_dir: Path,
    facts: ToolkitPackageFacts,
    control: str,
    version: str,
    debian_arch: str,
) -> Path:
    files = standin_files(facts, release_of(version))
    for relative, (text, mode) in files.items():
        _write_file(root / relative, text, mode)
    installed_kib = math.ceil(sum(len(text.encode()) for text, _ in files.values()) / 1024)
    _write_file(root / "DEBIAN" / "control", control.format(installed_size=installed_kib), 0o644)
    _normalize_tree(root)

    filename = f"{facts.name}_{version.split(':', 1)[-1]}_{debian_arch}.deb"
    deb = out_dir / filename
    environment = dict(os.environ, SOURCE_DATE_EPOCH=str(STANDIN_EPOCH))
    run_tool(["dpkg-deb", "--root-owner-group", "--build", str(root), str(deb)],
             env=environment, hint=_DPKG_HINT)
    logger.debug("built stand-in package %s", deb)
    return deb


def _write_file(path: Path, text: str, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)


def _normalize_tree(root: Path) -> None:
    """Give every folder mode 0755 and every entry the fixed time, whatever the umask was."""
    for folder, _, filenames in os.walk(root):
        Path(folder).chmod(0o755)
        for name in filenames:
            os.utime(Path(folder) / name, (STANDIN_EPOCH, STANDIN_EPOCH))
        os.utime(folder, (STANDIN_EPOCH, STANDIN_EPOCH))
