"""Resolving toolkit package sets from repository indexes: NVIDIA's real apt index, and edits of it."""

from __future__ import annotations

from pathlib import Path

import pytest

from gpurun.bundle.apt_repo import parse_packages
from gpurun.bundle.resolve import resolve_toolkit, select_toolkit, toolkit_versions
from gpurun.bundle.rpm_repo import parse_primary, parse_repomd
from gpurun.bundle.versions import compare, is_pre_release, rpmvercmp, satisfies
from gpurun.errors import BundleError

REAL_REPO = Path(__file__).resolve().parent / "data" / "nvidia-repo"
MODERN_SET = ["libnvidia-container1", "libnvidia-container-tools",
              "nvidia-container-toolkit-base", "nvidia-container-toolkit"]
REAL_VERSIONS = ["1.14.0-1", "1.14.1-1", "1.14.2-1", "1.14.3-1", "1.14.4-1", "1.14.5-1",
                 "1.14.6-1", "1.15.0-1", "1.16.0-1", "1.16.1-1", "1.16.2-1", "1.17.0-1",
                 "1.17.1-1", "1.17.2-1"]


def real_index_text(arch: str) -> str:
    path = REAL_REPO / "stable" / "deb" / arch / "Packages"
    if not path.is_file():
        pytest.skip(f"NVIDIA's real apt index is not at {path}")
    return path.read_text()


def without(text: str, name: str, version: str) -> str:
    """Return index text without the paragraph of one package version."""
    paragraphs = text.split("\n\n")
    kept = [p for p in paragraphs
            if not (f"Package: {name}\n" in p and f"\nVersion: {version}\n" in p)]
    assert len(kept) == len(paragraphs) - 1, f"{name} {version} not in the index"
    return "\n\n".join(kept)


def paragraph(name: str, version: str, depends: str = "", arch: str = "amd64") -> str:
    lines = [f"Package: {name}", f"Version: {version}", f"Architecture: {arch}",
             f"Filename: ./{name}_{version}_{arch}.deb", "Size: 100",
             f"SHA256: {'0' * 64}"]
    if depends:
        lines.insert(3, f"Depends: {depends}")
    return "\n".join(lines) + "\n"


# --- version ordering -------------------------------------------------------------------------

@pytest.mark.parametrize(("left", "right", "order"), [
    ("1.0", "1.0", 0),
    ("1.0", "2.0", -1),
    ("2.0.1", "2.0", 1),
    ("1.0a", "1.0", 1),
    ("10", "9", 1),
    ("010", "10", 0),
    ("1.0", "1_0", 0),
    ("a", "1", -1),
    ("1.0~rc1", "1.0", -1),
    ("1.0~rc1", "1.0~rc2", -1),
    ("1.0^", "1.0", 1),
    ("1.0^git1", "1.0.1", -1),
])
def test_rpmvercmp_table(left: str, right: str, order: int) -> None:
    assert rpmvercmp(left, right) == order
    assert rpmvercmp(right, left) == -order


@pytest.mark.parametrize(("package_format", "left", "right", "order"), [
    ("deb", "1.17.2-1", "1.17.10-1", -1),
    ("deb", "1:1.0-1", "2.0-1", 1),
    ("deb", "1.18.0~rc.1-1", "1.18.0-1", -1),
    ("rpm", "1.17.2-1", "1.17.2-2", -1),
    ("rpm", "1:1.0-1", "2.0-1", 1),
    ("rpm", "1.17.2-1", "1.17.2-1", 0),
])
def test_compare_versions(package_format: str, left: str, right: str, order: int) -> None:
    assert compare(package_format, left, right) == order


def test_rpm_bound_without_release_ignores_release() -> None:
    assert satisfies("rpm", "1.17.2-1", "=", "1.17.2")
    assert satisfies("rpm", "1.17.2-1", ">=", "1.17.2")
    assert not satisfies("rpm", "1.17.2-1", ">", "1.17.2")
    assert not satisfies("deb", "1.17.2-1", "=", "1.17.2")


def test_pre_release_detection() -> None:
    assert is_pre_release("1.18.0~rc.1-1")
    assert is_pre_release("1.18.0-0.1.rc.1")
    assert not is_pre_release("1.17.2-1")


# --- the real NVIDIA apt index ----------------------------------------------------------------

@pytest.mark.parametrize("arch", ["amd64", "arm64"])
def test_real_index_lists_all_versions(arch: str) -> None:
    index = parse_packages(real_index_text(arch), source="Packages", arch=arch)
    assert toolkit_versions(index) == REAL_VERSIONS
    assert select_toolkit(index).version == "1.17.2-1"


@pytest.mark.parametrize("arch", ["amd64", "arm64"])
@pytest.mark.parametrize("version", REAL_VERSIONS)
def test_real_index_resolves_modern_set(arch: str, version: str) -> None:
    index = parse_packages(real_index_text(arch), source="Packages", arch=arch)
    resolution = resolve_toolkit(index, version)
    assert resolution.install_order == MODERN_SET
    assert {package.version for package in resolution.packages} == {version}
    assert all(package.arch == arch for package in resolution.packages)
    assert "nvidia-docker2" not in resolution.install_order
    assert "nvidia-container-runtime" not in resolution.install_order
    assert any(requirement.startswith("libc6") for requirement in resolution.host_requirements)


def test_real_index_takes_upstream_version() -> None:
    index = parse_packages(real_index_text("amd64"), source="Packages", arch="amd64")
    assert select_toolkit(index, "1.16.1").version == "1.16.1-1"
    package = resolve_toolkit(index, "1.16.1").packages[0]
    assert package.location == "libnvidia-container1_1.16.1-1_amd64.deb"
    assert len(package.checksums["sha256"]) == 64


def test_unknown_version_lists_available() -> None:
    index = parse_packages(real_index_text("amd64"), source="Packages", arch="amd64")
    with pytest.raises(BundleError, match=r"version '1.13.0' not found .* 1\.17\.2-1"):
        resolve_toolkit(index, "1.13.0")


def test_pre_release_never_latest() -> None:
    text = real_index_text("amd64") + "\n" + paragraph("nvidia-container-toolkit", "1.18.0~rc.1-1")
    index = parse_packages(text, source="Packages", arch="amd64")
    assert select_toolkit(index).version == "1.17.2-1"
    assert select_toolkit(index, "1.18.0~rc.1-1").version == "1.18.0~rc.1-1"


# --- incomplete or mixed package sets are rejected, naming the package --------------------------

def test_missing_toolkit_base_named() -> None:
    text = without(real_index_text("amd64"), "nvidia-container-toolkit-base", "1.17.2-1")
    index = parse_packages(text, source="Packages", arch="amd64")
    with pytest.raises(BundleError, match="incomplete package set: .* no "
                                          "nvidia-container-toolkit-base 1.17.2"):
        resolve_toolkit(index, "1.17.2")


def test_older_library_named() -> None:
    text = without(real_index_text("amd64"), "libnvidia-container1", "1.17.2-1")
    index = parse_packages(text, source="Packages", arch="amd64")
    with pytest.raises(BundleError, match="no libnvidia-container1 1.17.2") as error:
        resolve_toolkit(index, "latest")
    assert "1.17.1-1" in str(error.value)


def test_only_toolkit_in_repository() -> None:
    text = paragraph("nvidia-container-toolkit", "1.17.2-1",
                     "nvidia-container-toolkit-base (= 1.17.2-1)")
    index = parse_packages(text, source="Packages", arch="amd64")
    with pytest.raises(BundleError, match="no libnvidia-container1 1.17.2,.* it has none"):
        resolve_toolkit(index)


def test_mixed_library_version_rejected() -> None:
    text = "\n".join([
        paragraph("libnvidia-container1", "1.17.0-1"),
        paragraph("libnvidia-container-tools", "1.17.2-1", "libnvidia-container1 (>= 1.17.0)"),
        paragraph("nvidia-container-toolkit-base", "1.17.2-1"),
        paragraph("nvidia-container-toolkit", "1.17.2-1",
                  "nvidia-container-toolkit-base (= 1.17.2-1), "
                  "libnvidia-container-tools (>= 1.17.2-1)"),
    ])
    index = parse_packages(text, source="Packages", arch="amd64")
    with pytest.raises(BundleError, match="no libnvidia-container1 1.17.2,.* it has 1.17.0-1"):
        resolve_toolkit(index)


def test_exact_dependency_on_other_version_rejected() -> None:
    text = real_index_text("amd64").replace(
        "Depends: nvidia-container-toolkit-base (= 1.17.2-1)",
        "Depends: nvidia-container-toolkit-base (= 1.17.1-1)")
    index = parse_packages(text, source="Packages", arch="amd64")
    with pytest.raises(BundleError, match=r"mixed versions: nvidia-container-toolkit 1\.17\.2-1 "
                                          r"depends on nvidia-container-toolkit-base \(= "
                                          r"1\.17\.1-1\), but the set already has "
                                          r"nvidia-container-toolkit-base 1\.17\.2-1"):
        resolve_toolkit(index, "1.17.2-1")


def test_range_dependency_unmet_rejected() -> None:
    text = "\n".join([
        paragraph("libnvidia-container1", "1.17.2-1"),
        paragraph("libnvidia-container-tools", "1.17.2-1", "libnvidia-container1 (>= 1.17.2)"),
        paragraph("nvidia-container-toolkit-base", "1.17.2-1"),
        paragraph("nvidia-container-toolkit", "1.17.2-1",
                  "nvidia-container-toolkit-base (= 1.17.2-1), libnvidia-container-tools "
                  "(>= 1.17.2-1), libnvidia-container-tools (<< 1.17.0)"),
    ])
    index = parse_packages(text, source="Packages", arch="amd64")
    with pytest.raises(BundleError, match=r"depends on libnvidia-container-tools \(< 1\.17\.0\)"):
        resolve_toolkit(index)


# --- older package sets beside a static Docker -------------------------------------------------

# NOTE: these paragraphs are written for the test in the shape of NVIDIA's older releases
# (their package names and version relations); the real index here starts at 1.14.0.
LEGACY_INDEX = "\n".join([
    paragraph("libnvidia-container1", "1.5.1-1", "libc6 (>= 2.7)"),
    paragraph("libnvidia-container-tools", "1.5.1-1", "libnvidia-container1 (>= 1.5.1)"),
    paragraph("nvidia-container-toolkit", "1.5.1-1",
              "libnvidia-container-tools (>= 1.4.0), libnvidia-container-tools (<< 2.0.0)"),
    paragraph("nvidia-container-runtime", "3.5.0-1",
              "nvidia-container-toolkit (>= 1.5.0), nvidia-container-toolkit (<< 2.0.0)"),
    paragraph("nvidia-docker2", "2.6.0-1",
              "nvidia-container-runtime (>= 3.5.0), docker-ce (>= 18.06.0~ce~3-0~debian) | "
              "docker-ee (>= 18.06.0~ce~3-0~debian) | docker.io (>= 18.06.0)", arch="all"),
    paragraph("libnvidia-container1", "1.10.0-1", "libc6 (>= 2.7)"),
    paragraph("libnvidia-container-tools", "1.10.0-1", "libnvidia-container1 (>= 1.10.0)"),
    paragraph("nvidia-container-toolkit", "1.10.0-1",
              "libnvidia-container-tools (>= 1.10.0-1), libnvidia-container-tools (<< 2.0.0)"),
    paragraph("nvidia-container-runtime", "3.10.0-1", "nvidia-container-toolkit (>= 1.10.0-1)",
              arch="all"),
    paragraph("nvidia-docker2", "2.11.0-1",
              "nvidia-container-toolkit (>= 1.10.0-1), docker-ce | docker-ee | docker.io | "
              "moby-engine", arch="all"),
])


def test_legacy_set_adds_runtime_package() -> None:
    index = parse_packages(LEGACY_INDEX, source="Packages", arch="amd64")
    resolution = resolve_toolkit(index, "1.5.1")
    assert resolution.install_order == ["libnvidia-container1", "libnvidia-container-tools",
                                        "nvidia-container-toolkit", "nvidia-container-runtime"]
    assert resolution.packages[-1].version == "3.5.0-1"
    assert "nvidia-docker2" not in resolution.install_order


def test_unified_set_leaves_out_meta_packages() -> None:
    index = parse_packages(LEGACY_INDEX, source="Packages", arch="amd64")
    resolution = resolve_toolkit(index, "1.10.0")
    assert resolution.install_order == ["libnvidia-container1", "libnvidia-container-tools",
                                        "nvidia-container-toolkit"]
    assert resolution.toolkit_set.name.startswith("unified")


def test_dependency_on_nvidia_docker2_rejected() -> None:
    text = real_index_text("amd64").replace(
        "Depends: nvidia-container-toolkit-base (= 1.17.2-1)",
        "Depends: nvidia-docker2 (>= 2.0.0), nvidia-container-toolkit-base (= 1.17.2-1)")
    index = parse_packages(text, source="Packages", arch="amd64")
    with pytest.raises(BundleError, match="nvidia-docker2 2.14.0-1 would go into the bundle "
                                          ".* daemon.json"):
        resolve_toolkit(index, "1.17.2")


def test_dependency_on_packaged_docker_rejected() -> None:
    text = real_index_text("amd64").replace(
        "Depends: nvidia-container-toolkit-base (= 1.17.2-1)",
        "Depends: docker-ce (>= 20.10) | docker.io, nvidia-container-toolkit-base (= 1.17.2-1)")
    index = parse_packages(text, source="Packages", arch="amd64")
    with pytest.raises(BundleError, match="depends on a packaged Docker"):
        resolve_toolkit(index, "1.17.2")


# --- yum metadata -----------------------------------------------------------------------------

def test_real_repomd_names_primary() -> None:
    path = REAL_REPO / "stable" / "rpm" / "x86_64" / "repodata" / "repomd.xml"
    if not path.is_file():
        pytest.skip(f"NVIDIA's real repomd.xml is not at {path}")
    entries = parse_repomd(path.read_bytes(), source=str(path))
    primary = entries["primary"]
    assert primary.algorithm == "sha512"
    assert primary.location == f"repodata/{primary.digest}-primary.xml.gz"
    assert primary.size == 16914


def rpm_package(name: str, version: str, requires: str = "", provides: str = "") -> str:
    return f"""<package type="rpm"><name>{name}</name><arch>x86_64</arch>
<version epoch="0" ver="{version}" rel="1"/><checksum type="sha256" pkgid="YES">{'a' * 64}</checksum>
<size package="10" installed="20" archive="30"/>
<location href="{name}-{version}-1.x86_64.rpm"/>
<format><rpm:provides><rpm:entry name="{name}" flags="EQ" epoch="0" ver="{version}" rel="1"/>
{provides}</rpm:provides><rpm:requires>{requires}</rpm:requires></format></package>"""


def primary_xml(*packages: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<metadata xmlns="http://linux.duke.edu/metadata/common" '
        'xmlns:rpm="http://linux.duke.edu/metadata/rpm" '
        f'packages="{len(packages)}">{"".join(packages)}</metadata>'
    ).encode()


def test_rpm_primary_resolves_modern_set() -> None:
    ge = 'flags="GE" epoch="0" ver="1.17.2" rel="1"'
    data = primary_xml(
        rpm_package("libnvidia-container1", "1.17.2", '<rpm:entry name="libc.so.6()(64bit)"/>'
                    '<rpm:entry name="rpmlib(PayloadIsZstd)" flags="LE" epoch="0" ver="5.4.18" '
                    'rel="1"/>'),
        rpm_package("libnvidia-container-tools", "1.17.2",
                    f'<rpm:entry name="libnvidia-container1(x86-64)" {ge}/>'),
        rpm_package("libnvidia-container1", "1.17.1", "",
                    '<rpm:entry name="libnvidia-container1(x86-64)" flags="EQ" epoch="0" '
                    'ver="1.17.1" rel="1"/>'),
        rpm_package("nvidia-container-toolkit-base", "1.17.2"),
        rpm_package("nvidia-container-toolkit", "1.17.2",
                    f'<rpm:entry name="nvidia-container-toolkit-base" flags="EQ" epoch="0" '
                    f'ver="1.17.2" rel="1"/><rpm:entry name="libnvidia-container-tools" {ge}/>'
                    '<rpm:entry name="libnvidia-container-tools" flags="LT" epoch="0" '
                    'ver="2.0.0"/>'),
    )
    # libnvidia-container1 1.17.2 also provides its arch-qualified name, as rpm packages do.
    data = data.replace(
        b'<rpm:entry name="libnvidia-container1" flags="EQ" epoch="0" ver="1.17.2" rel="1"/>\n',
        b'<rpm:entry name="libnvidia-container1" flags="EQ" epoch="0" ver="1.17.2" rel="1"/>\n'
        b'<rpm:entry name="libnvidia-container1(x86-64)" flags="EQ" epoch="0" ver="1.17.2" '
        b'rel="1"/>')
    index = parse_primary(data, source="primary.xml", arch="x86_64")
    resolution = resolve_toolkit(index)
    assert resolution.install_order == MODERN_SET
    assert {package.version for package in resolution.packages} == {"1.17.2-1"}
    assert resolution.host_requirements == ("libc.so.6()(64bit)",)
    assert resolution.packages[0].location == "libnvidia-container1-1.17.2-1.x86_64.rpm"


def test_rpm_weak_digest_rejected() -> None:
    data = primary_xml(rpm_package("nvidia-container-toolkit", "1.17.2")).replace(
        b'type="sha256"', b'type="sha"')
    with pytest.raises(BundleError, match="has a sha digest"):
        parse_primary(data, source="primary.xml", arch="x86_64")
