"""Facts about how dockerd is started: its unit files, the command line they give it, its version.

`systemctl show -p ExecStart` prints the arguments without their quotes, so an argument that
contains a space or a quote is ambiguous there. gpurun reads the unit files themselves, as
`systemctl cat` lists them from disk (what systemd loads on its next daemon-reload), and
expands variables the way systemd does.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field

from gpurun import daemon_config
from gpurun.errors import ConfigError
from gpurun.host import Host

DOCKER_UNIT = "docker.service"

# ExecStart= may start with these characters, which change how systemd runs the command.
EXEC_PREFIXES = "@-:+!"
SIMPLE_VARIABLE = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")
BRACED_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
ENVIRONMENT_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class UnitFile:
    path: str
    text: str


@dataclass
class ServiceCommandLine:
    """The dockerd command line a systemd unit gives, and the files that make it."""

    unit: str
    files: list[str]
    exec_start_file: str | None  # the file whose ExecStart= is in effect
    raw_argv: list[str]  # as written in that file, variables not expanded
    command_line: daemon_config.CommandLine  # expanded, each option with the file that set it
    environment_files: list[str] = field(default_factory=list)


def parse_systemctl_cat(text: str, unit: str) -> list[str]:
    """Return the file paths `systemctl cat UNIT` lists, in the order systemd applies them.

    Each file starts with a `# /path` line. Only a path to the unit itself or to a `.conf`
    file in a `UNIT.d/` folder counts, so a comment inside a file is not taken for a header.
    """
    paths = []
    for line in text.splitlines():
        if not line.startswith("# /"):
            continue
        path = line[2:].strip()
        is_fragment = path.rsplit("/", 1)[-1] == unit
        is_drop_in = path.endswith(".conf") and f"/{unit}.d/" in path
        if is_fragment or is_drop_in:
            paths.append(path)
    return paths


def service_directives(unit_file: UnitFile) -> list[tuple[str, str]]:
    """Return the (key, value) assignments of a unit file's [Service] section, in order.

    A line ending in a backslash continues on the next line, as systemd reads it.
    """
    directives = []
    section = ""
    pending = ""
    for raw_line in unit_file.text.splitlines():
        line = pending + raw_line.strip()
        pending = ""
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        key, equals, value = line.partition("=")
        if equals and section == "Service":
            directives.append((key.strip(), value.strip()))
    return directives


def split_words(value: str, path: str) -> list[str]:
    """Split a unit file value into words, removing quotes as systemd does."""
    try:
        return shlex.split(value, posix=True)
    except ValueError as error:
        raise ConfigError(
            f"cannot split {value!r} in {path} into words: {error}\n"
            f"  next step: fix the quotes in that line, run `systemctl daemon-reload`, "
            f"then run the step again"
        ) from error


def parse_environment_assignments(words: list[str]) -> dict[str, str]:
    """Return the NAME=value words of an Environment= line as a mapping."""
    values = {}
    for word in words:
        name, equals, value = word.partition("=")
        if equals and ENVIRONMENT_NAME.fullmatch(name):
            values[name] = value
    return values


def parse_environment_file(text: str, path: str) -> dict[str, str]:
    """Parse an EnvironmentFile= file: NAME=value lines, '#' and ';' comments, shell quotes."""
    values = {}
    pending = ""
    for raw_line in text.splitlines():
        line = pending + raw_line.strip()
        pending = ""
        if line.endswith("\\"):
            pending = line[:-1]
            continue
        if not line or line[0] in "#;":
            continue
        name, equals, value = line.partition("=")
        name = name.strip()
        if equals and ENVIRONMENT_NAME.fullmatch(name):
            words = split_words(value.strip(), path)
            values[name] = " ".join(words)
    return values


def expand_word(word: str, environment: dict[str, str]) -> tuple[list[str], str | None]:
    """Expand one ExecStart word as systemd does; return the words and the variable used.

    `$NAME` alone is split at whitespace into zero or more words, `${NAME}` is replaced in
    place and stays one word, `$$` is a literal `$`. Unset variables are empty.
    """
    alone = SIMPLE_VARIABLE.fullmatch(word)
    if alone:
        return environment.get(alone.group(1), "").split(), alone.group(1)
    used: list[str] = []

    def replace(match: re.Match[str]) -> str:
        used.append(match.group(1))
        return environment.get(match.group(1), "")

    parts = [BRACED_VARIABLE.sub(replace, part) for part in word.split("$$")]
    return ["$".join(parts)], (used[-1] if used else None)


def command_line_from_units(
    unit: str, files: list[UnitFile], environment_texts: dict[str, str | None]
) -> ServiceCommandLine:
    """Return the dockerd command line that these unit files give, variables expanded.

    environment_texts contains the text of each EnvironmentFile= (None where it is absent).
    """
    exec_start: list[str] = []
    exec_start_file: str | None = None
    environment: dict[str, str] = {}
    environment_origin: dict[str, str] = {}
    environment_files: list[str] = []
    for unit_file in files:
        for key, value in service_directives(unit_file):
            if key == "ExecStart":
                exec_start = split_words(value.lstrip(EXEC_PREFIXES), unit_file.path) if value else []
                exec_start_file = unit_file.path if value else None
            elif key == "Environment" and not value:
                environment, environment_origin = {}, {}
            elif key == "Environment":
                assigned = parse_environment_assignments(split_words(value, unit_file.path))
                environment.update(assigned)
                environment_origin.update(dict.fromkeys(assigned, unit_file.path))
            elif key == "EnvironmentFile":
                environment_files = environment_files + [value] if value else []

    # Files given with EnvironmentFile= override Environment= lines, later files earlier ones.
    for entry in environment_files:
        path = entry.lstrip("-")
        text = environment_texts.get(path)
        if text is None:
            continue
        assigned = parse_environment_file(text, path)
        environment.update(assigned)
        environment_origin.update(dict.fromkeys(assigned, path))

    argv: list[str] = []
    origins: list[str] = []
    for word in exec_start:
        expanded, variable = expand_word(word, environment)
        origin = environment_origin.get(variable or "", exec_start_file or unit)
        argv += expanded
        origins += [origin] * len(expanded)
    return ServiceCommandLine(
        unit=unit,
        files=[f.path for f in files],
        exec_start_file=exec_start_file,
        raw_argv=exec_start,
        command_line=daemon_config.parse_dockerd_argv(argv or ["dockerd"], origins or None),
        environment_files=[entry.lstrip("-") for entry in environment_files],
    )


def unit_files(host: Host, unit: str = DOCKER_UNIT) -> list[UnitFile]:
    """Return the unit's file and drop-ins as they are on disk, or [] when it has none."""
    result = host.run(["systemctl", "cat", "--no-pager", unit], check=False)
    if not result.ok:
        return []
    files = []
    for path in parse_systemctl_cat(result.stdout, unit):
        text = host.read_text(path)
        if text is not None:
            files.append(UnitFile(path, text))
    return files


def service_command_line(
    host: Host, unit: str = DOCKER_UNIT, *, leave_out: tuple[str, ...] = ()
) -> ServiceCommandLine:
    """Return dockerd's command line from the unit on disk; leave_out names files to ignore."""
    files = [f for f in unit_files(host, unit) if f.path not in leave_out]
    first_pass = command_line_from_units(unit, files, {})
    environment_texts = {path: host.read_text(path) for path in first_pass.environment_files}
    return command_line_from_units(unit, files, environment_texts)


def needs_daemon_reload(host: Host, unit: str = DOCKER_UNIT) -> bool:
    """Return whether the unit's files changed on disk since systemd last loaded them."""
    result = host.run(["systemctl", "show", unit, "-p", "NeedDaemonReload", "--value"],
                      check=False)
    return result.stdout.strip() == "yes"


def running_dockerd_argv(host: Host) -> list[str] | None:
    """Return the argv of the running dockerd from /proc, or None when none runs."""
    result = host.run(["pidof", "dockerd"], check=False)
    pids = result.stdout.split()
    if not result.ok or not pids:
        return None
    text = host.read_text(f"/proc/{pids[0]}/cmdline")
    if not text:
        return None
    return [word for word in text.split("\0") if word] or None


def supports_validate(host: Host, dockerd: str) -> bool:
    """Return whether this dockerd has `--validate` (Docker 23.0 and later)."""
    result = host.run([dockerd, "--help"], check=False)
    return "--validate" in result.stdout + result.stderr


def dockerd_version(host: Host, dockerd: str) -> str | None:
    """Return dockerd's version from `dockerd --version` (e.g. 20.10.24), or None."""
    result = host.run([dockerd, "--version"], check=False)
    match = re.search(r"version v?([0-9]+\.[0-9]+(?:\.[0-9]+)?)", result.stdout)
    return match.group(1) if result.ok and match else None


def started_before_change(host: Host, path: str) -> bool:
    """Return whether the running dockerd started before path was created or last changed.

    Compares the process's start with the file's ctime, which package installs set to the
    install time (mtime keeps the build time). The start comes from /proc to a hundredth of a
    second: whole seconds (`ps -o etimes`) made a restart in the same second as the install
    look older than it. False when no dockerd runs or either time cannot be read.
    """
    # Field 22 of /proc/PID/stat is the start in clock ticks after boot. Cutting up to ") "
    # first keeps a process name with spaces from shifting the fields.
    script = (
        'pid=$(pidof -s dockerd) || exit 3; '
        'ticks=$(sed "s/.*) //" "/proc/$pid/stat" | cut -d " " -f 20) || exit 3; '
        'echo "$(date +%s.%N) $(cut -d " " -f 1 /proc/uptime) $ticks $(getconf CLK_TCK)'
        ' $(stat -c %.9Z "$1")"'
    )
    result = host.run(["sh", "-c", script, "sh", path], check=False)
    try:
        now, uptime, ticks, hertz, changed = (float(f) for f in result.stdout.split())
    except ValueError:
        return False
    if not result.ok or not hertz:
        return False
    started = now - uptime + ticks / hertz
    return started <= changed
