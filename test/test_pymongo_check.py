"""greenmotor refuses, at import, a PyMongo it was not tested with."""

from __future__ import annotations

import subprocess
import sys

import pymongo
import pytest

from greenmotor.pymongo_check import SUPPORTED_RANGE, check_pymongo


def test_supported_pymongo_passes():
    check_pymongo()


def test_other_version_fails_naming_the_range(monkeypatch):
    monkeypatch.setattr(pymongo, "version_tuple", (4, 21, 0))
    monkeypatch.setattr(pymongo, "version", "4.21.0")
    with pytest.raises(ImportError) as info:
        check_pymongo()
    message = str(info.value)
    assert "PyMongo 4.21.0 is installed" in message and SUPPORTED_RANGE in message


def test_missing_hook_fails_naming_it(monkeypatch):
    from pymongo import pool_shared

    monkeypatch.delattr(pool_shared, "_set_keepalive_times")
    with pytest.raises(ImportError, match="pymongo.pool_shared._set_keepalive_times is missing"):
        check_pymongo()


def test_import_fails_cleanly_in_a_fresh_interpreter():
    code = "import pymongo; pymongo.version_tuple = (5, 0, 0); import greenmotor"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 1
    assert "ImportError: greenmotor supports pymongo>=4.20,<4.21" in result.stderr
