"""A flat apt repository index (a `Packages` file) for a folder of .deb files.

apt reads such a folder with a sources line like `deb [trusted=yes] file:/path/to/folder ./`.
The index lists each package's control fields plus Filename, Size and SHA256, as
dpkg-scanpackages writes them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from gpurun.bundle.manifest import sha256_file
from gpurun.demo.tools import run_tool


def write_packages_index(repo_dir: Path, debs: Sequence[Path]) -> Path:
    """Write `repo_dir/Packages` listing `debs` (files inside `repo_dir`) and return its path."""
    paragraphs = [_index_paragraph(repo_dir, deb) for deb in debs]
    index = repo_dir / "Packages"
    index.write_text("\n".join(paragraphs), encoding="utf-8")
    return index


def parse_control(text: str) -> list[dict[str, str]]:
    """Parse deb822 paragraphs (control files, Packages indexes) into ordered field maps.

    Continuation lines stay in the value, joined by newlines with their leading space.
    """
    paragraphs: list[dict[str, str]] = []
    fields: dict[str, str] = {}
    key = ""
    for line in text.splitlines():
        if not line.strip():
            if fields:
                paragraphs.append(fields)
            fields, key = {}, ""
        elif line[0] in " \t" and key:
            fields[key] += "\n" + line
        elif ":" in line:
            key, value = line.split(":", 1)
            fields[key] = value.strip()
    if fields:
        paragraphs.append(fields)
    return paragraphs


def _index_paragraph(repo_dir: Path, deb: Path) -> str:
    control_text = run_tool(["dpkg-deb", "--field", str(deb)],
                            hint=f"check that {deb} is a valid .deb file")
    control = parse_control(control_text)[0]
    description = control.pop("Description", "")

    # Description stays the last field, as in the output of dpkg-scanpackages.
    control["Filename"] = f"./{deb.relative_to(repo_dir).as_posix()}"
    control["Size"] = str(deb.stat().st_size)
    control["SHA256"] = sha256_file(deb)
    if description:
        control["Description"] = description
    return "".join(f"{key}: {value}\n" for key, value in control.items())
