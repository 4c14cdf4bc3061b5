"""The files and description that every stand-in toolkit package carries, deb or rpm."""

from __future__ import annotations

import textwrap

from gpurun.demo.standin_scripts import STANDIN_LOG_DIR, standin_script
from gpurun.demo.toolkit_facts import ToolkitPackageFacts


def standin_description(facts: ToolkitPackageFacts) -> list[str]:
    """Return the lines of a stand-in package's description, the summary line first."""
    if facts.programs:
        contents = (
            f"Its programs ({', '.join(facts.programs)}) are POSIX sh scripts that log each "
            f"call under {STANDIN_LOG_DIR}."
        )
    else:
        contents = "It ships no library, only this description."
    body = (
        "This is a gpurun stand-in for hosts without GPUs. It contains no NVIDIA code. "
        "It has the name, version and dependencies of the real package, so that gpurun "
        f"can rehearse installing the NVIDIA Container Toolkit. {contents}"
    )
    return [f"{facts.summary} (gpurun stand-in)", *textwrap.wrap(body, width=72)]


def standin_files(facts: ToolkitPackageFacts, release: str) -> dict[str, tuple[str, int]]:
    """Return the package's files as relative path -> (text, mode): programs and a README."""
    files = {
        f"usr/bin/{program}": (standin_script(program, release), 0o755)
        for program in facts.programs
    }
    readme = "\n".join(standin_description(facts)) + "\n"
    files[f"usr/share/doc/{facts.name}/README.gpurun-standin"] = (readme, 0o644)
    return files
