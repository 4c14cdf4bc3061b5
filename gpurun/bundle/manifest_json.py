"""Parsing and validating the JSON of a bundle manifest.

Format 1 readers ignore keys they do not know, so a writer may add keys without a new version.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from gpurun.bundle.archs import normalize_arch
from gpurun.bundle.model import (
    FORMAT_VERSION,
    KIND_DOCKER_STATIC,
    KIND_TEST_IMAGE,
    KIND_TOOLKIT_PACKAGE,
    MANIFEST_NAME,
    PACKAGE_FORMATS,
    REBUILD_HINT,
    BundleFile,
    Manifest,
)
from gpurun.errors import BundleError


def manifest_from_json(data: object, *, source: Path | str) -> Manifest:
    """Build a Manifest from parsed JSON, raising BundleError that names `source` and the key."""
    top = _Fields(data, source=str(source), where="")
    version = top.integer("format")
    if version != FORMAT_VERSION:
        raise BundleError(
            f"{source}: bundle format version {version} is not supported, because this gpurun "
            f"reads only format {FORMAT_VERSION}\n  next step: use the gpurun version that "
            "built the bundle, or rebuild the bundle with this one"
        )

    package_format = top.text("package_format")
    if package_format not in PACKAGE_FORMATS:
        raise top.invalid("package_format", package_format, f"expected one of {PACKAGE_FORMATS}")

    manifest = Manifest(
        format=version,
        created=top.text("created"),
        builder=top.text("builder"),
        arch=top.arch("arch"),
        package_format=package_format,
        docker_version=top.text("docker_version"),
        toolkit_version=top.text("toolkit_version"),
        files=[_parse_file(entry) for entry in top.objects("files")],
        toolkit_install_order=top.text_list("toolkit_install_order"),
        docker_binaries=_parse_docker_binaries(top),
        sources=_parse_sources(top),
    )
    _check_consistency(manifest, str(source))
    return manifest


def is_inside_bundle(relative_path: str) -> bool:
    """Return True when a manifest path is relative and has no `..` part, so it stays inside.

    Symbolic links inside the bundle can still point elsewhere, and verify_bundle checks those.
    """
    if not relative_path or "\0" in relative_path or relative_path.startswith("/"):
        return False
    parts = PurePosixPath(relative_path).parts
    return ".." not in parts and relative_path not in (".", MANIFEST_NAME)


def _parse_file(fields: _Fields) -> BundleFile:
    path = fields.text("path")
    if not is_inside_bundle(path):
        raise fields.invalid(
            "path", path, "expected a path relative to the bundle folder, without '..'"
        )

    kind = fields.text("kind")
    image = fields.optional_text("image")
    if kind == KIND_TEST_IMAGE and image is None:
        raise fields.invalid("image", None, "a test-image file needs the image reference")

    return BundleFile(
        path=path,
        kind=kind,
        name=fields.text("name"),
        version=fields.text("version"),
        arch=fields.text("arch"),
        size=fields.integer("size"),
        sha256=fields.sha256("sha256"),
        stand_in=fields.flag("stand_in", default=False),
        image=image,
    )


def _parse_docker_binaries(top: _Fields) -> dict[str, str]:
    binaries = top.child("docker_binaries")
    result: dict[str, str] = {}
    for name in binaries.data:
        if not name or "/" in name or name in (".", ".."):
            raise binaries.invalid(name, name, "expected a plain file name as the key")
        result[name] = binaries.sha256(name)
    return result


def _parse_sources(top: _Fields) -> dict[str, str]:
    """Read the optional `sources` object, a map of strings that older manifests lack."""
    if "sources" not in top.data:
        return {}
    sources = top.child("sources")
    return {key: sources.text(key) for key in sources.data}


def _check_consistency(manifest: Manifest, source: str) -> None:
    """Check the rules across entries that the accessors of Manifest rely on."""

    def fail(problem: str) -> BundleError:
        return BundleError(
            f"invalid bundle manifest {source}: {problem}\n  next step: {REBUILD_HINT}"
        )

    seen_paths: set[str] = set()
    for entry in manifest.files:
        if entry.path in seen_paths:
            raise fail(f"the path {entry.path!r} is listed twice in files")
        seen_paths.add(entry.path)

    for kind in (KIND_DOCKER_STATIC, KIND_TEST_IMAGE):
        paths = [entry.path for entry in manifest.files_of_kind(kind)]
        if len(paths) > 1:
            raise fail(f"files has {len(paths)} entries of kind {kind!r} ({', '.join(paths)}), "
                       "expected at most one")

    packages = [entry.name for entry in manifest.files_of_kind(KIND_TOOLKIT_PACKAGE)]
    order = manifest.toolkit_install_order
    for name in sorted(set(packages)):
        if packages.count(name) > 1:
            raise fail(f"the toolkit package {name!r} is listed {packages.count(name)} times")
    for name in sorted(set(order)):
        if order.count(name) > 1:
            raise fail(f"toolkit_install_order lists {name!r} {order.count(name)} times")
    for name in order:
        if name not in packages:
            raise fail(f"toolkit_install_order names {name!r}, but files has no "
                       f"{KIND_TOOLKIT_PACKAGE} of that name")
    for name in packages:
        if name not in order:
            raise fail(f"the toolkit package {name!r} is missing from toolkit_install_order")


class _Fields:
    """Typed access to one JSON object of a manifest, with errors that name the file and key."""

    def __init__(self, data: object, *, source: str, where: str) -> None:
        self.source = source
        self.where = where
        if not isinstance(data, dict):
            raise self._error(where or "the top level", data, "expected a JSON object")
        self.data: dict[str, object] = data

    def invalid(self, key: str, value: object, expectation: str) -> BundleError:
        return self._error(self._key_path(key), value, expectation)

    def value(self, key: str) -> object:
        if key not in self.data:
            raise BundleError(
                f"invalid bundle manifest {self.source}: the key {self._key_path(key)} is "
                f"missing\n  next step: {REBUILD_HINT}"
            )
        return self.data[key]

    def text(self, key: str) -> str:
        value = self.value(key)
        if not isinstance(value, str) or not value:
            raise self.invalid(key, value, "expected a non-empty string")
        return value

    def optional_text(self, key: str) -> str | None:
        if key not in self.data:
            return None
        return self.text(key)

    def integer(self, key: str) -> int:
        value = self.value(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise self.invalid(key, value, "expected a whole number of at least 0")
        return value

    def flag(self, key: str, *, default: bool) -> bool:
        value = self.data.get(key, default)
        if not isinstance(value, bool):
            raise self.invalid(key, value, "expected true or false")
        return value

    def sha256(self, key: str) -> str:
        value = self.value(key)
        if not isinstance(value, str) or not _is_sha256(value):
            raise self.invalid(key, value, "expected a SHA-256 as 64 hex digits")
        return value.lower()

    def arch(self, key: str) -> str:
        value = self.text(key)
        try:
            return normalize_arch(value)
        except BundleError as error:
            raise self.invalid(key, value, str(error)) from error

    def text_list(self, key: str) -> list[str]:
        value = self.value(key)
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise self.invalid(key, value, "expected a list of strings")
        return list(value)

    def objects(self, key: str) -> list[_Fields]:
        value = self.value(key)
        if not isinstance(value, list):
            raise self.invalid(key, value, "expected a list of objects")
        return [
            _Fields(item, source=self.source, where=f"{self._key_path(key)}[{index}]")
            for index, item in enumerate(value)
        ]

    def child(self, key: str) -> _Fields:
        return _Fields(self.value(key), source=self.source, where=self._key_path(key))

    def _key_path(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key

    def _error(self, key_path: str, value: object, expectation: str) -> BundleError:
        shown = repr(value)
        if len(shown) > 80:
            shown = shown[:77] + "..."
        return BundleError(
            f"invalid bundle manifest {self.source}: {key_path} is {shown}, {expectation}"
            f"\n  next step: {REBUILD_HINT}"
        )


def _is_sha256(value: str) -> bool:
    return len(value) == 64 and all(char in "0123456789abcdefABCDEF" for char in value)
