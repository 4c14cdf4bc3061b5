"""Package version ordering and relation checks, as dpkg and rpm define them.

Debian versions are compared by python-debian's Version (dpkg's algorithm, epoch:upstream-revision).
RPM versions are compared here with rpm's rpmvercmp rules on [epoch:]version-release, because no
maintained Python package offers them without the C library of rpm.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any

from debian.debian_support import Version as DebianVersion

from gpurun.errors import BundleError

# Relation operators in gpurun's own spelling. Debian writes << and >> for < and >.
OPERATORS = ("<", "<=", "=", ">=", ">")
_DEB_OPERATORS = {"<<": "<", "<=": "<=", "=": "=", ">=": ">=", ">>": ">", "<": "<=", ">": ">="}
_RPM_FLAGS = {"LT": "<", "LE": "<=", "EQ": "=", "GE": ">=", "GT": ">"}

_ALPHA = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_DIGITS = frozenset("0123456789")
_PRE_RELEASE = re.compile(r"(~|(^|[.\-_])rc\.?\d*($|[.\-_]))")


def deb_operator(text: str) -> str:
    """Map a Debian relation operator to gpurun's spelling.

    The obsolete `<` and `>` mean `<=` and `>=` in Debian policy, so they map that way.
    """
    return _DEB_OPERATORS[text]


def rpm_operator(flags: str) -> str:
    """Map the `flags` attribute of an rpm requirement (GE, EQ, ...) to gpurun's spelling."""
    try:
        return _RPM_FLAGS[flags]
    except KeyError:
        raise BundleError(f"unknown rpm relation flags {flags!r}, expected one of "
                          f"{', '.join(_RPM_FLAGS)}") from None


def compare(package_format: str, left: str, right: str) -> int:
    """Return -1, 0 or 1 as `left` sorts before, equal to or after `right` in `package_format`."""
    if package_format == "deb":
        a, b = DebianVersion(left), DebianVersion(right)
        return (a > b) - (a < b)
    if package_format == "rpm":
        return compare_rpm_evr(left, right)
    raise BundleError(f"unknown package format {package_format!r}, expected deb or rpm")


def satisfies(package_format: str, version: str, operator: str, bound: str) -> bool:
    """Return True when `version` meets `operator bound` (operator in gpurun's spelling)."""
    if package_format == "rpm" and "-" not in _strip_epoch(bound):
        # rpm ignores the release when the requirement names none: >= 1.17.2 matches 1.17.2-1.
        version = _rpm_without_release(version)
    order = compare(package_format, version, bound)
    return {
        "<": order < 0, "<=": order <= 0, "=": order == 0, ">=": order >= 0, ">": order > 0,
    }[operator]


def sort_key(package_format: str) -> Callable[[str], Any]:
    """Return a key function that sorts version strings of `package_format` oldest first."""
    return functools.cmp_to_key(functools.partial(compare, package_format))


def is_pre_release(version: str) -> bool:
    """Return True for versions that a stable channel should not offer as "latest".

    Debian marks pre-releases with `~` (1.18.0~rc.1-1); NVIDIA's rpm versions carry `rc` as a
    part of the release (1.18.0-0.1.rc.1).
    """
    return bool(_PRE_RELEASE.search(version))


def upstream_of(version: str) -> str:
    """Return the part of a package version without epoch and revision (1:1.17.2-1 -> 1.17.2)."""
    without_epoch = _strip_epoch(version)
    return without_epoch.rsplit("-", 1)[0] if "-" in without_epoch else without_epoch


def compare_rpm_evr(left: str, right: str) -> int:
    """Compare two rpm [epoch:]version[-release] strings as rpm does."""
    left_epoch, left_version, left_release = _split_evr(left)
    right_epoch, right_version, right_release = _split_evr(right)
    if left_epoch != right_epoch:
        return -1 if left_epoch < right_epoch else 1
    order = rpmvercmp(left_version, right_version)
    if order != 0 or not left_release or not right_release:
        return order
    return rpmvercmp(left_release, right_release)


def rpmvercmp(left: str, right: str) -> int:
    """Compare two rpm version (or release) strings with the rules of rpm's rpmvercmp.

    Both are split into runs of digits and runs of letters, other characters only separate
    them. Runs compare numerically or alphabetically, a digit run is newer than a letter run,
    `~` sorts before anything (even the end) and `^` after the end but before anything else.
    """
    if left == right:
        return 0
    i = j = 0
    while i < len(left) or j < len(right):
        i = _skip_separators(left, i)
        j = _skip_separators(right, j)

        left_char = left[i] if i < len(left) else ""
        right_char = right[j] if j < len(right) else ""
        if "~" in (left_char, right_char):
            if left_char != "~":
                return 1
            if right_char != "~":
                return -1
            i, j = i + 1, j + 1
            continue
        if "^" in (left_char, right_char):
            if not left_char:
                return -1
            if not right_char:
                return 1
            if left_char != "^":
                return 1
            if right_char != "^":
                return -1
            i, j = i + 1, j + 1
            continue
        if not left_char or not right_char:
            break

        charset = _DIGITS if left_char in _DIGITS else _ALPHA
        left_run, i = _take_run(left, i, charset)
        right_run, j = _take_run(right, j, charset)
        if not right_run:
            # The runs are of different kinds: a number is newer than letters.
            return 1 if charset is _DIGITS else -1
        order = _compare_runs(left_run, right_run, numeric=charset is _DIGITS)
        if order != 0:
            return order

    if i >= len(left) and j >= len(right):
        return 0
    return -1 if i >= len(left) else 1


def _skip_separators(text: str, index: int) -> int:
    while index < len(text) and text[index] not in _ALPHA | _DIGITS and text[index] not in "~^":
        index += 1
    return index


def _take_run(text: str, index: int, charset: frozenset[str]) -> tuple[str, int]:
    start = index
    while index < len(text) and text[index] in charset:
        index += 1
    return text[start:index], index


def _compare_runs(left: str, right: str, *, numeric: bool) -> int:
    if numeric:
        left, right = left.lstrip("0"), right.lstrip("0")
        if len(left) != len(right):
            return -1 if len(left) < len(right) else 1
    return (left > right) - (left < right)


def _split_evr(text: str) -> tuple[int, str, str]:
    epoch = 0
    if ":" in text:
        epoch_text, text = text.split(":", 1)
        if not epoch_text.isdigit():
            raise BundleError(f"invalid rpm epoch in version {text!r}: expected digits")
        epoch = int(epoch_text)
    version, _, release = text.partition("-")
    return epoch, version, release


def _strip_epoch(version: str) -> str:
    return version.split(":", 1)[1] if ":" in version else version


def _rpm_without_release(version: str) -> str:
    epoch, plain, _ = _split_evr(version)
    return f"{epoch}:{plain}" if epoch else plain
