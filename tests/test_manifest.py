from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from gpurun.bundle.manifest import (
    KIND_DOCKER_STATIC,
    KIND_TEST_IMAGE,
    KIND_TOOLKIT_PACKAGE,
    BundleFile,
    Manifest,
    load_manifest,
    manifest_path,
    require_valid_bundle,
    sha256_file,
    verify_bundle,
    write_manifest,
)
from gpurun.errors import BundleError

SHA_A = "a" * 64
PACKAGE_ORDER = [
    "libnvidia-container1",
    "libnvidia-container-tools",
    "nvidia-container-toolkit-base",
    "nvidia-container-toolkit",
]


def _add_file(bundle: Path, relative: str, content: bytes, kind: str, name: str,
              version: str, arch: str, **extra: object) -> BundleFile:
    path = bundle / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return BundleFile(path=relative, kind=kind, name=name, version=version, arch=arch,
                      size=len(content), sha256=hashlib.sha256(content).hexdigest(),
                      **extra)  # type: ignore[arg-type]


def make_bundle(bundle: Path, *, with_image: bool = True) -> Manifest:
    """Write a small bundle with real files and return its manifest (not yet written)."""
    files = [_add_file(bundle, "docker/docker-20.10.24.tgz", b"docker tarball bytes",
                       KIND_DOCKER_STATIC, "docker", "20.10.24", "x86_64")]
    # Listed in reverse, so toolkit_packages() has to apply the install order itself.
    for name in reversed(PACKAGE_ORDER):
        files.append(_add_file(bundle, f"toolkit/deb/{name}_1.17.2-1_amd64.deb",
                               f"package {name}".encode(), KIND_TOOLKIT_PACKAGE, name,
                               "1.17.2-1", "amd64", stand_in=True))
    if with_image:
        files.append(_add_file(bundle, "images/busybox.tar", b"image archive",
                               KIND_TEST_IMAGE, "gpurun/busybox", "demo", "x86_64",
                               image="gpurun/busybox:demo"))
    return Manifest(
        created="2024-11-20T10:00:00Z",
        builder="gpurun demo 0.1.0",
        arch="x86_64",
        package_format="deb",
        docker_version="20.10.24",
        toolkit_version="1.17.2",
        files=files,
        toolkit_install_order=list(PACKAGE_ORDER),
        docker_binaries={"dockerd": SHA_A, "docker": "b" * 64},
    )


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    bundle_dir = tmp_path / "bundle"
    bundle_dir.mkdir()
    write_manifest(bundle_dir, make_bundle(bundle_dir))
    return bundle_dir


def _rewrite(bundle_dir: Path, change: Callable[[dict], object]) -> None:
    path = manifest_path(bundle_dir)
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


# --- round trip and accessors ---

def test_write_then_load_round_trip(tmp_path: Path) -> None:
    manifest = make_bundle(tmp_path)
    write_manifest(tmp_path, manifest)
    assert load_manifest(tmp_path) == manifest


def test_write_is_stable_and_indented(tmp_path: Path) -> None:
    manifest = make_bundle(tmp_path)
    first = write_manifest(tmp_path, manifest).read_text()
    second = write_manifest(tmp_path, manifest).read_text()
    assert first == second
    assert first.startswith('{\n  "format": 1,\n')
    assert first.endswith("}\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["docker", "images", "manifest.json",
                                                          "toolkit"]
    assert manifest_path(tmp_path).stat().st_mode & 0o777 == 0o644


def test_write_rejects_invalid_manifest(tmp_path: Path) -> None:
    manifest = make_bundle(tmp_path)
    bad_file = BundleFile(path="../outside", kind="other", name="x", version="1", arch="x86_64",
                          size=1, sha256=SHA_A)
    bad = Manifest(**{**manifest.__dict__, "files": [*manifest.files, bad_file]})
    with pytest.raises(BundleError, match=r"'\.\./outside'"):
        write_manifest(tmp_path, bad)
    assert not manifest_path(tmp_path).exists()
    assert not list(tmp_path.glob(".manifest.*"))


def test_toolkit_packages_follow_install_order(bundle: Path) -> None:
    manifest = load_manifest(bundle)
    assert [entry.name for entry in manifest.toolkit_packages()] == PACKAGE_ORDER
    assert all(entry.stand_in for entry in manifest.toolkit_packages())


def test_accessors_find_tarball_and_image(bundle: Path) -> None:
    manifest = load_manifest(bundle)
    assert manifest.docker_tarball().path == "docker/docker-20.10.24.tgz"
    image = manifest.test_image()
    assert image is not None
    assert image.image == "gpurun/busybox:demo"
    assert len(manifest.files_of_kind(KIND_TOOLKIT_PACKAGE)) == 4
    assert manifest.files_of_kind("no-such-kind") == []


def test_bundle_without_image_or_tarball(tmp_path: Path) -> None:
    manifest = make_bundle(tmp_path, with_image=False)
    manifest = Manifest(**{**manifest.__dict__, "files": manifest.files[1:]})
    write_manifest(tmp_path, manifest)
    loaded = load_manifest(tmp_path)
    assert loaded.test_image() is None
    with pytest.raises(BundleError, match="no docker-static file"):
        loaded.docker_tarball()


def test_unknown_keys_are_ignored(bundle: Path) -> None:
    _rewrite(bundle, lambda data: data.update(mirror="https://mirror.example"))
    assert load_manifest(bundle).docker_version == "20.10.24"


def test_arch_alias_is_normalized(bundle: Path) -> None:
    _rewrite(bundle, lambda data: data.update(arch="amd64"))
    assert load_manifest(bundle).arch == "x86_64"


# --- load errors: each message names the file and the value ---

def _container_and_key(data: dict, path: str) -> tuple[Any, Any]:
    """Walk a dotted key path (list indexes as numbers) to the last container and its key."""
    *parents, last = path.split(".")
    container: Any = data
    for part in parents:
        container = container[int(part)] if isinstance(container, list) else container[part]
    return container, int(last) if isinstance(container, list) else last


def _set(path: str, value: object) -> Callable[[dict], None]:
    def change(data: dict) -> None:
        container, key = _container_and_key(data, path)
        container[key] = value
    return change


def _delete(path: str) -> Callable[[dict], None]:
    def change(data: dict) -> None:
        container, key = _container_and_key(data, path)
        del container[key]
    return change


def _append_file(entry: dict) -> Callable[[dict], None]:
    return lambda data: data["files"].append(entry)


_SECOND_TARBALL = {"path": "docker/other.tgz", "kind": "docker-static", "name": "docker",
                   "version": "24.0.0", "arch": "x86_64", "size": 1, "sha256": SHA_A}
_EXTRA_PACKAGE = {"path": "toolkit/deb/nvidia-docker2.deb", "kind": "toolkit-package",
                  "name": "nvidia-docker2", "version": "2.14.0-1", "arch": "all", "size": 1,
                  "sha256": SHA_A}

LOAD_ERRORS = [
    ("format version", _set("format", 2), ["format version 2", "format 1"]),
    ("format missing", _delete("format"), ["format", "missing"]),
    ("format text", _set("format", "1"), ["format", "'1'"]),
    ("package format", _set("package_format", "apk"), ["package_format", "'apk'"]),
    ("bundle arch", _set("arch", "sparc64"), ["arch", "'sparc64'", "aarch64"]),
    ("created missing", _delete("created"), ["created", "missing"]),
    ("builder empty", _set("builder", ""), ["builder", "''"]),
    ("files not list", _set("files", {}), ["files", "{}"]),
    ("file not object", _set("files.0", "docker.tgz"), ["files[0]", "'docker.tgz'"]),
    ("file name missing", _delete("files.2.name"), ["files[2].name", "missing"]),
    ("sha256 short", _set("files.0.sha256", "abc123"), ["files[0].sha256", "'abc123'"]),
    ("sha256 not hex", _set("files.0.sha256", "g" * 64), ["files[0].sha256", "ggg"]),
    ("size negative", _set("files.0.size", -1), ["files[0].size", "-1"]),
    ("size text", _set("files.0.size", "12"), ["files[0].size", "'12'"]),
    ("size bool", _set("files.0.size", True), ["files[0].size", "True"]),
    ("stand_in text", _set("files.1.stand_in", "yes"), ["files[1].stand_in", "'yes'"]),
    ("path parent", _set("files.1.path", "../outside.deb"), ["files[1].path", "'../outside.deb'"]),
    ("path nested parent", _set("files.1.path", "toolkit/../../x"), ["'toolkit/../../x'"]),
    ("path absolute", _set("files.1.path", "/etc/passwd"), ["files[1].path", "'/etc/passwd'"]),
    ("path manifest", _set("files.1.path", "manifest.json"), ["files[1].path", "'manifest.json'"]),
    ("image missing", _delete("files.5.image"), ["files[5].image", "test-image"]),
    ("binary name", _set("docker_binaries", {"../dockerd": SHA_A}), ["'../dockerd'"]),
    ("binary sha", _set("docker_binaries", {"dockerd": "nope"}), ["docker_binaries.dockerd",
                                                                  "'nope'"]),
    ("order not list", _set("toolkit_install_order", "all"), ["toolkit_install_order", "'all'"]),
    ("order unknown name", _set("toolkit_install_order", [*PACKAGE_ORDER, "nvidia-docker2"]),
     ["'nvidia-docker2'", "toolkit_install_order"]),
    ("order repeats", _set("toolkit_install_order", [*PACKAGE_ORDER, PACKAGE_ORDER[0]]),
     ["'libnvidia-container1'", "2 times"]),
    ("package not ordered", _set("toolkit_install_order", PACKAGE_ORDER[1:]),
     ["'libnvidia-container1'", "missing from toolkit_install_order"]),
    ("extra package", _append_file(_EXTRA_PACKAGE), ["'nvidia-docker2'"]),
    ("two tarballs", _append_file(_SECOND_TARBALL), ["docker-static", "docker/other.tgz"]),
    ("duplicate path", _append_file({**_SECOND_TARBALL, "kind": "other",
                                     "path": "images/busybox.tar"}),
     ["'images/busybox.tar'", "twice"]),
    ("top level list", lambda data: data.clear(), ["format", "missing"]),
]


@pytest.mark.parametrize(("change", "expected"), [case[1:] for case in LOAD_ERRORS],
                         ids=[case[0] for case in LOAD_ERRORS])
def test_load_error_names_file_and_value(bundle: Path, change: Callable[[dict], object],
                                         expected: list[str]) -> None:
    _rewrite(bundle, change)
    with pytest.raises(BundleError) as caught:
        load_manifest(bundle)
    message = str(caught.value)
    assert str(manifest_path(bundle)) in message
    for fragment in expected:
        assert fragment in message


def test_load_top_level_array(bundle: Path) -> None:
    manifest_path(bundle).write_text("[1, 2]\n")
    with pytest.raises(BundleError) as caught:
        load_manifest(bundle)
    assert "the top level is [1, 2]" in str(caught.value)
    assert str(manifest_path(bundle)) in str(caught.value)


def test_load_missing_folder(tmp_path: Path) -> None:
    missing = tmp_path / "no-bundle"
    with pytest.raises(BundleError, match=f"bundle folder {missing} not found"):
        load_manifest(missing)


def test_load_missing_manifest(tmp_path: Path) -> None:
    with pytest.raises(BundleError) as caught:
        load_manifest(tmp_path)
    assert f"{tmp_path / 'manifest.json'} not found" in str(caught.value)
    assert "gpurun bundle demo" in str(caught.value)


@pytest.mark.parametrize(("text", "position"), [
    ('{\n  "format": 1\n  "arch": "x86_64"\n}\n', "line 3, column 3"),
    ('{\n  "format": 1,\n}\n', "line 3, column 1"),
    ("", "line 1, column 1"),
])
def test_load_invalid_json_gives_position(bundle: Path, text: str, position: str) -> None:
    manifest_path(bundle).write_text(text)
    with pytest.raises(BundleError) as caught:
        load_manifest(bundle)
    assert str(manifest_path(bundle)) in str(caught.value)
    assert position in str(caught.value)


def test_load_non_utf8(bundle: Path) -> None:
    manifest_path(bundle).write_bytes(b'{"format": 1, "builder": "\xff"}')
    with pytest.raises(BundleError, match="not UTF-8 text .*offset 26"):
        load_manifest(bundle)


# --- verify ---

def test_verify_clean_bundle(bundle: Path) -> None:
    assert verify_bundle(bundle) == []
    assert require_valid_bundle(bundle) == load_manifest(bundle)


def test_verify_allows_unlisted_files(bundle: Path) -> None:
    (bundle / "README.txt").write_text("notes")
    assert verify_bundle(bundle) == []


def test_verify_finds_changed_byte(bundle: Path) -> None:
    path = bundle / "images/busybox.tar"
    content = bytearray(path.read_bytes())
    content[3] ^= 0x01
    path.write_bytes(bytes(content))
    problems = verify_bundle(bundle)
    assert len(problems) == 1
    assert problems[0].startswith("images/busybox.tar: SHA-256 is ")
    assert sha256_file(path) in problems[0]


def test_verify_finds_missing_file(bundle: Path) -> None:
    (bundle / "toolkit/deb/nvidia-container-toolkit_1.17.2-1_amd64.deb").unlink()
    assert verify_bundle(bundle) == [
        "toolkit/deb/nvidia-container-toolkit_1.17.2-1_amd64.deb: missing"
    ]


def test_verify_finds_wrong_size(bundle: Path) -> None:
    with open(bundle / "docker/docker-20.10.24.tgz", "ab") as handle:
        handle.write(b"!")
    assert verify_bundle(bundle) == [
        "docker/docker-20.10.24.tgz: size is 21 bytes, the manifest lists 20"
    ]


def test_verify_finds_folder_in_place_of_file(bundle: Path) -> None:
    (bundle / "images/busybox.tar").unlink()
    (bundle / "images/busybox.tar").mkdir()
    assert verify_bundle(bundle) == ["images/busybox.tar: is not a regular file"]


def test_verify_finds_symlink_out_of_bundle(bundle: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside.tar"
    target = bundle / "images/busybox.tar"
    outside.write_bytes(target.read_bytes())
    target.unlink()
    target.symlink_to(outside)
    problems = verify_bundle(bundle)
    assert len(problems) == 1
    assert f"resolves to {outside}, outside the bundle folder" in problems[0]


def test_verify_hashes_large_file(tmp_path: Path) -> None:
    manifest = make_bundle(tmp_path)
    big = tmp_path / "docker/docker-20.10.24.tgz"
    content = bytes(range(256)) * (5 * 1024 * 16 + 3)  # about 21 MB, not a chunk multiple
    big.write_bytes(content)
    entry = BundleFile(path="docker/docker-20.10.24.tgz", kind=KIND_DOCKER_STATIC,
                       name="docker", version="20.10.24", arch="x86_64", size=len(content),
                       sha256=hashlib.sha256(content).hexdigest())
    write_manifest(tmp_path, Manifest(**{**manifest.__dict__,
                                         "files": [entry, *manifest.files[1:]]}))
    assert verify_bundle(tmp_path) == []


def test_require_valid_lists_every_problem(bundle: Path) -> None:
    (bundle / "images/busybox.tar").unlink()
    (bundle / "docker/docker-20.10.24.tgz").write_bytes(b"x")
    with pytest.raises(BundleError) as caught:
        require_valid_bundle(bundle)
    message = str(caught.value)
    assert "2 problem(s)" in message
    assert "  - docker/docker-20.10.24.tgz: size is 1 bytes, the manifest lists 20" in message
    assert "  - images/busybox.tar: missing" in message
    assert f"gpurun bundle verify {bundle}" in message
    assert "gpurun bundle demo" in message


def test_load_does_not_change_data(bundle: Path) -> None:
    before = json.loads(manifest_path(bundle).read_text())
    manifest = load_manifest(bundle)
    assert manifest.to_json() == copy.deepcopy(before)
