"""The class factory (greenmotor.metaprogramming): what the declarations build."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import greenmotor
from greenmotor import metaprogramming
from greenmotor.metaprogramming import Delegate, MotorWrapper, ReadOnly, check_wrap_names

PACKAGE = Path(greenmotor.__file__).resolve().parent


# --- wrap= names are checked when the class is made ---------------------------------------


def test_a_misspelt_wrap_name_fails_when_the_class_is_created() -> None:
    with pytest.raises(TypeError, match=r"wrap='MotorCurser' .* did you mean 'MotorCursor'\?"):

        class Misspelt(MotorWrapper):
            find = Delegate(wrap="MotorCurser")

    assert "Misspelt" not in metaprogramming.TORNADO.classes


def test_an_unknown_wrap_name_lists_the_declared_classes() -> None:
    with pytest.raises(TypeError, match="declared: MotorChangeStream, MotorClient,"):

        class Unknown(MotorWrapper):
            thing = ReadOnly(wrap="Zebra")


def test_while_the_package_imports_a_later_class_may_be_named(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # As MotorClient.get_database names MotorDatabase, declared below it.
    monkeypatch.setattr(metaprogramming, "_all_declared", False)
    try:

        class Early(MotorWrapper):
            later = Delegate(wrap="LaterForTest")

        where = f"{__name__}.{Early.__qualname__}.later"
        assert metaprogramming._unresolved_wraps == {"LaterForTest": [where]}

        class LaterForTest(MotorWrapper):
            pass

        assert metaprogramming._unresolved_wraps == {}
        check_wrap_names()  # nothing left: no error
    finally:
        for name in ("Early", "LaterForTest"):
            metaprogramming.TORNADO.classes.pop(name, None)


def test_a_name_still_unknown_at_the_end_of_the_import_raises(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(metaprogramming, "_all_declared", False)

    class Dangling(MotorWrapper):
        find = Delegate(wrap="MotorCursr")

    metaprogramming.TORNADO.classes.pop("Dangling")
    with pytest.raises(TypeError, match=r"wrap='MotorCursr' in .*Dangling.find"):
        check_wrap_names()
    assert metaprogramming._unresolved_wraps == {}


def test_a_typo_in_the_package_fails_import_greenmotor(tmp_path: Path) -> None:
    copy = tmp_path / "greenmotor"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    client = copy / "client.py"
    source = client.read_text()
    assert 'find = Delegate(wrap="MotorCursor")' in source
    client.write_text(source.replace('Delegate(wrap="MotorCursor")', 'Delegate(wrap="MotorCusor")'))
    proc = subprocess.run(
        [sys.executable, "-c", "import greenmotor"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode != 0
    assert (
        "TypeError: wrap='MotorCusor' in greenmotor.client.MotorCollection.find names no "
        "greenmotor class; did you mean 'MotorCursor'?"
    ) in proc.stderr
