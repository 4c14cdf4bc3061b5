"""`gpurun bundle build` against stand-in download sites served over HTTP on 127.0.0.1."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from repo_sites import (
    DOCKER_BINARIES,
    Sites,
    SiteServer,
    clearsign,
    docker_tarball_bytes,
    make_apt_repo,
    make_docker_site,
    release_text,
    standin_sites,
)

from gpurun.bundle.archs import deb_arch, local_arch
from gpurun.bundle.build import BuildRequest, build_bundle
from gpurun.bundle.manifest import (
    KIND_DOCKER_STATIC,
    KIND_TEST_IMAGE,
    KIND_TOOLKIT_PACKAGE,
    load_manifest,
    require_valid_bundle,
    sha256_file,
    verify_bundle,
    write_manifest,
)
from gpurun.bundle.model import (
    KIND_INDEX_SIGNATURE,
    KIND_ROOTLESS_EXTRAS,
    KIND_SIGNED_INDEX,
    KIND_SIGNING_KEY,
)
from gpurun.errors import BundleError

pytestmark = pytest.mark.skipif(
    any(shutil.which(tool) is None for tool in ("gpg", "gpgv", "dpkg-deb")),
    reason="bundle build tests need gpg, gpgv and dpkg-deb (Debian packages gnupg, gpgv, dpkg)",
)

DOCKER_VERSION = "27.3.1"
ARCH = local_arch()
MODERN_SET = ["libnvidia-container1", "libnvidia-container-tools",
              "nvidia-container-toolkit-base", "nvidia-container-toolkit"]


@pytest.fixture(scope="module")
def sites(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sites]:
    with standin_sites(tmp_path_factory.mktemp("sites"), ARCH, DOCKER_VERSION) as made:
        yield made


@pytest.fixture()
def servers(sites: Sites) -> Iterator[tuple[SiteServer, SiteServer]]:
    with SiteServer(sites.docker) as docker, SiteServer(sites.nvidia) as nvidia:
        yield docker, nvidia


def request_for(out_dir: Path, servers: tuple[SiteServer, SiteServer], sites: Sites,
                **changes: object) -> BuildRequest:
    docker, nvidia = servers
    request = BuildRequest(out_dir=out_dir, docker_version=DOCKER_VERSION, arch=ARCH,
                           docker_mirror=docker.url, nvidia_mirror=nvidia.url,
                           key_file=sites.key.public_key, progress=False)
    return replace(request, **changes)  # type: ignore[arg-type]


def copied_site(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target


# --- a whole bundle ---------------------------------------------------------------------------

def test_deb_bundle_from_loopback(
    sites: Sites, servers: tuple[SiteServer, SiteServer], tmp_path: Path
) -> None:
    out = tmp_path / "bundle"
    result = build_bundle(request_for(out, servers, sites, rootless_extras=True))
    manifest = load_manifest(out)

    assert manifest.package_format == "deb"
    assert manifest.arch == ARCH
    assert manifest.docker_version == DOCKER_VERSION
    assert manifest.toolkit_version == "1.17.2"
    assert manifest.toolkit_install_order == MODERN_SET
    assert [p.version for p in manifest.toolkit_packages()] == ["1.17.2-1"] * 4
    assert sorted(manifest.docker_binaries) == sorted(DOCKER_BINARIES)
    assert set(manifest.docker_binaries.values()) == {sha256_file(Path("/bin/true"))}
    assert manifest.docker_tarball().path == f"docker/docker-{DOCKER_VERSION}.tgz"
    assert [f.path for f in manifest.files_of_kind(KIND_ROOTLESS_EXTRAS)] == \
        [f"docker/docker-rootless-extras-{DOCKER_VERSION}.tgz"]
    assert [f.path for f in manifest.files_of_kind(KIND_SIGNED_INDEX)] == ["toolkit/deb/InRelease"]
    assert len(manifest.files_of_kind(KIND_SIGNING_KEY)) == 1
    assert manifest.sources["signing_key_fingerprint"] == sites.key.fingerprint
    assert manifest.sources["docker_tarball"].startswith(servers[0].url)
    assert "/bin/sh" not in manifest.sources["toolkit_host_requirements"]
    assert "libc6" in manifest.sources["toolkit_host_requirements"]
    assert verify_bundle(out) == []
    assert result.reused == []
    assert not (out / ".gpurun-bundle-build").exists()

    # The bundled toolkit folder is a flat apt repository of its own.
    assert (out / "toolkit" / "deb" / "Packages").is_file()
    assert (out / "toolkit" / "deb" / "libnvidia-container1_1.17.2-1_amd64.deb").is_file() \
        or ARCH != "x86_64"


def test_older_version_on_request(
    sites: Sites, servers: tuple[SiteServer, SiteServer], tmp_path: Path
) -> None:
    build_bundle(request_for(tmp_path / "b", servers, sites, toolkit_version="1.17.1"))
    manifest = load_manifest(tmp_path / "b")
    assert [p.version for p in manifest.toolkit_packages()] == ["1.17.1-1"] * 4
    assert servers[1].gets("_1.17.2-1_" + deb_arch(ARCH) + ".deb") == []


def test_rpm_bundle_from_loopback(
    sites: Sites, servers: tuple[SiteServer, SiteServer], tmp_path: Path
) -> None:
    if not (sites.nvidia / "stable" / "rpm").is_dir():
        pytest.skip("rpm bundle test needs rpmbuild and createrepo_c (Debian: rpm, createrepo-c)")
    out = tmp_path / "bundle"
    build_bundle(request_for(out, servers, sites, package_format="rpm"))
    manifest = load_manifest(out)

    assert manifest.package_format == "rpm"
    assert manifest.toolkit_install_order == MODERN_SET
    assert [p.version for p in manifest.toolkit_packages()] == ["1.17.2-1"] * 4
    assert [f.path for f in manifest.files_of_kind(KIND_SIGNED_INDEX)] == \
        ["toolkit/rpm/repodata/repomd.xml"]
    assert [f.path for f in manifest.files_of_kind(KIND_INDEX_SIGNATURE)] == \
        ["toolkit/rpm/repodata/repomd.xml.asc"]
    assert "/bin/sh" in manifest.sources["toolkit_host_requirements"]
    assert verify_bundle(out) == []


def test_test_image_included(
    sites: Sites, servers: tuple[SiteServer, SiteServer], tmp_path: Path
) -> None:
    image = tmp_path / "busybox.tar"
    with tarfile.open(image, "w") as tar:
        data = json.dumps([{"Config": "c.json", "RepoTags": ["busybox:1.36"],
                            "Layers": []}]).encode()
        info = tarfile.TarInfo("manifest.json")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    build_bundle(request_for(tmp_path / "b", servers, sites, test_image=image))
    manifest = load_manifest(tmp_path / "b")
    [entry] = manifest.files_of_kind(KIND_TEST_IMAGE)
    assert entry.image == "busybox:1.36"
    assert entry.path == "images/busybox.tar"


# --- resume and re-runs -----------------------------------------------------------------------

def test_cut_transfer_resumes_in_same_run(
    sites: Sites, servers: tuple[SiteServer, SiteServer], tmp_path: Path
) -> None:
    docker, nvidia = servers
    tarball = f"/linux/static/stable/{ARCH}/docker-{DOCKER_VERSION}.tgz"
    deb = f"/stable/deb/{deb_arch(ARCH)}/nvidia-container-toolkit_1.17.2-1_{deb_arch(ARCH)}.deb"
    docker.faults.drop_once[tarball] = 5000
    nvidia.faults.drop_once[deb] = 600

    build_bundle(request_for(tmp_path / "b", servers, sites))
    assert docker.gets(tarball) == ["", "bytes=5000-"]
    assert nvidia.gets(deb) == ["", "bytes=600-"]
    assert verify_bundle(tmp_path / "b") == []


def test_interrupted_run_fetches_only_rest(
    sites: Sites, servers: tuple[SiteServer, SiteServer], tmp_path: Path
) -> None:
    docker, nvidia = servers
    folder = f"/stable/deb/{deb_arch(ARCH)}"
    cut = f"{folder}/nvidia-container-toolkit_1.17.2-1_{deb_arch(ARCH)}.deb"
    # Every GET of that package breaks off after 100 bytes, so all attempts of the first
    # run end short of its 1.8 kB and the run fails.
    nvidia.faults.drop_after[cut] = 100
    out = tmp_path / "b"
    with pytest.raises(BundleError, match="nvidia-container-toolkit_1.17.2-1.*failed after"):
        build_bundle(request_for(out, servers, sites))
    part = out / "toolkit" / "deb" / f"nvidia-container-toolkit_1.17.2-1_{deb_arch(ARCH)}.deb.part"
    assert part.stat().st_size == 500
    assert not (out / "manifest.json").exists()

    first_paths = nvidia.got_paths() | docker.got_paths()
    docker.requests.clear()
    nvidia.requests.clear()
    nvidia.faults.drop_after.clear()
    result = build_bundle(request_for(out, servers, sites))

    assert docker.gets(".tgz") == []
    assert nvidia.gets(cut) == ["bytes=500-"]
    for name in MODERN_SET[:3]:
        assert nvidia.gets(f"/{name}_1.17.2-1_{deb_arch(ARCH)}.deb") == [], name
        assert any(path.endswith(f"/{name}_1.17.2-1_{deb_arch(ARCH)}.deb")
                   for path in first_paths), name
    packages = [path for path in result.downloaded if path.endswith(".deb")]
    assert packages == [part.relative_to(out).as_posix().removesuffix(".part")]
    assert "toolkit/deb/Packages" in result.downloaded
    assert f"docker/docker-{DOCKER_VERSION}.tgz" in result.reused
    assert verify_bundle(out) == []


def test_damaged_file_fetched_again(
    sites: Sites, servers: tuple[SiteServer, SiteServer], tmp_path: Path
) -> None:
    out = tmp_path / "b"
    build_bundle(request_for(out, servers, sites))
    damaged = out / "toolkit" / "deb" / f"libnvidia-container1_1.17.2-1_{deb_arch(ARCH)}.deb"
    damaged.write_bytes(b"not a package")
    tarball = out / "docker" / f"docker-{DOCKER_VERSION}.tgz"
    tarball.write_bytes(tarball.read_bytes()[:100])
    servers[0].requests.clear()
    servers[1].requests.clear()

    result = build_bundle(request_for(out, servers, sites))
    fetched_again = [path for path in result.downloaded if path != "toolkit/deb/Packages"]
    assert sorted(fetched_again) == sorted([
        damaged.relative_to(out).as_posix(), tarball.relative_to(out).as_posix()])
    assert verify_bundle(out) == []


def test_stale_files_removed_on_rebuild(
    sites: Sites, servers: tuple[SiteServer, SiteServer], tmp_path: Path
) -> None:
    out = tmp_path / "b"
    build_bundle(request_for(out, servers, sites, toolkit_version="1.17.1"))
    build_bundle(request_for(out, servers, sites, toolkit_version="1.17.2"))
    debs = sorted(path.name for path in (out / "toolkit" / "deb").glob("*.deb"))
    assert len(debs) == 4
    assert all("_1.17.2-1_" in name for name in debs)


def test_foreign_folder_rejected(
    sites: Sites, servers: tuple[SiteServer, SiteServer], tmp_path: Path
) -> None:
    (tmp_path / "notes.txt").write_text("someone's file\n")
    with pytest.raises(BundleError, match="is not empty and is not a bundle"):
        build_bundle(request_for(tmp_path, servers, sites))
    assert (tmp_path / "notes.txt").read_text() == "someone's file\n"


# --- signatures and digests -------------------------------------------------------------------

def test_signature_by_other_key_rejected(
    sites: Sites, servers: tuple[SiteServer, SiteServer], tmp_path: Path
) -> None:
    with pytest.raises(BundleError, match="InRelease is invalid or not made by the key"):
        build_bundle(request_for(tmp_path / "b", servers, sites,
                                 key_file=sites.other_key.public_key))
    assert not (tmp_path / "b" / "manifest.json").exists()


def test_packages_not_matching_release_rejected(sites: Sites, tmp_path: Path) -> None:
    site = copied_site(sites.nvidia, tmp_path / "site")
    packages = site / "stable" / "deb" / deb_arch(ARCH) / "Packages"
    packages.write_text(packages.read_text().replace("Priority: optional", "Priority: standard"))
    with SiteServer(sites.docker) as docker, SiteServer(site) as nvidia, \
            pytest.raises(BundleError, match="Packages failed after 2 attempts: its SHA256 is"):
        build_bundle(request_for(tmp_path / "b", (docker, nvidia), sites))


def test_package_not_matching_index_rejected(sites: Sites, tmp_path: Path) -> None:
    site = copied_site(sites.nvidia, tmp_path / "site")
    deb = site / "stable" / "deb" / deb_arch(ARCH) / \
        f"nvidia-container-toolkit-base_1.17.2-1_{deb_arch(ARCH)}.deb"
    data = bytearray(deb.read_bytes())
    data[-1] ^= 0xFF
    deb.write_bytes(bytes(data))
    with SiteServer(sites.docker) as docker, SiteServer(site) as nvidia, \
            pytest.raises(BundleError, match="toolkit-base_1.17.2-1.*SHA256 is"):
        build_bundle(request_for(tmp_path / "b", (docker, nvidia), sites))


def test_unsigned_needs_explicit_permission(
    sites: Sites, servers: tuple[SiteServer, SiteServer], tmp_path: Path
) -> None:
    with pytest.raises(BundleError, match="no repository key given"):
        build_bundle(request_for(tmp_path / "a", servers, sites, key_file=None))

    build_bundle(request_for(tmp_path / "b", servers, sites, key_file=None, allow_unsigned=True))
    manifest = load_manifest(tmp_path / "b")
    assert manifest.files_of_kind(KIND_SIGNED_INDEX) == []
    assert "signing_key_fingerprint" not in manifest.sources
    assert manifest.toolkit_install_order == MODERN_SET


def test_docker_pin_checked(
    sites: Sites, servers: tuple[SiteServer, SiteServer], tmp_path: Path
) -> None:
    with pytest.raises(BundleError, match=f"docker-{DOCKER_VERSION}.tgz failed after .* "
                                          "SHA256 is"):
        build_bundle(request_for(tmp_path / "a", servers, sites, docker_sha256="0" * 64))

    served = sites.docker / "linux" / "static" / "stable" / ARCH / f"docker-{DOCKER_VERSION}.tgz"
    build_bundle(request_for(tmp_path / "b", servers, sites, docker_sha256=sha256_file(served)))
    assert load_manifest(tmp_path / "b").docker_tarball().sha256 == sha256_file(served)


def test_wrong_arch_tarball_rejected(sites: Sites, tmp_path: Path) -> None:
    other = "aarch64" if ARCH == "x86_64" else "x86_64"
    binary = bytearray(Path("/bin/true").read_bytes())
    binary[18:20] = (0xB7 if other == "aarch64" else 0x3E).to_bytes(2, "little")
    patched = tmp_path / "true"
    patched.write_bytes(bytes(binary))
    site = tmp_path / "docker-site"
    make_docker_site(site, DOCKER_VERSION, ARCH, docker_tarball_bytes(patched))
    with SiteServer(site) as docker, SiteServer(sites.nvidia) as nvidia, \
            pytest.raises(BundleError, match=f"is not for {ARCH}: containerd is {other}"):
        build_bundle(request_for(tmp_path / "b", (docker, nvidia), sites))


def test_missing_docker_version_named(
    sites: Sites, servers: tuple[SiteServer, SiteServer], tmp_path: Path
) -> None:
    with pytest.raises(BundleError, match=r"docker-26\.0\.0\.tgz returned HTTP 404"):
        build_bundle(request_for(tmp_path / "b", servers, sites, docker_version="26.0.0"))


def test_incomplete_repository_names_package(sites: Sites, tmp_path: Path) -> None:
    site = copied_site(sites.nvidia, tmp_path / "site")
    folder = site / "stable" / "deb" / deb_arch(ARCH)
    kept = tmp_path / "kept"
    kept.mkdir()
    for deb in folder.glob("*.deb"):
        if "toolkit-base_1.17.2" not in deb.name:
            shutil.copyfile(deb, kept / deb.name)
    shutil.rmtree(site / "stable" / "deb")
    make_apt_repo(site, sorted(kept.glob("*.deb")), deb_arch(ARCH), sites.key)
    with SiteServer(sites.docker) as docker, SiteServer(site) as nvidia, \
            pytest.raises(BundleError, match="no nvidia-container-toolkit-base 1.17.2"):
        build_bundle(request_for(tmp_path / "b", (docker, nvidia), sites))


# --- verify after the bundle was carried across ------------------------------------------------

def test_verify_catches_rewritten_manifest(
    sites: Sites, servers: tuple[SiteServer, SiteServer], tmp_path: Path
) -> None:
    out = tmp_path / "b"
    build_bundle(request_for(out, servers, sites))
    manifest = load_manifest(out)
    entry = next(f for f in manifest.files if f.name == "libnvidia-container-tools")
    (out / entry.path).write_bytes(b"someone else's package")

    # Whoever changed the package also rewrote the manifest, so only the signed index tells.
    files = [replace(f, size=(out / f.path).stat().st_size, sha256=sha256_file(out / f.path))
             if f.path == entry.path else f for f in manifest.files]
    write_manifest(out, replace(manifest, files=files))
    problems = verify_bundle(out)
    assert problems == [f"{entry.path}: its size is 22 bytes, expected {entry.size}"]
    with pytest.raises(BundleError, match="does not match its manifest"):
        require_valid_bundle(out)


def test_verify_names_package_removed(
    sites: Sites, servers: tuple[SiteServer, SiteServer], tmp_path: Path
) -> None:
    out = tmp_path / "b"
    build_bundle(request_for(out, servers, sites))
    manifest = load_manifest(out)
    files = [f for f in manifest.files if f.name != "nvidia-container-toolkit-base"]
    order = [name for name in manifest.toolkit_install_order
             if name != "nvidia-container-toolkit-base"]
    write_manifest(out, replace(manifest, files=files, toolkit_install_order=order))
    expected = ("nvidia-container-toolkit-base 1.17.2-1 is missing from the bundle, and "
                "nvidia-container-toolkit 1.17.2-1 needs it")
    assert verify_bundle(out) == [expected]


def test_verify_rejects_resigned_index(
    sites: Sites, servers: tuple[SiteServer, SiteServer], tmp_path: Path
) -> None:
    out = tmp_path / "b"
    build_bundle(request_for(out, servers, sites))
    manifest = load_manifest(out)
    # Someone re-signed the index with their own key and swapped the bundled key for theirs:
    # the bundle is consistent with itself, so only a check with the vendor's key tells.
    release = tmp_path / "Release"
    release.write_text(release_text(out / "toolkit" / "deb", ["Packages"]))
    in_release = out / "toolkit" / "deb" / "InRelease"
    clearsign(sites.other_key, release, in_release)
    shutil.copyfile(sites.other_key.public_key, out / "keys" / "repository-key")
    files = [replace(f, size=(out / f.path).stat().st_size, sha256=sha256_file(out / f.path))
             if f.kind in (KIND_SIGNED_INDEX, KIND_SIGNING_KEY) else f for f in manifest.files]
    write_manifest(out, replace(manifest, files=files))

    assert verify_bundle(out) == []
    cli = subprocess.run([sys.executable, "-m", "gpurun.cli", "bundle", "verify", str(out),
                          "--key", str(sites.key.public_key)],
                         capture_output=True, text=True, timeout=300, check=False)
    assert cli.returncode != 0
    assert "fails the check with the key" in cli.stderr
    assert "InRelease is invalid or not made by the key" in cli.stderr


# --- the command line -------------------------------------------------------------------------

def test_cli_build_then_verify(
    sites: Sites, servers: tuple[SiteServer, SiteServer], tmp_path: Path
) -> None:
    docker, nvidia = servers
    out = tmp_path / "bundle"
    build = subprocess.run(
        [sys.executable, "-m", "gpurun.cli", "bundle", "build", str(out),
         "--docker-version", DOCKER_VERSION, "--arch", deb_arch(ARCH),
         "--docker-mirror", docker.url, "--nvidia-mirror", nvidia.url,
         "--key", str(sites.key.public_key), "--no-progress"],
        capture_output=True, text=True, timeout=600, check=False,
    )
    assert build.returncode == 0, build.stderr
    assert "toolkit 1.17.2-1 (libnvidia-container1, libnvidia-container-tools, " \
           "nvidia-container-toolkit-base, nvidia-container-toolkit)" in build.stdout

    verify = subprocess.run(
        [sys.executable, "-m", "gpurun.cli", "bundle", "verify", str(out),
         "--key", str(sites.key.public_key)],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert verify.returncode == 0, verify.stderr
    assert "files match the manifest" in verify.stdout
    kinds = {f.kind for f in load_manifest(out).files}
    assert {KIND_DOCKER_STATIC, KIND_TOOLKIT_PACKAGE, KIND_SIGNED_INDEX} <= kinds
