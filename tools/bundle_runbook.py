"""The cells of runbooks/bundle.ipynb, which builds an offline bundle on a connected machine.

tools/build_runbooks.py writes it together with the host runbooks. It has no host connection
and no step record, because it changes nothing on a host.
"""

from __future__ import annotations

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

INTRO = """# Offline bundle

Downloads Docker's static tarball and the NVIDIA Container Toolkit packages, checks them, and
writes a bundle folder with `manifest.json` to carry into the offline network. Run it once per
bundle on a machine with internet (or with the mirrors), not per host.

The toolkit packages come from the repository's own index: the signature of the index is
checked with the vendor's public key (`key_file`, offline, with gpgv), the packages of the
requested version and their dependencies are taken from the index, and each download is checked
against the SHA-256 the index lists. Docker publishes no checksums, so the tarball's SHA-256 is
recorded at download time (or checked against `docker_sha256` when given).

Run it again after an interruption: it keeps complete files, resumes partial ones and fetches
only the rest.

**Changes:** files in `out_dir` only. **Undo:** delete `out_dir`."""

PARAMETERS = '''# What to download, from where, and where to put it. Empty strings mean "not set".
out_dir = "bundles/offline"
docker_version = "27.3.1"
arch = "x86_64"  # x86_64 or aarch64 (amd64 and arm64 work too)
toolkit_version = "latest"  # or e.g. "1.17.2"
package_format = "deb"  # deb or rpm, as the hosts install
docker_mirror = "https://download.docker.com"
nvidia_mirror = "https://nvidia.github.io/libnvidia-container"
key_file = ""  # the vendor's public key file, e.g. NVIDIA's gpgkey saved locally
allow_unsigned = False
rootless_extras = False
docker_sha256 = ""
test_image = ""  # a `docker save` archive for the verify step'''

CELLS = [
    ("Show the parameters and check them.",
     ("from gpurun.bundle import build_runbook\nfrom gpurun.bundle.build import build_bundle\n\n"
     "request = build_runbook.start(\n"
     "    out_dir=out_dir, docker_version=docker_version, arch=arch,\n"
     "    toolkit_version=toolkit_version, package_format=package_format,\n"
     "    docker_mirror=docker_mirror, nvidia_mirror=nvidia_mirror, key_file=key_file,\n"
     "    allow_unsigned=allow_unsigned, rootless_extras=rootless_extras,\n"
     "    docker_sha256=docker_sha256, test_image=test_image,\n"
     ")")),
    (("Download, check the signature and the digests, resolve the package set, and write the "
     "manifest."), "result = build_bundle(request)"),
    (("Record what the bundle contains: the package set with the reason for each package, what "
     "the hosts must provide, and every file with its SHA-256."),
     "build_runbook.show_result(result)"),
    (("Check the finished bundle as the offline side will: every file against the manifest, "
     "and the signed index with the key."), "build_runbook.verify(out_dir, key_file)"),
]


def bundle_runbook() -> nbformat.NotebookNode:
    notebook = new_notebook()
    notebook.cells.append(new_markdown_cell(INTRO))
    notebook.cells.append(new_code_cell(PARAMETERS, metadata={"tags": ["parameters"]}))
    for markdown, code in CELLS:
        notebook.cells.append(new_markdown_cell(markdown))
        notebook.cells.append(new_code_cell(code))
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                       "language": "python"}
    notebook.metadata["language_info"] = {"name": "python"}
    return notebook
