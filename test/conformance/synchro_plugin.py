"""pytest plugin: PyMongo's own test package sees the synchro facade instead of PyMongo.

Load it with ``pytest -p synchro_plugin`` (``run.py`` does) from the directory holding
PyMongo's extracted ``test`` package.

How the redirection works, and why this way
-------------------------------------------
PyMongo's tests get their classes in every possible spelling: ``from pymongo import
MongoClient``, ``from pymongo.synchronous.mongo_client import MongoClient``, ``import
pymongo`` then ``pymongo.MongoClient(...)``, ``isinstance(x, Collection)`` with
``Collection`` from ``pymongo.synchronous.collection``... Replacing those names inside
PyMongo itself would also change them for PyMongo's own code and for greenmotor, which are
built on the real classes.

So the redirection is scoped to the test package's own modules. When a module named
``test`` or ``test.*`` is loaded, it gets a private ``__builtins__`` whose ``__import__``
answers the names in :data:`FACADE_MODULES` with *facade modules*: module objects whose
attributes are the real module's, except the few classes the facade replaces. Every other
import (``pymongo.errors``, ``bson``, ``test.utils``) is the normal one. PyMongo and
greenmotor never see the facade; the tests never see PyMongo's client classes.

Example: inside ``test/test_collection.py``::

    from pymongo.synchronous.collection import Collection   # synchro.Collection
    from pymongo.errors import OperationFailure               # the real exception
    import pymongo; pymongo.MongoClient                       # synchro.MongoClient
    pymongo.ASCENDING                                         # the real constant
"""

from __future__ import annotations

import builtins
import importlib
import importlib.abc
import sys
import types
from typing import Any

import pytest
import synchro

_CLIENT = {"MongoClient": synchro.MongoClient}
_DATABASE = {"Database": synchro.Database}
_COLLECTION = {"Collection": synchro.Collection}
_CURSOR = {"Cursor": synchro.Cursor, "RawBatchCursor": synchro.RawBatchCursor}
_COMMAND_CURSOR = {
    "CommandCursor": synchro.CommandCursor,
    "RawBatchCommandCursor": synchro.RawBatchCommandCursor,
}
_CHANGE_STREAM = {
    "ChangeStream": synchro.ChangeStream,
    "ClusterChangeStream": synchro.ClusterChangeStream,
    "DatabaseChangeStream": synchro.DatabaseChangeStream,
    "CollectionChangeStream": synchro.CollectionChangeStream,
}
_SESSION = {"ClientSession": synchro.ClientSession}
_GRIDFS = {
    "GridFSBucket": synchro.GridFSBucket,
    "GridIn": synchro.GridIn,
    "GridOut": synchro.GridOut,
    "GridOutCursor": synchro.GridOutCursor,
}

#: module name -> the attributes that the test package sees replaced by the facade.
FACADE_MODULES: dict[str, dict[str, Any]] = {
    "pymongo": {**_CLIENT},
    "pymongo.synchronous": {},
    "pymongo.mongo_client": _CLIENT,
    "pymongo.synchronous.mongo_client": _CLIENT,
    "pymongo.database": _DATABASE,
    "pymongo.synchronous.database": _DATABASE,
    "pymongo.collection": _COLLECTION,
    "pymongo.synchronous.collection": _COLLECTION,
    "pymongo.cursor": _CURSOR,
    "pymongo.synchronous.cursor": _CURSOR,
    "pymongo.command_cursor": _COMMAND_CURSOR,
    "pymongo.synchronous.command_cursor": _COMMAND_CURSOR,
    "pymongo.change_stream": _CHANGE_STREAM,
    "pymongo.synchronous.change_stream": _CHANGE_STREAM,
    "pymongo.client_session": _SESSION,
    "pymongo.synchronous.client_session": _SESSION,
    "gridfs": _GRIDFS,
    "gridfs.synchronous": {},
    "gridfs.synchronous.grid_file": _GRIDFS,
    "pymongo.client_session_shared": {},
}

#: PyMongo settings the suite lowers to reach a give-up path, and the greenmotor setting that
#: plays the same part: with_transaction is greenmotor's own retry loop (Motor's), bounded by
#: greenmotor.session.WITH_TRANSACTION_TIME_LIMIT. A test's write reaches both.
LINKED_SETTINGS: dict[tuple[str, str], tuple[str, str]] = {
    ("pymongo.client_session_shared", "_WITH_TRANSACTION_RETRY_TIME_LIMIT"): (
        "greenmotor.session",
        "WITH_TRANSACTION_TIME_LIMIT",
    ),
}


class FacadeModule(types.ModuleType):
    """A real module seen through the facade: replaced names first, then the real module's."""

    def __init__(self, real: types.ModuleType, replaced: dict[str, Any]) -> None:
        super().__init__(real.__name__, real.__doc__)
        self.__dict__.update(replaced)
        self.__dict__["_real_module"] = real

    def __repr__(self) -> str:
        return f"<synchro facade of module {self.__name__!r}>"

    def __dir__(self) -> list[str]:
        """The real module's names (``dir(pymongo)`` in a test lists what PyMongo's does)."""
        return dir(self.__dict__["_real_module"])

    def __setattr__(self, name: str, value: Any) -> None:
        linked = LINKED_SETTINGS.get((self.__name__, name))
        if linked is None:
            super().__setattr__(name, value)
            return
        setattr(self.__dict__["_real_module"], name, value)
        module, setting = linked
        setattr(importlib.import_module(module), setting, value)

    def __getattr__(self, name: str) -> Any:
        child = f"{self.__name__}.{name}"
        if child in FACADE_MODULES:
            return facade_module(child)
        real = self.__dict__["_real_module"]
        try:
            return getattr(real, name)
        except AttributeError:
            if name.startswith("__"):
                raise
            return importlib.import_module(child)  # an unloaded submodule


_facades: dict[str, FacadeModule] = {}


def facade_module(name: str) -> FacadeModule:
    if name not in _facades:
        _facades[name] = FacadeModule(importlib.import_module(name), FACADE_MODULES[name])
    return _facades[name]


def redirecting_import(
    name: str, globals: Any = None, locals: Any = None, fromlist: Any = (), level: int = 0
) -> Any:
    """``__import__`` for the test package's modules: the real import, facade answers."""
    module = builtins.__import__(name, globals, locals, fromlist, level)
    if level != 0:
        return module  # relative imports stay inside the test package
    if fromlist:
        return facade_module(name) if name in FACADE_MODULES else module
    top = name.partition(".")[0]
    return facade_module(top) if top in FACADE_MODULES else module


REDIRECTING_BUILTINS = dict(builtins.__dict__, __import__=redirecting_import)


def in_test_package(name: str) -> bool:
    return name == "test" or name.startswith("test.")


class _RedirectingLoader(importlib.abc.Loader):
    """Wraps the loader that would load a test module; seeds the private builtins first."""

    def __init__(self, loader: Any) -> None:
        self._loader = loader

    def create_module(self, spec: Any) -> Any:
        return self._loader.create_module(spec)

    def exec_module(self, module: types.ModuleType) -> None:
        module.__dict__["__builtins__"] = REDIRECTING_BUILTINS
        self._loader.exec_module(module)

    def __getattr__(self, name: str) -> Any:  # get_source, get_code... for tracebacks
        return getattr(self._loader, name)


class TestPackageFinder(importlib.abc.MetaPathFinder):
    """Finds test modules with the other finders (pytest's assertion rewriter included)."""

    def find_spec(self, name: str, path: Any, target: Any = None) -> Any:
        if not in_test_package(name):
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _RedirectingLoader(spec.loader)
                return spec
        return None


def install() -> None:
    if any(isinstance(finder, TestPackageFinder) for finder in sys.meta_path):
        return
    already = sorted(name for name in sys.modules if in_test_package(name))
    if already:
        raise RuntimeError(f"synchro_plugin must load before the test package; loaded: {already}")
    sys.meta_path.insert(0, TestPackageFinder())


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: Any, parser: Any, args: Any) -> None:
    """Install the finder before the suite's conftest.py imports the test package."""
    install()


def pytest_report_header(config: Any) -> str:
    return "synchro: PyMongo's test package runs against greenmotor through the facade"
