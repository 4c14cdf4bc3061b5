"""Planned actions and their outcomes: what a step would change, and what it did."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class Action:
    """One thing a step would change on a host, or the reason it need not.

    `apply` is None when the host is already as wanted; `reason` then gives why.
    """

    target: str
    change: str
    reason: str
    apply: Callable[[], object] | None = None

    @property
    def needed(self) -> bool:
        return self.apply is not None


def unchanged(target: str, reason: str) -> Action:
    """Return an action that changes nothing, for the record."""
    return Action(target=target, change="none", reason=reason)


@dataclass
class Outcome:
    """The result of one action: changed, unchanged, or only planned."""

    target: str
    status: str
    change: str
    reason: str

    @property
    def changed(self) -> bool:
        return self.status == "changed"


@dataclass
class Check:
    """One verification: passed, failed, or skipped with the reason."""

    name: str
    status: str
    detail: str

    @property
    def failed(self) -> bool:
        return self.status == "failed"


def passed(name: str, detail: str) -> Check:
    return Check(name, "passed", detail)


def failed(name: str, detail: str) -> Check:
    return Check(name, "failed", detail)


def skipped(name: str, detail: str) -> Check:
    return Check(name, "skipped", detail)


def check(name: str, ok: bool, detail: str) -> Check:
    return Check(name, "passed" if ok else "failed", detail)
