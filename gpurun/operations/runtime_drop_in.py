"""gpurun's systemd drop-in for docker.service that sets the runtimes through dockerd's flags.

Operators often register the nvidia runtime with `--add-runtime` and `--default-runtime` in a
drop-in instead of daemon.json. gpurun writes only this one file for that way, so it can
always tell its own flags from an operator's.
"""

from __future__ import annotations

import re

from gpurun.facts import dockerd as dockerd_facts

DROP_IN_DIR = "/etc/systemd/system/docker.service.d"
# systemd applies drop-ins in file name order and the last ExecStart= wins. The name sorts
# after `override.conf` (what `systemctl edit` writes) and numbered files.
DROP_IN_PATH = f"{DROP_IN_DIR}/zz-gpurun-runtime.conf"

HEADER = """\
# Written by gpurun's runtime step (runtime_config = "flags"): dockerd's command line with
# the runtimes added as flags. gpurun removes this file when the runtimes move to daemon.json.
"""

# Words made only of these characters need no quotes in a unit file.
PLAIN_WORD = re.compile(r"[A-Za-z0-9_@%+=:,./$-]+")
RUNTIME_FLAGS = ("add-runtime", "default-runtime")


def quote_word(word: str) -> str:
    """Return word as one ExecStart argument, keeping `$` and `%` as written in the unit."""
    if PLAIN_WORD.fullmatch(word):
        return word
    escaped = word.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def render_drop_in(argv: list[str]) -> str:
    """Return the drop-in text that replaces docker.service's ExecStart with argv."""
    command = " ".join(quote_word(word) for word in argv)
    return f"{HEADER}[Service]\nExecStart=\nExecStart={command}\n"


def without_runtime_flags(argv: list[str]) -> list[str]:
    """Return argv without --add-runtime and --default-runtime flags and their values."""
    kept: list[str] = []
    skip_next = False
    for word in argv:
        if skip_next:
            skip_next = False
            continue
        name = word[2:].partition("=")[0] if word.startswith("--") else ""
        if name in RUNTIME_FLAGS:
            skip_next = "=" not in word
            continue
        kept.append(word)
    return kept


def runtime_flags(runtimes: dict[str, str], default: str | None) -> list[str]:
    """Return the flags that add each runtime, then the one that sets the default."""
    flags = [f"--add-runtime={name}={path}" for name, path in runtimes.items()]
    if default:
        flags.append(f"--default-runtime={default}")
    return flags


def drop_in_argv(text: str | None) -> list[str]:
    """Return the ExecStart words of a drop-in written by render_drop_in ([] when absent)."""
    if text is None:
        return []
    unit_file = dockerd_facts.UnitFile(DROP_IN_PATH, text)
    argv: list[str] = []
    for key, value in dockerd_facts.service_directives(unit_file):
        if key == "ExecStart":
            argv = dockerd_facts.split_words(value, DROP_IN_PATH) if value else []
    return argv
