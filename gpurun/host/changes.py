"""What a run changed on a host, in the form the record and rollback read."""

from __future__ import annotations

import difflib
import json
import time
from dataclasses import asdict, dataclass

# Diffs longer than this are cut in the record; the backup on the host keeps the whole file.
MAX_DIFF_LINES = 400


@dataclass
class FileChange:
    """One file a run created, modified or removed, with its backup on the host."""

    path: str
    action: str
    sha256_before: str | None
    sha256_after: str | None
    backup: str | None
    diff: str = ""
    version_before: str | None = None
    version_after: str | None = None


def unified_diff(path: str, before: str | None, after: str | None) -> str:
    """Return a unified diff of a text file, or a note where the content is not text."""
    old = (before or "").splitlines(keepends=True)
    new = (after or "").splitlines(keepends=True)
    lines = list(difflib.unified_diff(
        old, new,
        fromfile="/dev/null" if before is None else f"a{path}",
        tofile="/dev/null" if after is None else f"b{path}",
    ))
    if len(lines) > MAX_DIFF_LINES:
        cut = len(lines) - MAX_DIFF_LINES
        lines = lines[:MAX_DIFF_LINES] + [f"... {cut} more diff lines not shown\n"]
    return "".join(lines)


def change_journal_line(change: FileChange) -> str:
    """Return the change as one JSON line, without its diff, for the journal on the host."""
    entry = asdict(change)
    entry.pop("diff")
    entry["time"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return json.dumps(entry, sort_keys=True) + "\n"
