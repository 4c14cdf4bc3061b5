"""The demo bundle, built once per session from this machine's apt sources, checked with real tools.

The packages are cached in /var/cache/gpurun/debs, so only the first run on a machine downloads.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from gpurun.bundle.archs import deb_arch, local_arch
from gpurun.bundle.manifest import (
    KIND_TOOLKIT_INDEX,
    Manifest,
    load_manifest,
    sha256_file,
    verify_bundle,
)
from gpurun.demo import DEMO_BUILDER, build_demo_bundle, build_standin_debs
from gpurun.demo.apt_index import parse_control
from gpurun.demo.debian import DEFAULT_CACHE_DIR, deb_field, upstream_release
from gpurun.demo.docker_tarball import DOCKER_BINARY_SOURCES
from gpurun.demo.standin_rpm import build_standin_rpms
from gpurun.demo.standin_scripts import DRIVER_NOT_LOADED, STANDIN_PROGRAMS
from gpurun.demo.toolkit_facts import INSTALL_ORDER, TOOLKIT_PACKAGES
from gpurun.errors import BundleError

NVIDIA_APT_INDEX = Path(__file__).resolve().parent / "data/nvidia-repo/stable/deb"
DOCKER_MEMBERS = [f"docker/{name}" for name, _, _ in DOCKER_BINARY_SOURCES]
COMPARED_FIELDS = ("Depends", "Breaks", "Replaces", "Section", "Multi-Arch", "Source")

pytestmark = pytest.mark.skipif(
    shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None,
    reason="the demo bundle builder needs apt-get and dpkg-deb (a Debian-based machine)",
)


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    bundle_dir = tmp_path_factory.mktemp("demo") / "bundle"
    build_demo_bundle(bundle_dir, cache_dir=DEFAULT_CACHE_DIR)
    return bundle_dir


@pytest.fixture(scope="session")
def demo(demo_dir: Path) -> Manifest:
    return load_manifest(demo_dir)


@pytest.fixture(scope="session")
def docker_dir(demo_dir: Path, demo: Manifest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Docker tarball, unpacked."""
    target = tmp_path_factory.mktemp("docker-unpacked")
    with tarfile.open(demo_dir / demo.docker_tarball().path) as tar:
        tar.extractall(target, filter="data")
    return target / "docker"


@pytest.fixture(scope="session")
def standin_root(demo_dir: Path, demo: Manifest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A scratch dpkg root with the four stand-in packages installed."""
    root = _scratch_dpkg_root(tmp_path_factory.mktemp("dpkg-root"))
    debs = [str(demo_dir / entry.path) for entry in demo.toolkit_packages()]
    result = _dpkg_install(root, debs)
    assert result.returncode == 0, result.stderr
    return root


def _scratch_dpkg_root(root: Path) -> Path:
    """Make an empty dpkg database that lists this machine's libc6, libcap2 and libseccomp2."""
    if shutil.which("dpkg") is None:
        pytest.skip("dpkg is not installed")
    status = subprocess.run(["dpkg-query", "--status", "libc6", "libcap2", "libseccomp2"],
                            capture_output=True, text=True, check=False)
    if status.returncode != 0:
        pytest.skip(f"this machine lacks a system library package: {status.stderr.strip()}")
    (root / "var/lib/dpkg/info").mkdir(parents=True)
    (root / "var/lib/dpkg/updates").mkdir()
    (root / "var/lib/dpkg/status").write_text(status.stdout)
    return root


def _dpkg_install(root: Path, debs: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["dpkg", f"--root={root}", "--force-not-root", "--force-script-chrootless",
         "--install", *debs],
        capture_output=True, text=True, check=False,
    )


def _index_entries(arch: str) -> dict[str, dict[str, str]]:
    index = NVIDIA_APT_INDEX / arch / "Packages"
    if not index.is_file():
        pytest.skip(f"NVIDIA's apt index for {arch} is not at {index}")
    return {entry["Package"]: entry for entry in parse_control(index.read_text())
            if entry.get("Version") == "1.17.2-1"}


# --- manifest ---

def test_demo_manifest_facts(demo: Manifest, demo_dir: Path) -> None:
    docker_deb = next(DEFAULT_CACHE_DIR.glob("docker.io_*.deb"))
    assert demo.builder == DEMO_BUILDER
    assert demo.arch == local_arch()
    assert demo.package_format == "deb"
    assert demo.docker_version == upstream_release(deb_field(docker_deb, "Version"))
    assert demo.toolkit_version == "1.17.2"
    assert demo.toolkit_install_order == list(INSTALL_ORDER)
    assert demo.docker_tarball().path == f"docker/docker-{demo.docker_version}.tgz"
    assert verify_bundle(demo_dir) == []


def test_demo_stand_in_flags(demo: Manifest) -> None:
    assert [entry.stand_in for entry in demo.toolkit_packages()] == [True] * 4
    assert demo.docker_tarball().stand_in is False
    image = demo.test_image()
    assert image is not None
    assert image.stand_in is False
    assert image.image == "gpurun/busybox:demo"


def test_demo_second_build_is_cache_hit(demo_dir: Path, demo: Manifest) -> None:
    manifest_before = (demo_dir / "manifest.json").stat()
    folder_inode = demo_dir.stat().st_ino
    again = build_demo_bundle(demo_dir, cache_dir=DEFAULT_CACHE_DIR)
    assert again == demo
    assert demo_dir.stat().st_ino == folder_inode
    assert (demo_dir / "manifest.json").stat().st_mtime_ns == manifest_before.st_mtime_ns


def test_demo_rebuilds_corrupted_copy(demo_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "bundle"
    shutil.copytree(demo_dir, copy)
    (copy / "images/busybox.tar").write_bytes(b"broken")
    build_demo_bundle(copy, cache_dir=DEFAULT_CACHE_DIR)
    assert verify_bundle(copy) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]


def test_demo_rejects_foreign_folder(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("keep me")
    with pytest.raises(BundleError, match="not empty and contains no manifest.json"):
        build_demo_bundle(tmp_path, cache_dir=DEFAULT_CACHE_DIR)
    assert (tmp_path / "notes.txt").read_text() == "keep me"


def test_demo_rejects_other_arch(tmp_path: Path) -> None:
    other = "aarch64" if local_arch() == "x86_64" else "x86_64"
    with pytest.raises(BundleError) as caught:
        build_demo_bundle(tmp_path / "bundle", arch=other)
    assert f"({local_arch()})" in str(caught.value)
    assert f"but {other} was requested" in str(caught.value)
    assert not (tmp_path / "bundle").exists()


# --- Docker tarball ---

def test_tarball_members_modes_owners(demo_dir: Path, demo: Manifest) -> None:
    with tarfile.open(demo_dir / demo.docker_tarball().path) as tar:
        members = tar.getmembers()
    assert sorted(member.name for member in members) == sorted(DOCKER_MEMBERS)
    for member in members:
        assert member.isreg(), member.name
        assert member.mode == 0o755, member.name
        assert (member.uid, member.gid) == (0, 0), member.name
        assert (member.uname, member.gname) == ("root", "root"), member.name


def test_tarball_binaries_match_manifest(docker_dir: Path, demo: Manifest) -> None:
    assert sorted(demo.docker_binaries) == sorted(name for name, _, _ in DOCKER_BINARY_SOURCES)
    for name, sha256 in demo.docker_binaries.items():
        assert sha256_file(docker_dir / name) == sha256, name


@pytest.mark.parametrize(("binary", "argument", "expected"), [
    ("dockerd", "--version", "Docker version 20.10.24"),
    ("docker", "--version", "Docker version 20.10.24"),
    ("containerd", "--version", "containerd"),
    ("ctr", "--version", "ctr"),
    ("runc", "--version", "runc version"),
    ("docker-init", "--version", "tini version"),
])
def test_tarball_binary_runs(docker_dir: Path, binary: str, argument: str, expected: str) -> None:
    result = subprocess.run([str(docker_dir / binary), argument], capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert expected in result.stdout


# --- stand-in toolkit packages ---

@pytest.mark.parametrize("name", INSTALL_ORDER)
def test_standin_deb_control_fields(demo_dir: Path, demo: Manifest, name: str) -> None:
    entry = next(e for e in demo.toolkit_packages() if e.name == name)
    deb = demo_dir / entry.path
    info = subprocess.run(["dpkg-deb", "--info", str(deb)], capture_output=True, text=True,
                          check=True).stdout
    control = parse_control(subprocess.run(["dpkg-deb", "--field", str(deb)],
                                           capture_output=True, text=True, check=True).stdout)[0]
    facts = TOOLKIT_PACKAGES[name]
    assert control["Package"] == name
    assert control["Version"] == "1.17.2-1"
    assert control["Architecture"] == deb_arch(local_arch())
    expected_depends = facts.depends[deb_arch(local_arch())].format(version="1.17.2-1",
                                                                     release="1.17.2")
    assert control.get("Depends", "") == expected_depends
    assert "gpurun stand-in for hosts without GPUs" in " ".join(info.split())
    assert "contains no NVIDIA code" in " ".join(info.split())


@pytest.mark.parametrize("arch", ["amd64", "arm64"])
def test_standin_facts_match_nvidia_index(arch: str) -> None:
    real = _index_entries(arch)
    assert sorted(real) == sorted([*INSTALL_ORDER, "libnvidia-container-dev",
                                   "libnvidia-container1-dbg"])
    for name in INSTALL_ORDER:
        facts = TOOLKIT_PACKAGES[name]
        ours = {
            "Depends": facts.depends[arch].format(version="1.17.2-1", release="1.17.2"),
            "Breaks": facts.breaks or "",
            "Replaces": facts.replaces or "",
            "Section": facts.section,
            "Multi-Arch": facts.multi_arch or "",
            "Source": facts.source or "",
        }
        for field in COMPARED_FIELDS:
            assert ours[field] == real[name].get(field, ""), f"{name} {field}"
        assert real[name]["Description"].startswith(facts.summary), name


def test_built_depends_match_nvidia_index(demo_dir: Path, demo: Manifest) -> None:
    real = _index_entries(deb_arch(local_arch()))
    for entry in demo.toolkit_packages():
        built = parse_control(subprocess.run(["dpkg-deb", "--field", str(demo_dir / entry.path)],
                                             capture_output=True, text=True,
                                             check=True).stdout)[0]
        for field in ("Depends", "Breaks", "Replaces"):
            assert built.get(field, "") == real[entry.name].get(field, ""), \
                f"{entry.name} {field}"


def test_standin_set_installs_in_one_run(standin_root: Path) -> None:
    listing = subprocess.run(["dpkg-query", f"--admindir={standin_root}/var/lib/dpkg", "--show",
                              "--showformat=${Package} ${Version} ${db:Status-Abbrev}\n",
                              *INSTALL_ORDER], capture_output=True, text=True, check=True).stdout
    assert sorted(listing.splitlines()) == sorted(f"{name} 1.17.2-1 ii " for name in INSTALL_ORDER)
    for program in STANDIN_PROGRAMS:
        path = standin_root / "usr/bin" / program
        assert path.stat().st_mode & 0o777 == 0o755, program


def test_toolkit_alone_fails_dependencies(tmp_path: Path) -> None:
    root = _scratch_dpkg_root(tmp_path / "root")
    [deb] = build_standin_debs(tmp_path / "debs", names=["nvidia-container-toolkit"],
                               arch=local_arch())
    result = _dpkg_install(root, [str(deb)])
    assert result.returncode != 0
    assert "nvidia-container-toolkit depends on nvidia-container-toolkit-base (= 1.17.2-1)" \
        in result.stderr
    assert "libnvidia-container-tools (>= 1.17.2-1)" in result.stderr


def test_older_library_fails_dependencies(tmp_path: Path) -> None:
    root = _scratch_dpkg_root(tmp_path / "root")
    old = build_standin_debs(tmp_path / "old", version="1.16.0-1",
                             names=["libnvidia-container1"], arch=local_arch())
    new = build_standin_debs(tmp_path / "new", names=INSTALL_ORDER[1:], arch=local_arch())
    result = _dpkg_install(root, [str(path) for path in [*old, *new]])
    assert result.returncode != 0
    assert "libnvidia-container-tools depends on libnvidia-container1 (>= 1.17.2)" in result.stderr
    assert "Version of libnvidia-container1:" in result.stderr
    assert "1.16.0-1" in result.stderr


def test_depends_override_and_names(tmp_path: Path) -> None:
    debs = build_standin_debs(
        tmp_path, names=["nvidia-container-toolkit", "libnvidia-container1"], arch="x86-64",
        depends_override={"nvidia-container-toolkit": "libnvidia-container1 (= 1.0.0-1)",
                          "libnvidia-container1": ""},
    )
    assert [path.name for path in debs] == ["libnvidia-container1_1.17.2-1_amd64.deb",
                                            "nvidia-container-toolkit_1.17.2-1_amd64.deb"]
    assert deb_field(debs[1], "Depends") == "libnvidia-container1 (= 1.0.0-1)"
    fields = parse_control(subprocess.run(["dpkg-deb", "--field", str(debs[0])],
                                          capture_output=True, text=True, check=True).stdout)[0]
    assert "Depends" not in fields


@pytest.mark.parametrize(("arguments", "fragment"), [
    ({"names": ["nvidia-docker2"]}, "'nvidia-docker2'"),
    ({"version": "1.17.2 -1"}, "'1.17.2 -1'"),
    ({"version": "'; rm -rf /"}, "\"'; rm -rf /\""),
    ({"arch": "ppc64le"}, "'ppc64le'"),
    ({"depends_override": {"nvidia-docker2": ""}}, "nvidia-docker2"),
])
def test_standin_debs_reject_bad_input(tmp_path: Path, arguments: dict, fragment: str) -> None:
    with pytest.raises(BundleError) as caught:
        build_standin_debs(tmp_path, **arguments)
    assert fragment in str(caught.value)
    assert list(tmp_path.iterdir()) == []


def test_standin_debs_are_reproducible(tmp_path: Path) -> None:
    first = build_standin_debs(tmp_path / "first")
    second = build_standin_debs(tmp_path / "second")
    assert [sha256_file(path) for path in first] == [sha256_file(path) for path in second]


def test_packages_index_lists_files(demo_dir: Path, demo: Manifest) -> None:
    [index_entry] = demo.files_of_kind(KIND_TOOLKIT_INDEX)
    index_path = demo_dir / index_entry.path
    entries = {entry["Package"]: entry for entry in parse_control(index_path.read_text())}
    assert sorted(entries) == sorted(INSTALL_ORDER)
    for package in demo.toolkit_packages():
        entry = entries[package.name]
        assert entry["Filename"] == f"./{Path(package.path).name}"
        assert entry["Size"] == str(package.size)
        assert entry["SHA256"] == package.sha256
        assert entry["Version"] == "1.17.2-1"


def test_packages_index_agrees_with_dpkg_scanpackages(demo_dir: Path, demo: Manifest) -> None:
    if shutil.which("dpkg-scanpackages") is None:
        pytest.skip("dpkg-scanpackages (package dpkg-dev) is not installed")
    repo = demo_dir / "toolkit/deb"
    scanned = subprocess.run(["dpkg-scanpackages", "--multiversion", "."], cwd=repo,
                             capture_output=True, text=True, check=True).stdout
    ours = {entry["Package"]: entry for entry in parse_control((repo / "Packages").read_text())}
    for theirs in parse_control(scanned):
        mine = ours[theirs["Package"]]
        for field in ("Version", "Architecture", "Depends", "Filename", "Size", "SHA256",
                      "Description"):
            assert mine.get(field) == theirs.get(field), f"{theirs['Package']} {field}"


# --- stand-in programs ---

def _run_standin(root: Path, program: str, *arguments: str, log_dir: Path,
                 path: str = "/usr/bin:/bin") -> subprocess.CompletedProcess[str]:
    environment = {"PATH": path, "GPURUN_STANDIN_LOG_DIR": str(log_dir)}
    return subprocess.run([str(root / "usr/bin" / program), *arguments], env=environment,
                          capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.parametrize("program", STANDIN_PROGRAMS)
def test_standin_version_and_trace(standin_root: Path, tmp_path: Path, program: str) -> None:
    result = _run_standin(standin_root, program, "--version", log_dir=tmp_path / "log")
    assert result.returncode == 0, result.stderr
    assert "1.17.2" in result.stdout.splitlines()[0]
    assert "gpurun stand-in" in result.stdout
    [line] = (tmp_path / "log" / f"{program}.log").read_text().splitlines()
    assert f"/usr/bin/{program} --version" in line
    assert " pid=" in line


@pytest.mark.parametrize("program", STANDIN_PROGRAMS)
def test_standin_scripts_parse_as_posix_sh(standin_root: Path, program: str) -> None:
    shells = [shell for shell in ("dash", "busybox") if shutil.which(shell)]
    if not shells:
        pytest.skip("neither dash nor busybox is installed")
    for shell in shells:
        argv = [shell, "sh", "-n"] if shell == "busybox" else [shell, "-n"]
        result = subprocess.run([*argv, str(standin_root / "usr/bin" / program)],
                                capture_output=True, text=True, check=False)
        assert result.returncode == 0, f"{shell}: {result.stderr}"


def test_cli_info_reports_no_driver(standin_root: Path, tmp_path: Path) -> None:
    result = _run_standin(standin_root, "nvidia-container-cli", "info", log_dir=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip() == DRIVER_NOT_LOADED
    assert DRIVER_NOT_LOADED == ("nvidia-container-cli: initialization error: "
                                 "nvml error: driver not loaded")


def test_hook_prestart_reports_no_driver(standin_root: Path, tmp_path: Path) -> None:
    result = _run_standin(standin_root, "nvidia-container-runtime-hook", "prestart",
                          log_dir=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip() == DRIVER_NOT_LOADED


def test_ctk_rejects_unimplemented(standin_root: Path, tmp_path: Path) -> None:
    result = _run_standin(standin_root, "nvidia-ctk", "runtime", "configure", log_dir=tmp_path)
    assert result.returncode == 1
    assert "'runtime configure' is not implemented" in result.stderr


def test_standin_log_failure_is_ignored(standin_root: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "file-not-folder"
    blocker.write_text("")
    result = _run_standin(standin_root, "nvidia-ctk", "--version", log_dir=blocker / "log")
    assert result.returncode == 0
    assert result.stderr == ""


def test_runtime_hands_call_to_runc(standin_root: Path, docker_dir: Path,
                                    tmp_path: Path) -> None:
    state = tmp_path / "runc-state"
    result = _run_standin(standin_root, "nvidia-container-runtime", "--root", str(state), "list",
                          log_dir=tmp_path / "log", path=f"{docker_dir}:/usr/bin:/bin")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[:3] == ["ID", "PID", "STATUS"]
    [line] = (tmp_path / "log/nvidia-container-runtime.log").read_text().splitlines()
    assert f"--root {state} list" in line


def test_runtime_version_includes_runc(standin_root: Path, docker_dir: Path,
                                       tmp_path: Path) -> None:
    result = _run_standin(standin_root, "nvidia-container-runtime", "--version",
                          log_dir=tmp_path, path=f"{docker_dir}:/usr/bin:/bin")
    lines = result.stdout.splitlines()
    assert lines[0] == "NVIDIA Container Runtime version 1.17.2"
    assert "commit: gpurun stand-in, no NVIDIA code" in lines
    assert any(line.startswith("runc version 1.") for line in lines)


def test_runtime_without_runc_fails(standin_root: Path, tmp_path: Path) -> None:
    if any(Path(folder, "runc").exists() for folder in ("/usr/bin", "/usr/local/bin", "/usr/sbin")):
        pytest.skip("this machine has runc in a folder the stand-in searches")
    result = _run_standin(standin_root, "nvidia-container-runtime", "list", log_dir=tmp_path,
                          path=str(tmp_path))
    assert result.returncode == 1
    assert "runc not found on PATH or in /usr/bin, /usr/local/bin, /usr/sbin" in result.stderr


# --- test image ---

def _image_members(demo_dir: Path, demo: Manifest) -> dict[str, bytes]:
    image = demo.test_image()
    assert image is not None
    with tarfile.open(demo_dir / image.path) as tar:
        return {member.name: tar.extractfile(member).read()  # type: ignore[union-attr]
                for member in tar.getmembers() if member.isreg()}


def test_image_archive_layout(demo_dir: Path, demo: Manifest) -> None:
    members = _image_members(demo_dir, demo)
    [entry] = json.loads(members["manifest.json"])
    assert entry["RepoTags"] == ["gpurun/busybox:demo"]
    config_bytes = members[entry["Config"]]
    assert entry["Config"] == hashlib.sha256(config_bytes).hexdigest() + ".json"
    config = json.loads(config_bytes)
    assert config["os"] == "linux"
    assert config["architecture"] == deb_arch(local_arch())
    [layer_path] = entry["Layers"]
    layer = members[layer_path]
    assert config["rootfs"]["diff_ids"] == [f"sha256:{hashlib.sha256(layer).hexdigest()}"]
    repositories = json.loads(members["repositories"])
    assert repositories == {"gpurun/busybox": {"demo": layer_path.split("/")[0]}}


def test_image_layer_contains_busybox(demo_dir: Path, demo: Manifest, tmp_path: Path) -> None:
    members = _image_members(demo_dir, demo)
    [entry] = json.loads(members["manifest.json"])
    with tarfile.open(fileobj=io.BytesIO(members[entry["Layers"][0]])) as layer:
        by_name = {member.name: member for member in layer.getmembers()}
        busybox = by_name["bin/busybox"]
        assert busybox.isreg()
        assert busybox.mode == 0o755
        for link in ("sh", "echo", "cat", "true", "ls"):
            assert by_name[f"bin/{link}"].issym()
            assert by_name[f"bin/{link}"].linkname == "busybox"
        for folder in ("dev", "proc", "sys", "etc", "tmp"):
            assert by_name[folder].isdir(), folder
        assert by_name["tmp"].mode == 0o1777
        binary = layer.extractfile(busybox).read()  # type: ignore[union-attr]
    program = tmp_path / "busybox"
    program.write_bytes(binary)
    program.chmod(0o755)
    result = subprocess.run([str(program), "echo", "hello"], capture_output=True, text=True,
                            check=False)
    assert result.stdout == "hello\n"


def test_image_reads_with_skopeo(demo_dir: Path, demo: Manifest) -> None:
    if shutil.which("skopeo") is None:
        pytest.skip("skopeo is not installed")
    image = demo.test_image()
    assert image is not None
    result = subprocess.run(["skopeo", "inspect", f"docker-archive:{demo_dir / image.path}"],
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["Architecture"] == deb_arch(local_arch())


def test_image_runs_through_standin_runtime(demo_dir: Path, demo: Manifest, standin_root: Path,
                                            docker_dir: Path, tmp_path: Path) -> None:
    """Unpack the image with skopeo and umoci, then run it with the stand-in runtime and runc."""
    missing = [tool for tool in ("skopeo", "umoci") if shutil.which(tool) is None]
    if missing or os.geteuid() != 0:
        pytest.skip(f"needs root, skopeo and umoci (missing: {missing or 'root'})")
    image = demo.test_image()
    assert image is not None
    subprocess.run(["skopeo", "copy", f"docker-archive:{demo_dir / image.path}",
                    f"oci:{tmp_path / 'oci'}:demo"], check=True, capture_output=True)
    subprocess.run(["umoci", "unpack", "--image", f"{tmp_path / 'oci'}:demo",
                    str(tmp_path / "container")], check=True, capture_output=True)
    config_path = tmp_path / "container/config.json"
    config = json.loads(config_path.read_text())
    config["process"]["args"] = ["sh", "-c", "echo hello from $(cat /etc/group)"]
    config["process"]["terminal"] = False
    config_path.write_text(json.dumps(config))

    result = _run_standin(standin_root, "nvidia-container-runtime",
                          "--root", str(tmp_path / "state"), "run",
                          "--bundle", str(tmp_path / "container"), f"gpurun-test-{os.getpid()}",
                          log_dir=tmp_path / "log", path=f"{docker_dir}:/usr/bin:/bin")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "hello from root:x:0:\n"


# --- rpm stand-ins ---

def test_standin_rpms_require_the_chain(tmp_path: Path) -> None:
    if shutil.which("rpmbuild") is None or shutil.which("rpm") is None:
        pytest.skip("rpmbuild and rpm (Debian package rpm) are not installed")
    rpms = build_standin_rpms(tmp_path)
    assert [path.name for path in rpms] == [f"{name}-1.17.2-1.x86_64.rpm" for name in INSTALL_ORDER]

    def requires(path: Path) -> set[str]:
        output = subprocess.run(["rpm", "-qp", "--requires", str(path)], capture_output=True,
                                text=True, check=True).stdout
        return {line for line in output.splitlines() if not line.startswith("rpmlib(")}

    library, tools, base, toolkit = rpms
    assert requires(library) == {"/bin/sh"}
    assert requires(tools) == {"/bin/sh", "libnvidia-container1 >= 1.17.2"}
    assert requires(base) == {"/bin/sh"}
    assert requires(toolkit) == {"/bin/sh", "nvidia-container-toolkit-base = 1.17.2-1",
                                 "libnvidia-container-tools >= 1.17.2-1",
                                 "libnvidia-container-tools < 2.0.0"}
    files = subprocess.run(["rpm", "-qpl", str(base)], capture_output=True, text=True,
                           check=True).stdout.split()
    assert "/usr/bin/nvidia-container-runtime" in files
    assert "/usr/bin/nvidia-ctk" in files
