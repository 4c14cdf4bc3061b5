"""The control node's record of host file hashes, keyed by each file's stat signature."""

from __future__ import annotations

import pytest

from gpurun.host import hash_cache

LOGIN = "root@192.0.2.7:22"
SIGNATURE = "75181184 1597577 1796415327.676307130 1796415327.722220158"


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GPURUN_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(hash_cache, "_loaded", {})


def test_hash_found_with_same_signature():
    hash_cache.remember(LOGIN, "/usr/bin/dockerd", SIGNATURE, "ab" * 32)
    assert hash_cache.lookup(LOGIN, "/usr/bin/dockerd", SIGNATURE) == "ab" * 32


def test_changed_signature_misses():
    hash_cache.remember(LOGIN, "/usr/bin/dockerd", SIGNATURE, "ab" * 32)
    rewritten = SIGNATURE.replace(".722220158", ".722220159")
    assert hash_cache.lookup(LOGIN, "/usr/bin/dockerd", rewritten) is None


def test_other_login_misses():
    hash_cache.remember(LOGIN, "/usr/bin/dockerd", SIGNATURE, "ab" * 32)
    assert hash_cache.lookup("root@192.0.2.8:22", "/usr/bin/dockerd", SIGNATURE) is None


def test_kept_across_processes(monkeypatch):
    hash_cache.remember(LOGIN, "/usr/bin/dockerd", SIGNATURE, "ab" * 32)
    monkeypatch.setattr(hash_cache, "_loaded", {})  # as a new process starts
    assert hash_cache.lookup(LOGIN, "/usr/bin/dockerd", SIGNATURE) == "ab" * 32
