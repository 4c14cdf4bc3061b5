"""The bundle runbook, run by papermill on a real kernel against stand-in sites on 127.0.0.1."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import nbformat
import papermill
import pytest
from repo_sites import Sites, SiteServer, standin_sites

from gpurun.bundle.archs import local_arch
from gpurun.bundle.manifest import load_manifest, verify_bundle

RUNBOOK = Path(__file__).resolve().parent.parent / "runbooks" / "bundle.ipynb"
SECRET_WORDS = ("password", "passphrase", "token", "secret")
DOCKER_VERSION = "27.3.1"

pytestmark = pytest.mark.skipif(
    any(shutil.which(tool) is None for tool in ("gpg", "gpgv", "dpkg-deb")),
    reason="the bundle runbook test needs gpg, gpgv and dpkg-deb (gnupg, gpgv, dpkg)",
)


@pytest.fixture(scope="module")
def sites(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sites]:
    with standin_sites(tmp_path_factory.mktemp("sites"), local_arch(), DOCKER_VERSION) as made:
        yield made


def test_runbook_reads_as_script() -> None:
    notebook = nbformat.read(str(RUNBOOK), as_version=4)
    intro = notebook.cells[0]
    assert intro.cell_type == "markdown"
    assert "**Changes:**" in intro.source
    assert "**Undo:**" in intro.source
    tagged = [c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1
    declared = papermill.inspect_notebook(str(RUNBOOK))
    for parameter in declared:
        assert not any(word in parameter for word in SECRET_WORDS), parameter
    # The defaults name the upstream sites, as documentation; tests always pass mirrors.
    assert declared["docker_mirror"]["default"] == '"https://download.docker.com"'


def test_runbook_builds_bundle(sites: Sites, tmp_path: Path) -> None:
    out = tmp_path / "bundle"
    executed = tmp_path / "bundle-executed.ipynb"
    with SiteServer(sites.docker) as docker, SiteServer(sites.nvidia) as nvidia:
        papermill.execute_notebook(
            str(RUNBOOK), str(executed), kernel_name="python3", progress_bar=False,
            cwd=str(tmp_path),
            parameters={
                "out_dir": str(out), "docker_version": DOCKER_VERSION, "arch": local_arch(),
                "docker_mirror": docker.url, "nvidia_mirror": nvidia.url,
                "key_file": str(sites.key.public_key),
            },
        )
        assert docker.gets(f"docker-{DOCKER_VERSION}.tgz") == [""]

    assert verify_bundle(out) == []
    manifest = load_manifest(out)
    assert manifest.toolkit_version == "1.17.2"
    text = executed.read_text()
    assert "bundle files" in text
    assert "nvidia-container-toolkit-base" in text
    assert manifest.docker_tarball().sha256 in text
    assert f"checked with {sites.key.public_key}" in text
