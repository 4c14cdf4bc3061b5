"""Stand-in download sites for bundle tests: a signing key, signed repositories, an HTTP server.

The sites keep the upstream layouts (Docker's linux/static/stable/<arch>/ and NVIDIA's flat
stable/deb/<arch>/ and stable/rpm/<arch>/), are signed with a key made for the test, and are
served by a real HTTP server on 127.0.0.1 that can drop a connection midway or fail a path.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import shutil
import subprocess
import tarfile
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from gpurun.bundle.archs import deb_arch, rpm_arch
from gpurun.demo import build_standin_debs, build_standin_rpms
from gpurun.demo.apt_index import write_packages_index

# Names in Docker's static tarballs (docker-27.x).
DOCKER_BINARIES = ("containerd", "containerd-shim-runc-v2", "ctr", "docker", "docker-init",
                   "docker-proxy", "dockerd", "runc")


@dataclass(frozen=True)
class SigningKey:
    """A gpg key made for one test: its home folder, exported public key and fingerprint."""

    home: Path
    public_key: Path  # ASCII-armored, as NVIDIA publishes its key
    fingerprint: str


@contextmanager
def signing_key(folder: Path, name: str = "gpurun test repository") -> Iterator[SigningKey]:
    """Make an ed25519 signing key without a passphrase; stop its gpg-agent afterwards."""
    folder.mkdir(parents=True, exist_ok=True)
    home = folder / "gnupg"
    home.mkdir(mode=0o700)
    try:
        _gpg(home, "--passphrase", "", "--quick-gen-key", f"{name} <repo@example.invalid>",
             "ed25519", "sign", "never")
        listing = _gpg(home, "--with-colons", "--list-keys")
        fingerprint = next(line.split(":")[9] for line in listing.splitlines()
                           if line.startswith("fpr:"))
        public_key = folder / "public-key.asc"
        public_key.write_text(_gpg(home, "--armor", "--export", fingerprint))
        yield SigningKey(home, public_key, fingerprint)
    finally:
        subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "gpg-agent"],
                       capture_output=True, check=False)


def clearsign(key: SigningKey, source: Path, target: Path) -> None:
    _gpg(key.home, "--yes", "--clearsign", "--output", str(target), str(source))


def detach_sign(key: SigningKey, source: Path, target: Path) -> None:
    _gpg(key.home, "--yes", "--armor", "--detach-sign", "--output", str(target), str(source))


def _gpg(home: Path, *arguments: str) -> str:
    result = subprocess.run(
        ["gpg", "--batch", "--homedir", str(home), "--pinentry-mode", "loopback", *arguments],
        capture_output=True, text=True, check=False, timeout=120,
    )
    assert result.returncode == 0, f"gpg {' '.join(arguments)} failed: {result.stderr}"
    return result.stdout


def release_text(folder: Path, names: Sequence[str]) -> str:
    """Return a flat repository's Release text listing `names` with SHA256 and SHA512."""
    lines = ["Origin: gpurun test", "Label: gpurun test", "Date: Fri, 15 Nov 2024 00:00:00 UTC"]
    for field_name, algorithm in (("SHA256", "sha256"), ("SHA512", "sha512")):
        lines.append(f"{field_name}:")
        for name in names:
            data = (folder / name).read_bytes()
            lines.append(f" {hashlib.new(algorithm, data).hexdigest()} {len(data)} {name}")
    return "\n".join(lines) + "\n"


def make_apt_repo(site: Path, debs: Sequence[Path], arch: str, key: SigningKey | None) -> Path:
    """Lay out NVIDIA's flat apt repository for `debs` under `site` and return its folder."""
    folder = site / "stable" / "deb" / arch
    folder.mkdir(parents=True, exist_ok=True)
    copies = []
    for deb in debs:
        copies.append(folder / deb.name)
        shutil.copyfile(deb, copies[-1])
    packages = write_packages_index(folder, copies)
    with gzip.open(folder / "Packages.gz", "wb") as handle:
        handle.write(packages.read_bytes())
    if key is not None:
        release = folder / "Release"
        release.write_text(release_text(folder, ["Packages", "Packages.gz"]))
        clearsign(key, release, folder / "InRelease")
    return folder


def make_yum_repo(site: Path, rpms: Sequence[Path], arch: str, key: SigningKey | None) -> Path:
    """Lay out NVIDIA's yum repository for `rpms` with createrepo_c and return its folder."""
    folder = site / "stable" / "rpm" / arch
    folder.mkdir(parents=True, exist_ok=True)
    for rpm in rpms:
        shutil.copyfile(rpm, folder / rpm.name)
    subprocess.run(["createrepo_c", "--quiet", str(folder)], check=True, capture_output=True,
                   timeout=300)
    if key is not None:
        repomd = folder / "repodata" / "repomd.xml"
        detach_sign(key, repomd, repomd.with_name("repomd.xml.asc"))
    return folder


def docker_tarball_bytes(binary: Path, folder: str = "docker",
                         names: Sequence[str] = DOCKER_BINARIES) -> bytes:
    """Return a .tgz with `binary` copied under each of `names` in `folder`/, as Docker's."""
    buffer = io.BytesIO()
    data = binary.read_bytes()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        directory = tarfile.TarInfo(folder)
        directory.type = tarfile.DIRTYPE
        directory.mode = 0o755
        tar.addfile(directory)
        for name in names:
            info = tarfile.TarInfo(f"{folder}/{name}")
            info.size = len(data)
            info.mode = 0o755
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def make_docker_site(site: Path, version: str, arch: str, tarball: bytes | Path) -> Path:
    """Put docker-<version>.tgz in Docker's static layout under `site` and return its path."""
    target = site / "linux" / "static" / "stable" / arch / f"docker-{version}.tgz"
    target.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(tarball, Path):
        shutil.copyfile(tarball, target)
    else:
        target.write_bytes(tarball)
    return target


@dataclass
class Faults:
    """Faults the server injects, by URL path."""

    # path -> bytes sent before the connection is dropped, for every GET of that path
    drop_after: dict[str, int] = field(default_factory=dict)
    # path -> bytes sent before the connection is dropped, for the next GET of that path only
    drop_once: dict[str, int] = field(default_factory=dict)
    # path -> HTTP status sent instead of the file
    status: dict[str, int] = field(default_factory=dict)


class SiteServer:
    """A threaded HTTP/1.1 server on 127.0.0.1 serving one folder, with Range support."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.faults = Faults()
        self.requests: list[tuple[str, str, str]] = []  # (method, path, Range header or "")
        self._lock = threading.Lock()
        handler = _handler_for(self)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        port = self._server.server_address[1]
        return f"http://127.0.0.1:{port}"

    def gets(self, path_end: str) -> list[str]:
        """Return the Range header of each GET whose path ends with `path_end`."""
        with self._lock:
            return [ranged for method, path, ranged in self.requests
                    if method == "GET" and path.endswith(path_end)]

    def got_paths(self) -> set[str]:
        with self._lock:
            return {path for method, path, _ in self.requests if method == "GET"}

    def record(self, method: str, path: str, ranged: str) -> None:
        with self._lock:
            self.requests.append((method, path, ranged))

    def __enter__(self) -> SiteServer:  # noqa: PYI034
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)


def _handler_for(site: SiteServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass  # keep test output clean; SiteServer.requests records every request

        def do_HEAD(self) -> None:
            self._answer(send_body=False)

        def do_GET(self) -> None:
            self._answer(send_body=True)

        def _answer(self, *, send_body: bool) -> None:
            path = self.path.split("?", 1)[0]
            ranged = self.headers.get("Range", "")
            site.record(self.command, path, ranged)
            if path in site.faults.status:
                self._send_empty(site.faults.status[path])
                return
            file = (site.root / path.lstrip("/")).resolve()
            if not file.is_relative_to(site.root) or not file.is_file():
                self._send_empty(404)
                return

            data = file.read_bytes()
            start = 0
            if ranged.startswith("bytes=") and ranged.endswith("-"):
                start = int(ranged[len("bytes="):-1])
                if start >= len(data):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(data)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            else:
                self.send_response(200)
            body = data[start:]
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Accept-Ranges", "bytes")
            self.end_headers()
            if not send_body:
                return

            limit = site.faults.drop_once.pop(path, None) or site.faults.drop_after.get(path)
            if limit is not None and limit < len(body):
                self.wfile.write(body[:limit])
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(2)  # socket.SHUT_RDWR: the client sees a cut transfer
                return
            self.wfile.write(body)

        def _send_empty(self, status: int) -> None:
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

    return Handler


@dataclass(frozen=True)
class Sites:
    """The two stand-in sites' folders and the keys of the test."""

    docker: Path
    nvidia: Path
    key: SigningKey  # signs the NVIDIA site
    other_key: SigningKey  # signs nothing there, for tests of a wrong key


@contextmanager
def standin_sites(root: Path, arch: str, docker_version: str,
                  docker_tarball: Path | None = None) -> Iterator[Sites]:
    """Build both stand-in sites under `root`: Docker's and NVIDIA's (signed, 1.17.1 and 1.17.2).

    The Docker tarball is `docker_tarball`, or copies of /bin/true under Docker's names. The yum
    side is there only where rpmbuild and createrepo_c are.
    """
    with signing_key(root / "key") as key, signing_key(root / "other", "someone else") as other:
        docker = root / "docker-site"
        tarball = docker_tarball or docker_tarball_bytes(Path("/bin/true"))
        make_docker_site(docker, docker_version, arch, tarball)
        rootless = docker / "linux" / "static" / "stable" / arch / \
            f"docker-rootless-extras-{docker_version}.tgz"
        rootless.write_bytes(docker_tarball_bytes(
            Path("/bin/true"), "docker-rootless-extras", ("rootlesskit", "dockerd-rootless.sh")))

        nvidia = root / "nvidia-site"
        debs = build_standin_debs(root / "debs", version="1.17.1-1", arch=arch)
        debs += build_standin_debs(root / "debs", version="1.17.2-1", arch=arch)
        make_apt_repo(nvidia, debs, deb_arch(arch), key)
        if shutil.which("rpmbuild") and shutil.which("createrepo_c"):
            rpms = build_standin_rpms(root / "rpms", version="1.17.2-1", arch=arch)
            make_yum_repo(nvidia, rpms, rpm_arch(arch), key)
        yield Sites(docker, nvidia, key, other)
