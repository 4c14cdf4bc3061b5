"""Preflight findings: ok, warning or blocking, each with what to do."""

from __future__ import annotations

from dataclasses import dataclass

OK, WARNING, BLOCKING = "ok", "warning", "blocking"


@dataclass(frozen=True)
class Finding:
    level: str
    check: str
    detail: str
    next_step: str = ""


def ok(name: str, detail: str) -> Finding:
    return Finding(OK, name, detail)


def warning(name: str, detail: str, next_step: str) -> Finding:
    return Finding(WARNING, name, detail, next_step)


def blocking(name: str, detail: str, next_step: str) -> Finding:
    return Finding(BLOCKING, name, detail, next_step)
