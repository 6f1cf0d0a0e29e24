"""pytest plugin: ``import motor`` (and its submodules) resolves to greenmotor.

Load it with ``pytest -p motor_redirect`` from the directory holding Motor's extracted
``test`` package (``run.py`` does). Real Motor is installed beside greenmotor (it is the
reference), so none of its code may load for the run to mean anything. Before any test
module is imported, the plugin puts in ``sys.modules``:

* ``motor``: a package module whose attributes are greenmotor's (``motor.MotorClient`` is
  ``greenmotor.MotorClient``, ``motor.version`` is greenmotor's) - a module of its own, so
  that importing ``motor.X`` never sets attributes on the greenmotor package;
* ``motor.motor_tornado``, ``motor.motor_asyncio``, ``motor.web``...: greenmotor's modules
  (:data:`MODULES`), so every spelling (``from motor.motor_tornado import ...``,
  ``motor.motor_asyncio.AsyncIOMotorClient``) finds greenmotor's classes;

and an import finder at the front of ``sys.meta_path`` answers every other ``motor.*`` name:

* a name in :data:`MODULES` whose greenmotor module does not import raises that
  ``ImportError`` (named, so the collection error says what is missing);
* a name in :data:`STAND_INS` gets a small module holding only what Motor's tests import
  from Motor's internals at module level, so the rest of such a test module still runs;
* any other ``motor.*`` name is not found.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import multiprocessing
import os
import sys
import types

#: Motor's module name -> the greenmotor module that stands in for it.
MODULES: dict[str, str] = {
    "motor.motor_tornado": "greenmotor.motor_tornado",
    "motor.motor_asyncio": "greenmotor.motor_asyncio",
    "motor.motor_gridfs": "greenmotor.gridfs",
    "motor.web": "greenmotor.web",
    "motor.aiohttp": "greenmotor.aiohttp",
}


class _MotorCore(types.ModuleType):
    """``motor.core``: greenmotor's core, plus Motor's one private constant that its tests
    set, ``_WITH_TRANSACTION_RETRY_TIME_LIMIT`` (test_motor_transaction.py lowers it to test
    the give-up path), read and written through to greenmotor's own
    :data:`greenmotor.session.WITH_TRANSACTION_TIME_LIMIT`."""

    _LINKED = "_WITH_TRANSACTION_RETRY_TIME_LIMIT"

    def __getattr__(self, name: str) -> object:
        import greenmotor.core
        import greenmotor.session

        if name == self._LINKED:
            return greenmotor.session.WITH_TRANSACTION_TIME_LIMIT
        return getattr(greenmotor.core, name)

    def __setattr__(self, name: str, value: object) -> None:
        import greenmotor.session

        if name == self._LINKED:
            greenmotor.session.WITH_TRANSACTION_TIME_LIMIT = value  # type: ignore[assignment]
        else:
            super().__setattr__(name, value)


def _motor_max_workers() -> int:
    """The size Motor gives its thread pool (motor/frameworks/*/__init__.py)."""
    if "MOTOR_MAX_WORKERS" in os.environ:
        return int(os.environ["MOTOR_MAX_WORKERS"])
    return multiprocessing.cpu_count() * 5


#: Motor-internal modules that some test modules import at module level -> the names they
#: import. greenmotor has no thread pool; test_asyncio_change_stream.py imports
#: ``max_workers`` for one test (more change streams than Motor has threads), and without it
#: none of that module's tests could run.
STAND_INS: dict[str, dict[str, object]] = {
    "motor.frameworks": {},
    "motor.frameworks.asyncio": {"max_workers": _motor_max_workers()},
    "motor.frameworks.tornado": {"max_workers": _motor_max_workers()},
}

_failures: dict[str, ImportError] = {}


class _MotorFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds every ``motor.*`` name not already in ``sys.modules`` (see the module doc)."""

    def find_spec(self, name, path=None, target=None):  # type: ignore[no-untyped-def]
        if name != "motor" and not name.startswith("motor."):
            return None
        if name in _failures:
            raise ImportError(f"motor_redirect: {name}: {_failures[name]}", name=name)
        if name in STAND_INS:
            is_package = any(other.startswith(name + ".") for other in STAND_INS)
            return importlib.machinery.ModuleSpec(name, self, is_package=is_package)
        raise ModuleNotFoundError(
            f"motor_redirect: greenmotor has no counterpart of {name!r}", name=name
        )

    def create_module(self, spec):  # type: ignore[no-untyped-def]
        module = types.ModuleType(spec.name, "motor_redirect stand-in for Motor's internals")
        module.__dict__.update(STAND_INS[spec.name])
        return module

    def exec_module(self, module):  # type: ignore[no-untyped-def]
        pass


def install() -> None:
    greenmotor = importlib.import_module("greenmotor")
    motor = types.ModuleType("motor", "motor_redirect: greenmotor under Motor's name")
    motor.__path__ = []  # a package: its submodules come from the finder or sys.modules
    motor.__getattr__ = lambda name: getattr(greenmotor, name)  # type: ignore[method-assign]
    sys.modules["motor"] = motor
    motor.core = sys.modules["motor.core"] = _MotorCore("motor.core")  # type: ignore[attr-defined]
    for motor_name, green_name in MODULES.items():
        try:
            module = importlib.import_module(green_name)
        except ImportError as exc:
            _failures[motor_name] = exc  # greenmotor lacks it (yet): importing it fails
            continue
        sys.modules[motor_name] = module
        setattr(motor, motor_name.rpartition(".")[2], module)
    sys.meta_path.insert(0, _MotorFinder())


install()
