"""Find the Debian mirror that apt on the control node already uses."""

from __future__ import annotations

from pathlib import Path

from gpurun.errors import SandboxError

MIRROR_ENV = "GPURUN_SANDBOX_MIRROR"
APT_SOURCES = Path("/etc/apt/sources.list")
APT_SOURCES_DIR = Path("/etc/apt/sources.list.d")


def _one_line_mirrors(text: str, suite: str) -> list[str]:
    # Format: deb [options] URI SUITE COMPONENT...
    mirrors = []
    for line in text.splitlines():
        words = line.split("#", 1)[0].split()
        if not words or words[0] != "deb":
            continue
        words = words[1:]
        if words and words[0].startswith("["):
            while words and not words[0].endswith("]"):
                words = words[1:]
            words = words[1:]
        if len(words) >= 3 and words[1] == suite and "main" in words[2:]:
            mirrors.append(words[0])
    return mirrors


def _deb822_mirrors(text: str, suite: str) -> list[str]:
    # Format: stanzas of "Field: value" lines separated by blank lines.
    mirrors = []
    for stanza in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            if line.startswith("#") or ":" not in line or line[:1].isspace():
                continue
            key, value = line.split(":", 1)
            fields[key.strip().lower()] = value.strip()
        if (
            "deb" in fields.get("types", "").split()
            and suite in fields.get("suites", "").split()
            and "main" in fields.get("components", "").split()
        ):
            mirrors.extend(fields.get("uris", "").split())
    return mirrors


def find_debian_mirror(suite: str, environ: dict[str, str]) -> str:
    """Return the mirror URI for `suite` main: $GPURUN_SANDBOX_MIRROR, else apt's first match."""
    if environ.get(MIRROR_ENV):
        return environ[MIRROR_ENV]

    files = [APT_SOURCES] + sorted(APT_SOURCES_DIR.glob("*.list"))
    files += sorted(APT_SOURCES_DIR.glob("*.sources"))
    for path in files:
        if not path.is_file():
            continue
        text = path.read_text(errors="replace")
        if path.suffix == ".sources":
            mirrors = _deb822_mirrors(text, suite)
        else:
            mirrors = _one_line_mirrors(text, suite)
        if mirrors:
            return mirrors[0]

    raise SandboxError(
        f"no Debian mirror for suite {suite!r} (component main) found in {APT_SOURCES} "
        f"or {APT_SOURCES_DIR}. Set {MIRROR_ENV} to the mirror's URI, "
        f"for example a local mirror of the Debian archive"
    )
