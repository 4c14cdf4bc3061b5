"""Downloading files over HTTP(S) with timeouts, retries, resume and a progress bar.

requests with urllib3's Retry repeats failed connections and 5xx responses. A transfer that breaks
off midway leaves `<file>.part`, and the next attempt (in this run or a later one) asks the server
for the rest with a Range request. A file is moved to its final name only after its size and
digest match, so a file under its final name is always complete.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests
import urllib3
from requests.adapters import HTTPAdapter
from tqdm.auto import tqdm
from urllib3.util.retry import Retry

import gpurun
from gpurun.errors import BundleError

logger = logging.getLogger("gpurun.bundle")

CONNECT_TIMEOUT_S = 15.0
READ_TIMEOUT_S = 60.0  # longest wait for the next bytes of a response
ATTEMPTS = 5  # per file, for transfers that break off; each one resumes
_CHUNK_SIZE = 256 * 1024
_PART_SUFFIX = ".part"


@dataclass(frozen=True)
class Expected:
    """The size and digest a downloaded file must match, each of them optional."""

    size: int | None = None
    algorithm: str | None = None  # hashlib name, sha256 or sha512
    digest: str | None = None


@dataclass(frozen=True)
class Fetched:
    """A file now on disk under its final name."""

    path: Path
    sha256: str
    size: int
    downloaded: bool  # False when the file was already there and matched


class Downloader:
    """One HTTP session with retries, used for every file of a bundle build."""

    def __init__(self, *, progress: bool = True, attempts: int = ATTEMPTS,
                 backoff_s: float = 0.5) -> None:
        self.progress = progress
        self.attempts = attempts
        self.backoff_s = backoff_s
        self.fetched: list[Fetched] = []  # every file fetch() returned, in order
        self.session = requests.Session()
        self.session.headers["User-Agent"] = f"gpurun/{gpurun.__version__}"
        retry = Retry(
            total=attempts, connect=attempts, read=attempts, status=attempts,
            backoff_factor=backoff_s, status_forcelist=(429, 500, 502, 503, 504),
            allowed_methods=("GET", "HEAD"), raise_on_status=False,
        )
        adapter = HTTPAdapter(max_retries=retry)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)

    def close(self) -> None:
        self.session.close()

    def fetch(self, url: str, target: Path, expected: Expected | None = None) -> Fetched:
        """Download `url` to `target` unless `target` already matches `expected`.

        Without an expected digest an existing `target` is kept as it is, because only
        complete files ever get their final name. Raises BundleError naming the URL when the
        server fails, the size or digest differs, or every attempt broke off.
        """
        expected = expected or Expected()
        if target.is_file():
            problem = check_file(target, expected)
            if problem is None:
                logger.info("%s is already there and matches, not downloading it again",
                            target.name)
                return self._record(Fetched(target, sha256_of(target), target.stat().st_size,
                                            False))
            logger.warning("%s is there but %s; downloading it again", target, problem)
            target.unlink()

        target.parent.mkdir(parents=True, exist_ok=True)
        part = target.with_name(target.name + _PART_SUFFIX)
        last_error = ""
        mismatches: set[str] = set()
        for attempt in range(1, self.attempts + 1):
            try:
                self._transfer(url, part)
            except (requests.ConnectionError, requests.Timeout,
                    requests.exceptions.ChunkedEncodingError, urllib3.exceptions.HTTPError) \
                    as error:
                last_error = str(error)
                have = part.stat().st_size if part.exists() else 0
                logger.warning("download of %s broke off at %d bytes (attempt %d of %d): %s",
                               url, have, attempt, self.attempts, error)
                time.sleep(self.backoff_s * attempt)
                continue

            problem = check_file(part, expected)
            if problem is None:
                os.replace(part, target)
                return self._record(Fetched(target, sha256_of(target), target.stat().st_size,
                                            True))
            part.unlink()
            last_error = problem
            logger.warning("downloaded %s but %s (attempt %d of %d)", url, problem, attempt,
                           self.attempts)
            if problem in mismatches:
                break  # the server sends the same wrong file every time
            mismatches.add(problem)

        raise BundleError(
            f"download of {url} failed after {attempt} attempts: {last_error}"
            f"\n  next step: check the mirror URL and the network, then run the build again; "
            f"it resumes from {part.name}"
        )

    def fetch_bytes(self, url: str) -> bytes:
        """Return the body of a small file (an index), raising BundleError on any failure."""
        try:
            response = self.session.get(url, timeout=(CONNECT_TIMEOUT_S, READ_TIMEOUT_S))
        except requests.RequestException as error:
            raise BundleError(f"cannot download {url}: {error}"
                              "\n  next step: check the mirror URL and the network") from error
        if response.status_code != 200:
            raise _status_error(url, response)
        return response.content

    def exists(self, url: str) -> bool:
        """Return True when HEAD of `url` returns 200, False on 404 or 403."""
        try:
            response = self.session.head(url, timeout=(CONNECT_TIMEOUT_S, READ_TIMEOUT_S),
                                         allow_redirects=True)
        except requests.RequestException as error:
            raise BundleError(f"cannot reach {url}: {error}"
                              "\n  next step: check the mirror URL and the network") from error
        if response.status_code in (403, 404):
            return False
        if response.status_code != 200:
            raise _status_error(url, response)
        return True

    def _record(self, fetched: Fetched) -> Fetched:
        self.fetched.append(fetched)
        return fetched

    def _transfer(self, url: str, part: Path) -> None:
        """Append the rest of `url` to `part`, starting over when the server ignores Range."""
        offset = part.stat().st_size if part.exists() else 0
        # identity: the bytes on the wire are the file's, so Range offsets count file bytes.
        headers = {"Accept-Encoding": "identity"}
        if offset:
            headers["Range"] = f"bytes={offset}-"
        with self.session.get(url, headers=headers, stream=True,
                              timeout=(CONNECT_TIMEOUT_S, READ_TIMEOUT_S)) as response:
            if response.status_code == 416 and offset:
                # The part file is as long as the resource or longer: check it as it is.
                return
            if response.status_code == 200 and offset:
                logger.info("%s does not resume (status 200 for a Range request), "
                            "downloading from the start", url)
                offset = 0
            elif response.status_code not in (200, 206):
                raise _status_error(url, response)

            length = response.headers.get("Content-Length")
            total = offset + int(length) if length and length.isdigit() else None
            mode = "ab" if offset else "wb"
            with open(part, mode) as handle, self._bar(part.name, total, offset) as bar:
                # read1 returns whatever has arrived, so the bytes received before a broken
                # connection reach the file; iter_content would drop a partly filled chunk.
                while chunk := response.raw.read1(_CHUNK_SIZE):
                    handle.write(chunk)
                    bar.update(len(chunk))

    @contextmanager
    def _bar(self, name: str, total: int | None, initial: int) -> Iterator[tqdm]:
        bar = tqdm(total=total, initial=initial, unit="B", unit_scale=True, unit_divisor=1024,
                   desc=name.removesuffix(_PART_SUFFIX), disable=not self.progress, leave=True)
        try:
            yield bar
        finally:
            bar.close()


def check_file(path: Path, expected: Expected) -> str | None:
    """Return how `path` differs from `expected`, or None when it matches."""
    size = path.stat().st_size
    if expected.size is not None and size != expected.size:
        return f"its size is {size} bytes, expected {expected.size}"
    if expected.algorithm and expected.digest:
        digest = _digest(path, expected.algorithm)
        if digest != expected.digest.lower():
            return f"its {expected.algorithm.upper()} is {digest}, expected {expected.digest}"
    return None


def sha256_of(path: Path) -> str:
    return _digest(path, "sha256")


def _digest(path: Path, algorithm: str) -> str:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK_SIZE):
            digest.update(chunk)
    return digest.hexdigest()


def _status_error(url: str, response: requests.Response) -> BundleError:
    if response.status_code == 404:
        hint = "check the version, the architecture and the mirror URL"
    else:
        hint = "check the mirror, then run the build again"
    return BundleError(f"{url} returned HTTP {response.status_code} {response.reason}"
                       f"\n  next step: {hint}")
