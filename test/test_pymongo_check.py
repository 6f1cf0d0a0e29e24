"""greenmotor refuses, at import, a PyMongo it was not tested with, or one whose hooks moved."""

from __future__ import annotations

import configparser
import os
import subprocess
import sys
from pathlib import Path

import pymongo
import pytest
from pymongo import network_layer
from pymongo.synchronous.pool import Pool

from greenmotor.pymongo_check import (
    SUPPORTED,
    SUPPORTED_RANGE,
    UNTESTED_ENV,
    check_pymongo,
    hook_problems,
    installed_minor,
)

SETUP_CFG = Path(__file__).resolve().parent.parent / "setup.cfg"


def test_supported_pymongo_passes():
    assert installed_minor() in SUPPORTED
    assert hook_problems() == []
    check_pymongo()


def test_setup_cfg_requires_exactly_the_supported_minors():
    config = configparser.ConfigParser()
    config.read(SETUP_CFG)
    requires = config["options"]["install_requires"].split()
    assert [r for r in requires if r.startswith("pymongo")] == [SUPPORTED_RANGE]
    oldest, newest = min(SUPPORTED), max(SUPPORTED)
    assert SUPPORTED_RANGE == f"pymongo>={oldest[0]}.{oldest[1]},<{newest[0]}.{newest[1] + 1}"
    # Every minor in between is supported too: the range has no holes.
    assert [m[1] for m in sorted(SUPPORTED)] == list(range(oldest[1], newest[1] + 1))


def test_other_version_fails_naming_the_range(monkeypatch):
    monkeypatch.setattr(pymongo, "version_tuple", (4, 21, 0))
    monkeypatch.setattr(pymongo, "version", "4.21.0")
    monkeypatch.delenv(UNTESTED_ENV, raising=False)
    with pytest.raises(ImportError) as info:
        check_pymongo()
    message = str(info.value)
    assert "PyMongo 4.21.0 is installed" in message and SUPPORTED_RANGE in message
    assert f"pip install '{SUPPORTED_RANGE}'" in message


def test_untested_minor_imports_on_request_if_the_newest_hooks_hold(monkeypatch):
    monkeypatch.setattr(pymongo, "version_tuple", (4, 21, 0))
    monkeypatch.setattr(pymongo, "version", "4.21.0")
    monkeypatch.setenv(UNTESTED_ENV, "1")
    if installed_minor() in SUPPORTED:  # pragma: no cover - the patch above makes it 4.21
        pytest.fail("version_tuple patch did not take")
    if hook_problems(SUPPORTED[max(SUPPORTED)]):
        with pytest.raises(ImportError):
            check_pymongo()
    else:
        check_pymongo()
    monkeypatch.delattr(network_layer, "receive_data")
    with pytest.raises(ImportError, match="pymongo.network_layer:receive_data is missing"):
        check_pymongo()


def test_the_table_tells_the_supported_minors_apart():
    """Each minor's line names places that only it has: checked against another, they fail."""
    for minor, hooks in SUPPORTED.items():
        if minor != installed_minor():
            assert hook_problems(hooks), f"the {minor} line holds on {pymongo.version} too"


def test_missing_hook_fails_naming_it(monkeypatch):
    from pymongo import pool_shared

    monkeypatch.delattr(pool_shared, "_set_keepalive_times")
    with pytest.raises(ImportError, match="pymongo.pool_shared:_set_keepalive_times is missing"):
        check_pymongo()


def test_hook_whose_code_stops_looking_a_name_up_fails_naming_it(monkeypatch):
    def connect(self, handler=None):  # a refactored connect that builds sockets elsewhere
        return None

    monkeypatch.setattr(Pool, "connect", connect)
    with pytest.raises(
        ImportError,
        match="Pool.connect no longer looks up Connection, _configured_socket_interface",
    ):
        check_pymongo()


def test_replaced_function_whose_parameters_change_fails_naming_them(monkeypatch):
    def receive_data(conn, length):
        raise AssertionError("not called")

    monkeypatch.setattr(network_layer, "receive_data", receive_data)
    with pytest.raises(
        ImportError,
        match=r"receive_data now takes \(conn, length\), not \(conn, length, deadline\)",
    ):
        check_pymongo()


@pytest.mark.slow  # fresh interpreters
def test_import_fails_cleanly_in_a_fresh_interpreter():
    code = "import pymongo; pymongo.version_tuple = (5, 0, 0); import greenmotor"
    env = {k: v for k, v in os.environ.items() if k != UNTESTED_ENV}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert result.returncode == 1
    assert f"ImportError: greenmotor supports {SUPPORTED_RANGE}, but: PyMongo" in result.stderr


@pytest.mark.slow  # fresh interpreters
def test_the_matrix_installs_every_floor_and_minor_setup_cfg_claims():
    """tools/run-matrix derives its cells from setup.cfg: each floor and minor gets one."""
    config = configparser.ConfigParser()
    config.read(SETUP_CFG)
    requires = config["options"]["install_requires"].split()
    floors = [r.replace(">=", "==") for r in requires if not r.startswith("pymongo")]
    result = subprocess.run(
        [sys.executable, str(SETUP_CFG.parent / "tools" / "run-matrix"), "--list"],
        capture_output=True,
        text=True,
        check=True,
    )
    cells = result.stdout.splitlines()
    assert cells[0].startswith("main ")  # tools/run-tests, newest releases
    oldest = [line for line in cells if all(f in line.split() for f in floors)]
    assert oldest, f"no cell installs {floors}:\n{result.stdout}"
    for minor in sorted(SUPPORTED)[:-1]:  # the newest minor is the main cell's
        pin = f"pymongo=={minor[0]}.{minor[1]}.*"
        assert any(pin in line.split() and "conformance" in line for line in cells), pin
