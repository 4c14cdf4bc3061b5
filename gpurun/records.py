"""The outputs manifest of a run, and the check that finds records edited after the run.

Each run folder (outputs/<host>/<run-id>/) gets a SHA256SUMS file in the format `sha256sum`
writes, listing every notebook and run.json in it. Its last line names the previous run of the
same host by the SHA-256 of that run's SHA256SUMS, so editing an old record and its manifest
together still shows: the next run's manifest no longer matches. `sha256sum -c SHA256SUMS`,
run inside the folder, checks the same without gpurun.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from gpurun.errors import GpurunError

MANIFEST_NAME = "SHA256SUMS"

# The manifest leaves out the HTML that the report renders beside the notebooks after the
# run, and hidden files (the runner writes run.json through a hidden temporary file).
DERIVED_SUFFIXES = (".html",)


@dataclass(frozen=True)
class RecordProblem:
    """One file of a run folder that no longer matches what the run wrote."""

    folder: Path
    name: str
    problem: str

    def describe(self, outputs: Path) -> str:
        """Return 'host/run-id/file: problem', the path relative to outputs where it can be."""
        folder = self.folder.relative_to(outputs) if self.folder.is_relative_to(outputs) else (
            self.folder)
        return f"{folder / self.name}: {self.problem}"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def record_files(folder: Path) -> list[Path]:
    """Return the files of a run folder that its manifest covers, sorted by name."""
    return sorted(
        path for path in folder.iterdir()
        if path.is_file() and path.name != MANIFEST_NAME and not path.name.startswith(".")
        and not path.name.endswith(DERIVED_SUFFIXES)
    )


def previous_manifest(folder: Path) -> Path | None:
    """Return the newest manifest of another run of the same host, or None for the first run."""
    others = [
        other / MANIFEST_NAME for other in folder.parent.iterdir()
        if other != folder and (other / MANIFEST_NAME).is_file()
    ]
    return max(others, key=lambda path: path.stat().st_mtime_ns, default=None)


def write_manifest(folder: Path) -> Path:
    """Write SHA256SUMS for a finished run folder, chained to the host's previous run."""
    lines = [f"{file_sha256(path)}  {path.name}\n" for path in record_files(folder)]
    previous = previous_manifest(folder)
    if previous is not None:
        lines.append(f"{file_sha256(previous)}  ../{previous.parent.name}/{MANIFEST_NAME}\n")
    manifest = folder / MANIFEST_NAME
    temporary = folder / f".{MANIFEST_NAME}.tmp"
    temporary.write_text("".join(lines))
    temporary.replace(manifest)
    return manifest


def read_manifest(manifest: Path) -> dict[str, str]:
    """Return the name-to-SHA-256 entries of a manifest, names relative to its folder."""
    entries = {}
    for line in manifest.read_text().splitlines():
        digest, separator, name = line.partition("  ")
        if separator and len(digest) == 64:
            entries[name] = digest
    return entries


def check_run_folder(folder: Path) -> list[RecordProblem]:
    """Compare one run folder with its manifest; return every file that differs."""
    manifest = folder / MANIFEST_NAME
    if not manifest.is_file():
        return [RecordProblem(folder, MANIFEST_NAME, "missing: the run did not finish, or its "
                                                     "manifest was removed")]
    listed = read_manifest(manifest)
    problems = []
    for name, digest in listed.items():
        path = folder / name
        if not path.is_file():
            what = "the previous run's manifest" if name.startswith("../") else "listed file"
            problems.append(RecordProblem(folder, name, f"{what} is missing"))
        elif file_sha256(path) != digest:
            what = ("the previous run's manifest was edited after this run"
                    if name.startswith("../") else "edited after the run")
            problems.append(RecordProblem(folder, name, what))
    for path in record_files(folder):
        if path.name not in listed:
            problems.append(RecordProblem(folder, path.name, "added after the run"))
    return problems


def run_folders(outputs: Path) -> list[Path]:
    """Return every outputs/<host>/<run-id>/ folder that contains a record of a run."""
    folders: set[Path] = set()
    for pattern in ("*/*/run.json", f"*/*/{MANIFEST_NAME}", "*/*/*.ipynb"):
        folders.update(path.parent for path in outputs.glob(pattern))
    return sorted(folders)


def check_outputs(outputs: Path) -> list[RecordProblem]:
    """Check every run folder under outputs against its manifest."""
    if not outputs.is_dir():
        raise GpurunError(
            f"outputs folder {outputs} not found: give the folder that `gpurun run --outputs` "
            f"wrote (default: outputs)"
        )
    problems = []
    for folder in run_folders(outputs):
        problems.extend(check_run_folder(folder))
    return problems
