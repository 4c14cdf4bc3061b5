"""Signature checks with gpgv against keys made for the test."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from repo_sites import SigningKey, clearsign, detach_sign, signing_key

from gpurun.bundle.signatures import keyring_bytes, verify_cleartext, verify_detached
from gpurun.errors import BundleError

pytestmark = pytest.mark.skipif(
    shutil.which("gpg") is None or shutil.which("gpgv") is None,
    reason="signature tests need gpg and gpgv (Debian packages gnupg and gpgv)",
)

RELEASE = "Origin: test\nSHA256:\n 00 1 Packages\n"


@pytest.fixture(scope="module")
def key(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SigningKey]:
    with signing_key(tmp_path_factory.mktemp("key")) as made:
        yield made


@pytest.fixture(scope="module")
def other_key(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SigningKey]:
    with signing_key(tmp_path_factory.mktemp("other"), name="someone else") as made:
        yield made


def signed_release(key: SigningKey, folder: Path) -> Path:
    release = folder / "Release"
    release.write_text(RELEASE)
    clearsign(key, release, folder / "InRelease")
    return folder / "InRelease"


def test_cleartext_good_signature_returns_signed_text(key: SigningKey, tmp_path: Path) -> None:
    in_release = signed_release(key, tmp_path)
    signature = verify_cleartext(in_release, key.public_key)
    assert signature.fingerprint == key.fingerprint
    assert signature.signed_text.decode() == RELEASE
    assert "gpurun test repository" in signature.signer


def test_cleartext_ignores_text_outside_signature(key: SigningKey, tmp_path: Path) -> None:
    in_release = signed_release(key, tmp_path)
    text = in_release.read_text()
    in_release.write_text("SHA256:\n ff 9 Packages\n\n" + text)
    signature = verify_cleartext(in_release, key.public_key)
    assert b"ff 9 Packages" not in signature.signed_text
    assert signature.signed_text.decode() == RELEASE


def test_cleartext_tampered_text_rejected(key: SigningKey, tmp_path: Path) -> None:
    in_release = signed_release(key, tmp_path)
    in_release.write_text(in_release.read_text().replace(" 00 1 Packages", " 01 1 Packages"))
    with pytest.raises(BundleError, match="signature of .*InRelease is invalid"):
        verify_cleartext(in_release, key.public_key)


def test_cleartext_other_key_rejected(
    key: SigningKey, other_key: SigningKey, tmp_path: Path
) -> None:
    in_release = signed_release(key, tmp_path)
    with pytest.raises(BundleError, match="not made by the key"):
        verify_cleartext(in_release, other_key.public_key)


def test_detached_good_and_tampered(key: SigningKey, tmp_path: Path) -> None:
    data = tmp_path / "repomd.xml"
    data.write_text("<repomd/>\n")
    detach_sign(key, data, tmp_path / "repomd.xml.asc")
    assert verify_detached(tmp_path / "repomd.xml.asc", data, key.public_key).fingerprint \
        == key.fingerprint

    data.write_text("<repomd>changed</repomd>\n")
    with pytest.raises(BundleError, match="invalid or not made by the key"):
        verify_detached(tmp_path / "repomd.xml.asc", data, key.public_key)


def test_binary_keyring_accepted(key: SigningKey, tmp_path: Path) -> None:
    binary = tmp_path / "key.gpg"
    exported = subprocess.run(["gpg", "--batch", "--homedir", str(key.home), "--export",
                               key.fingerprint], capture_output=True, check=True)
    binary.write_bytes(exported.stdout)
    assert keyring_bytes(binary) == exported.stdout
    assert keyring_bytes(key.public_key) == exported.stdout
    in_release = signed_release(key, tmp_path)
    assert verify_cleartext(in_release, binary).fingerprint == key.fingerprint


def test_non_key_file_rejected(tmp_path: Path) -> None:
    not_a_key = tmp_path / "gpgkey"
    not_a_key.write_text("<html>404 page</html>\n")
    with pytest.raises(BundleError, match="is not an OpenPGP public key"):
        keyring_bytes(not_a_key)


def test_damaged_armor_rejected(key: SigningKey, tmp_path: Path) -> None:
    damaged = tmp_path / "damaged.asc"
    lines = key.public_key.read_text().splitlines()
    lines[3] = lines[3][:10] + "!!" + lines[3][12:]
    damaged.write_text("\n".join(lines) + "\n")
    with pytest.raises(BundleError, match="contains a damaged ASCII-armored key"):
        keyring_bytes(damaged)
