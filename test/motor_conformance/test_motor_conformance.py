"""Fast checks of the Motor conformance machinery: the import redirect and reading results.

The conformance run itself (``run.py``) is slow and needs Motor's sdist; these need neither.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from support.conformance_common import (  # noqa: E402
    COLLECTION_ERROR,
    ModuleRun,
    Outcome,
    expand_collection_errors,
    read_junit,
)

REDIRECT_CHECK = """
import sys
import motor_redirect  # what pytest -p motor_redirect does first
import greenmotor, greenmotor.motor_tornado
import motor
from motor.motor_tornado import MotorClient
from motor import MotorCollection, core
import motor.core
from motor.frameworks.asyncio import max_workers

assert MotorClient is greenmotor.motor_tornado.MotorClient
assert motor.MotorClient is greenmotor.MotorClient and MotorCollection is greenmotor.MotorCollection
assert motor.version == greenmotor.version
assert sys.modules["motor.core"] is core and core.spawn is greenmotor.core.spawn
import greenmotor.session
core._WITH_TRANSACTION_RETRY_TIME_LIMIT = 0
assert greenmotor.session.WITH_TRANSACTION_TIME_LIMIT == 0
assert isinstance(max_workers, int)
try:
    import motor.metaprogramming
except ImportError as exc:
    assert "no counterpart" in str(exc), exc
else:
    raise AssertionError("motor.metaprogramming imported")
files = [str(getattr(module, "__file__", "")) for module in list(sys.modules.values())]
assert not [f for f in files if "site-packages/motor/" in f], "real Motor loaded"
print("ok")
"""


@pytest.mark.slow  # a fresh interpreter
def test_redirect_gives_greenmotor_modules_and_never_real_motor():
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE), str(HERE.parent.parent)]))
    result = subprocess.run(
        [sys.executable, "-c", REDIRECT_CHECK], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_a_module_that_fails_to_import_fails_each_test_the_reference_ran(tmp_path):
    xml = tmp_path / "results.xml"
    xml.write_text(textwrap.dedent("""\
        <testsuites><testsuite>
          <testcase classname="" name="test.tornado_tests.test_motor_web" time="0">
            <error message="collection failure">ImportError while importing test module
        E   ImportError: cannot import name '_hash_gridout'</error>
          </testcase>
          <testcase classname="test.tornado_tests.test_motor_basic.MotorTestBasic"
                    name="test_repr" time="0.5"/>
        </testsuite></testsuites>
        """))  # fmt: skip
    outcomes = read_junit(xml, package="test.tornado_tests", id_prefix="tornado_tests/")
    message = COLLECTION_ERROR + "ImportError: cannot import name '_hash_gridout'"
    assert outcomes == {
        "tornado_tests/test_motor_web.py": Outcome("failed", 0.0, message),
        "tornado_tests/test_motor_basic.py::MotorTestBasic::test_repr": Outcome("passed", 0.5),
    }
    reference = ModuleRun("tornado_tests", "reference", 1.0, {
        "tornado_tests/test_motor_web.py::GridFSHandlerTest::test_basic": Outcome("passed", 1.0),
        "tornado_tests/test_motor_web.py::GridFSHandlerTest::test_404": Outcome("skipped", 0.0),
    })  # fmt: skip
    greenmotor = ModuleRun("tornado_tests", "greenmotor", 1.0, outcomes)
    expand_collection_errors({"reference": [reference], "greenmotor": [greenmotor]})
    web = "tornado_tests/test_motor_web.py::GridFSHandlerTest::"
    assert greenmotor.outcomes == {
        "tornado_tests/test_motor_basic.py::MotorTestBasic::test_repr": Outcome("passed", 0.5),
        web + "test_404": Outcome("failed", 0.0, message),
        web + "test_basic": Outcome("failed", 0.0, message),
    }
