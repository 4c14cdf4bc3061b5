"""Checking repository signatures offline against the vendor's public key, with gpgv.

gpgv (Debian package gpgv, part of GnuPG) is the verifier apt itself has long used: it checks a
signature against a keyring file and nothing else, with no trust database, key server or agent.
gpgv reads only binary keyrings, so an ASCII-armored key file (NVIDIA publishes its key that
way) is converted first. A cleartext-signed InRelease is verified and its signed text taken
from gpgv's output, never from the raw file, so unsigned text around the signature is ignored.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from gpurun.errors import BundleError

logger = logging.getLogger("gpurun.bundle")

GPGV_HINT = "install gpgv (Debian and Ubuntu: apt-get install gpgv; RHEL: dnf install gnupg2)"

_ARMOR_BLOCK = re.compile(
    r"-----BEGIN PGP PUBLIC KEY BLOCK-----\r?\n(.*?)-----END PGP PUBLIC KEY BLOCK-----",
    re.DOTALL,
)
_GPGV_TIMEOUT_S = 60


@dataclass(frozen=True)
class Signature:
    """A good signature that gpgv accepted."""

    fingerprint: str  # of the primary key that made it
    signer: str  # the user id gpgv printed
    signed_text: bytes  # for a cleartext signature, the signed text; else the checked data


def keyring_bytes(key_file: Path) -> bytes:
    """Return the binary OpenPGP keyring in `key_file`, converting ASCII armor if needed.

    Raises BundleError naming the file when it contains neither.
    """
    data = _read(key_file, "public key file")
    if data and data[0] & 0x80:
        return data  # binary OpenPGP packets start with a byte whose high bit is set

    text = data.decode("ascii", errors="replace")
    blocks = _ARMOR_BLOCK.findall(text)
    if not blocks:
        raise BundleError(
            f"{key_file} is not an OpenPGP public key (neither binary nor an ASCII-armored "
            "PUBLIC KEY BLOCK)\n  next step: pass the vendor's public key file, e.g. NVIDIA's "
            "gpgkey from the repository's web site"
        )
    return b"".join(_dearmor(block, key_file) for block in blocks)


def verify_cleartext(signed_file: Path, key_file: Path) -> Signature:
    """Check a cleartext-signed file (apt InRelease) and return the signed text."""
    with tempfile.TemporaryDirectory(prefix="gpurun-gpgv-") as work:
        output = Path(work) / "signed-text"
        status = _run_gpgv(Path(work), key_file, ["--output", str(output), str(signed_file)],
                           signed_file)
        return _signature(status, output.read_bytes(), signed_file, key_file)


def verify_detached(signature_file: Path, data_file: Path, key_file: Path) -> Signature:
    """Check a detached signature (yum repomd.xml.asc) over `data_file`."""
    with tempfile.TemporaryDirectory(prefix="gpurun-gpgv-") as work:
        status = _run_gpgv(Path(work), key_file, [str(signature_file), str(data_file)],
                           data_file)
        return _signature(status, data_file.read_bytes(), data_file, key_file)


def _run_gpgv(work: Path, key_file: Path, arguments: list[str], checked: Path) -> str:
    gpgv = shutil.which("gpgv")
    if gpgv is None:
        raise BundleError(f"gpgv not found on PATH, so the signature of {checked} cannot be "
                          f"checked\n  next step: {GPGV_HINT}")
    keyring = work / "keyring.gpg"
    keyring.write_bytes(keyring_bytes(key_file))
    home = work / "home"
    home.mkdir(mode=0o700)

    argv = [gpgv, "--homedir", str(home), "--keyring", str(keyring), "--status-fd", "1",
            *arguments]
    logger.debug("running %s", " ".join(argv))
    try:
        result = subprocess.run(argv, capture_output=True, text=True, check=False,
                                timeout=_GPGV_TIMEOUT_S)
    except subprocess.TimeoutExpired as error:
        raise BundleError(f"gpgv timed out after {_GPGV_TIMEOUT_S} s checking {checked}"
                          "\n  next step: run the check again") from error
    if result.returncode != 0:
        messages = result.stderr.strip() or result.stdout.strip()
        raise BundleError(
            f"the signature of {checked} is invalid or not made by the key in {key_file} "
            f"(gpgv exit code {result.returncode}):\n{messages}\n  next step: check that "
            "the key file is the vendor's current key and that the mirror serves the "
            "vendor's files unchanged"
        )
    return result.stdout


def _signature(status: str, signed_text: bytes, checked: Path, key_file: Path) -> Signature:
    """Read gpgv's status lines: one GOODSIG and its VALIDSIG, and no bad or expired signature."""
    good = valid = ""
    for line in status.splitlines():
        words = line.split()
        if len(words) < 2 or words[0] != "[GNUPG:]":
            continue
        keyword = words[1]
        if keyword in ("BADSIG", "EXPKEYSIG", "REVKEYSIG", "EXPSIG", "ERRSIG"):
            raise BundleError(
                f"gpgv reported {keyword} for {checked} with the key in {key_file}"
                "\n  next step: get the vendor's current public key and build the bundle again"
            )
        if keyword == "GOODSIG":
            good = " ".join(words[3:])
        if keyword == "VALIDSIG":
            valid = words[-1]
    if not good or not valid:
        raise BundleError(f"gpgv accepted {checked} but reported no good signature:\n{status}"
                          "\n  next step: check the file and the key by hand with gpgv")
    logger.info("good signature on %s by %s (%s)", checked.name, good, valid)
    return Signature(fingerprint=valid, signer=good, signed_text=signed_text)


def _dearmor(block: str, key_file: Path) -> bytes:
    lines = block.splitlines()
    # Armor headers (Version:, Comment:) end at the first empty line.
    if any(":" in line for line in lines[:1]) and "" in lines:
        lines = lines[lines.index("") + 1:]
    body = "".join(line.strip() for line in lines
                   if line.strip() and not line.startswith("="))
    try:
        return base64.b64decode(body, validate=True)
    except binascii.Error as error:
        raise BundleError(f"{key_file} contains a damaged ASCII-armored key ({error})"
                          "\n  next step: download the vendor's key file again") from error


def _read(path: Path, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as error:
        raise BundleError(f"cannot read the {what} {path}: {error.strerror}"
                          "\n  next step: check the path") from error
