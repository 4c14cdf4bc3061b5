"""The `gpurun bundle build` command, and the key check of `gpurun bundle verify --key`."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from gpurun.bundle.sources import DOCKER_UPSTREAM, LATEST, NVIDIA_KEY_URL, NVIDIA_UPSTREAM
from gpurun.errors import BundleError, GpurunError


@click.command("build")
@click.argument("out_dir", type=click.Path(path_type=Path))
@click.option("--docker-version", required=True,
              help="Docker release of the static tarball, e.g. 27.3.1 (docker-27.3.1.tgz).")
@click.option("--arch", required=True,
              help="CPU architecture of the hosts: x86_64 or aarch64 (amd64 and arm64 work too).")
@click.option("--toolkit-version", default=LATEST, show_default=True,
              help='NVIDIA Container Toolkit version, e.g. 1.17.2 or 1.17.2-1, or "latest" '
                   "(the newest release that is no pre-release).")
@click.option("--package-format", type=click.Choice(["deb", "rpm"]), default="deb",
              show_default=True, help="Format of the toolkit packages the hosts install.")
@click.option("--docker-mirror", default=DOCKER_UPSTREAM, show_default=True,
              help="Base URL with Docker's layout: <base>/linux/static/stable/<arch>/.")
@click.option("--nvidia-mirror", default=NVIDIA_UPSTREAM, show_default=True,
              help="Base URL with NVIDIA's layout: <base>/stable/deb/<arch>/ and "
                   "<base>/stable/rpm/<arch>/.")
@click.option("--key", "key_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help=f"The vendor's public key that signs the repository index (NVIDIA's is "
                   f"{NVIDIA_KEY_URL}); the build checks the signature with it, offline.")
@click.option("--allow-unsigned", is_flag=True,
              help="Build without --key, trusting the index's checksums as the mirror serves them.")
@click.option("--rootless-extras", is_flag=True,
              help="Add docker-rootless-extras-<version>.tgz.")
@click.option("--docker-sha256", default=None,
              help="Expected SHA-256 of the Docker tarball, which Docker does not publish.")
@click.option("--rootless-extras-sha256", default=None,
              help="Expected SHA-256 of the rootless extras tarball.")
@click.option("--test-image", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A `docker save` archive to add as the test image the verify step runs.")
@click.option("--progress/--no-progress", default=None,
              help="Show progress bars (default: when the output is a terminal).")
def build_command(out_dir: Path, docker_version: str, arch: str, toolkit_version: str,
                  package_format: str, docker_mirror: str, nvidia_mirror: str,
                  key_file: Path | None, allow_unsigned: bool, rootless_extras: bool,
                  docker_sha256: str | None, rootless_extras_sha256: str | None,
                  test_image: Path | None, progress: bool | None) -> None:
    """Download Docker's static tarball and the NVIDIA toolkit packages into OUT_DIR.

    Run it on a machine with internet (or with the mirrors), then carry OUT_DIR into the
    offline network. Run it again after an interruption: it fetches only what is missing.
    """
    # Imported here so that other commands start without loading the HTTP client.
    from gpurun.bundle.build import BuildRequest, build_bundle

    request = BuildRequest(
        out_dir=out_dir, docker_version=docker_version, arch=arch,
        toolkit_version=toolkit_version, package_format=package_format,
        docker_mirror=docker_mirror, nvidia_mirror=nvidia_mirror, key_file=key_file,
        allow_unsigned=allow_unsigned, rootless_extras=rootless_extras,
        docker_sha256=docker_sha256, rootless_extras_sha256=rootless_extras_sha256,
        test_image=test_image, progress=sys.stderr.isatty() if progress is None else progress,
    )
    try:
        result = build_bundle(request)
    except GpurunError as error:
        raise click.ClickException(str(error)) from error

    manifest = result.manifest
    click.echo(f"bundle {out_dir}: Docker {manifest.docker_version}, toolkit "
               f"{result.resolution.toolkit.version} "
               f"({', '.join(manifest.toolkit_install_order)}), {len(manifest.files)} files, "
               f"{len(result.downloaded)} downloaded, {len(result.reused)} kept")
    click.echo(f"the hosts must provide: {manifest.sources['toolkit_host_requirements']}")


def check_with_key(bundle_dir: Path, key_file: Path) -> None:
    """Check the bundle's signed index with a key the operator trusts, not the bundled one.

    Raises BundleError listing each problem.
    """
    from gpurun.bundle.index_chain import check_index_chain
    from gpurun.bundle.manifest import load_manifest

    manifest = load_manifest(bundle_dir)
    problems = check_index_chain(bundle_dir, manifest, key_file)
    if problems:
        listing = "\n".join(f"  - {problem}" for problem in problems)
        raise BundleError(f"bundle {bundle_dir} fails the check with the key {key_file}:\n"
                          f"{listing}\n  next step: rebuild the bundle from the vendor's "
                          "repository, or check that the key is the vendor's")
