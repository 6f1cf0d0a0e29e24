#!/usr/bin/env python
"""Generate greenmotor's type stubs (``greenmotor/*.pyi``) from PyMongo's annotated source.

::

    python tools/generate_typing.py          # write the stubs
    python tools/generate_typing.py --check  # exit status 1, naming each stale stub

Type checkers cannot see through greenmotor's declarations (``insert_one = Async()``): the
method exists only once the class is made. The stubs written here tell them what each
public class really offers, so mypy, pyright and IDEs check application code against
greenmotor as Motor 3's published stubs let them check it against Motor:

* a declared method has the parameters of the PyMongo method it runs, read from PyMongo's
  source (its annotations, its ``@overload`` variants). ``Async()`` methods return an
  ``asyncio.Future`` of PyMongo's result - what they return at run time, which ``await``
  and a Tornado ``gen.coroutine``'s ``yield`` both take - and take greenmotor's
  keyword-only ``callback``. ``Delegate()`` methods return PyMongo's result, ``Chain()``
  methods the cursor itself (``Self``), and ``ReadOnly()`` properties have the type of
  PyMongo's attribute. With ``wrap="MotorX"`` PyMongo's class becomes ``MotorX``;
* written-out methods keep greenmotor's own annotations. Where those say only ``Any``, the
  PyMongo method of the same name gives the types of same-named parameters, and the result
  (an ``asyncio.Future`` of it if the method takes ``callback``);
* classes are generic in the document type as Motor's are (``MotorCollection[Movie]``,
  whose ``find_one`` gives a ``Movie`` and whose cursors yield ``Movie``); the type
  parameter defaults to ``Any`` (see :func:`typevar_lines`). Session and GridFS classes
  (``MotorGridOutCursor`` too, whose items are files) are not generic, as in Motor;
* parameters take the Tornado classes (``session: MotorClientSession | None``), which the
  asyncio classes subclass; results are of the owner's flavour: the asyncio classes of
  ``motor_asyncio.pyi`` redeclare each member whose result names a public class
  (``AsyncIOMotorClient.__getattr__`` gives an ``AsyncIOMotorDatabase``);
* every other name a module defines (helpers, constants, private classes) is declared
  from its own annotations, so greenmotor's other modules still type-check against them.

The stubs depend on greenmotor's declarations and annotations and on PyMongo's source:
regenerate them after changing either (``test/test_typing.py`` runs ``--check``). They say
which PyMongo they were made from; ``--check`` against another PyMongo release only warns.

A stub hides its ``.py`` module from mypy: ``python -m mypy greenmotor`` checks the stubs
and the modules without one. ``python tools/generate_typing.py --mypy-implementation``
type-checks the modules the stubs hide, from a copy of the package without their stubs.
"""

from __future__ import annotations

import argparse
import ast
import builtins
import collections.abc
import copy
import dataclasses
import functools
import importlib
import importlib.util
import inspect
import os
import re
import shutil
import subprocess
import sys
import tempfile
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import pymongo  # noqa: E402

import greenmotor.motor_asyncio  # noqa: E402, F401 - imports every module, both flavours
from greenmotor.cursor import _BaseCursor  # noqa: E402
from greenmotor.frameworks import ASYNCIO, TORNADO, Framework  # noqa: E402
from greenmotor.metaprogramming import (  # noqa: E402
    Async,
    Chain,
    MotorAttribute,
    MotorWrapper,
    ReadOnly,
    _class_for_delegate,
)

#: The modules declaring public classes: each gets a stub beside it.
MODULES = [
    "greenmotor.change_stream",
    "greenmotor.client",
    "greenmotor.cursor",
    "greenmotor.encryption",
    "greenmotor.gridfs",
    "greenmotor.session",
]
#: The asyncio flavour's module: its stub declares an asyncio class per public class.
FLAVOUR_MODULE = "greenmotor.motor_asyncio"

#: What ``callback`` takes: a function called as ``fn(result, error)``.
CALLBACK = "Callable[[Any, Any], object] | None"

#: The few written-out members whose result neither greenmotor's annotation nor PyMongo's
#: method of the same name says (PyMongo's ``GridOut.open`` returns None; greenmotor's
#: resolves to the file itself). Each is a result type, in a Future if the member takes
#: ``callback``. Annotating the member itself in greenmotor makes its entry unnecessary.
RESULTS = {
    ("MotorClientSession", "client"): "MotorClient",
    ("MotorGridOut", "open"): "Self",
    ("MotorGridOut", "readline"): "bytes",
    ("MotorGridOutCursor", "collection"): "MotorCollection",
}

#: Async protocol methods and the PyMongo (synchronous) method each one stands for.
ASYNC_COUNTERPARTS = {
    "__aiter__": "__iter__",
    "__anext__": "__next__",
    "__aenter__": "__enter__",
    "__aexit__": "__exit__",
}

#: Class attributes that are metaprogramming, not API.
SKIPPED = {"__delegate_class__", "__class_getitem__", "__doc__", "__module__", "_framework"}

HEADER = """\
# Generated by tools/generate_typing.py from {source} and the annotations of PyMongo {pymongo};
# do not edit: change greenmotor's declarations or annotations, then run the generator.
"""


class GeneratorError(Exception):
    """The generator met something it cannot translate; the message says what and where."""


# --- reading source ----------------------------------------------------------------------


@functools.cache
def module_ast(module: str) -> ast.Module:
    path = inspect.getsourcefile(importlib.import_module(module))
    if path is None:
        raise GeneratorError(f"no source for {module}")
    return ast.parse(Path(path).read_text(), path)


def top_level(module: str) -> list[ast.stmt]:
    """The module's statements, with those under a top-level ``if``/``try`` (such as
    ``if TYPE_CHECKING:`` imports) flattened in."""
    statements: list[ast.stmt] = []

    def add(body: list[ast.stmt]) -> None:
        for stmt in body:
            if isinstance(stmt, ast.If):
                add(stmt.body)
                add(stmt.orelse)
            elif isinstance(stmt, ast.Try):
                add(stmt.body)
                for handler in stmt.handlers:
                    add(handler.body)
            else:
                statements.append(stmt)

    add(module_ast(module).body)
    return statements


@dataclass(frozen=True)
class Ref:
    """Where a name comes from: ``module.attr`` (``attr`` None: the module itself)."""

    module: str
    attr: str | None

    @property
    def value(self) -> Any:
        """The object at run time, or None for names that exist only for type checkers."""
        try:
            obj = importlib.import_module(self.module)
        except ImportError:
            return None
        return obj if self.attr is None else getattr(obj, self.attr, None)


@functools.cache
def namespace(module: str) -> dict[str, Ref]:
    """What each global name of ``module``'s source refers to (imports and definitions)."""
    names: dict[str, Ref] = {}
    for stmt in top_level(module):
        if isinstance(stmt, ast.Import):
            for alias in stmt.names:
                if alias.asname:
                    names[alias.asname] = Ref(alias.name, None)
                else:
                    root = alias.name.partition(".")[0]
                    names[root] = Ref(root, None)
        elif isinstance(stmt, ast.ImportFrom):
            base = stmt.module or ""
            if stmt.level:
                package = module.rsplit(".", stmt.level)[0]
                base = f"{package}.{base}" if base else package
            for alias in stmt.names:
                submodule = f"{base}.{alias.name}"  # from pymongo import common
                is_module = _is_package(base) and importlib.util.find_spec(submodule)
                ref = Ref(submodule, None) if is_module else Ref(base, alias.name)
                names[alias.asname or alias.name] = ref
        elif isinstance(stmt, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            names[stmt.name] = Ref(module, stmt.name)
        elif isinstance(stmt, (ast.Assign, ast.AnnAssign)):
            targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
            for target in targets:
                if isinstance(target, ast.Name):
                    names.setdefault(target.id, Ref(module, target.id))
    return names


def _is_package(module: str) -> bool:
    try:
        return hasattr(importlib.import_module(module), "__path__")
    except ImportError:
        return False


def resolve(module: str, name: str) -> Ref | None:
    """What ``name`` means in ``module``'s source; None for a builtin."""
    ref = namespace(module).get(name)
    if ref is not None:
        return ref
    if hasattr(builtins, name):
        return None
    raise GeneratorError(f"{module}: cannot tell what {name!r} is")


def evaluate(module: str, node: ast.expr) -> Any:
    """The run-time object a name or dotted name in ``module``'s source stands for, if any."""
    if isinstance(node, ast.Name):
        ref = resolve(module, node.id) if node.id != "Self" else None
        return ref.value if ref else getattr(builtins, node.id, None)
    if isinstance(node, ast.Attribute):
        base = evaluate(module, node.value)
        return getattr(base, node.attr, None) if base is not None else None
    return None


def is_sync_test(test: ast.expr) -> bool | None:
    """PyMongo's ``if _IS_SYNC:`` (True) / ``if not _IS_SYNC:`` (False); None otherwise."""
    if isinstance(test, ast.Name) and test.id == "_IS_SYNC":
        return True
    if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
        inner = is_sync_test(test.operand)
        return None if inner is None else not inner
    return None


def class_body(klass: type) -> tuple[str, list[ast.stmt]]:
    """The module and statements of ``klass``'s body as the synchronous code runs them."""
    module = klass.__module__
    node: ast.AST = module_ast(module)
    for part in klass.__qualname__.split("."):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.ClassDef) and child.name == part:
                node = child
                break
        else:
            raise GeneratorError(f"no class {klass.__qualname__} in {module}'s source")
    statements: list[ast.stmt] = []

    def add(body: list[ast.stmt]) -> None:
        for stmt in body:
            sync = is_sync_test(stmt.test) if isinstance(stmt, ast.If) else None
            if sync is None:
                statements.append(stmt)
            else:
                add(stmt.body if sync else stmt.orelse)  # type: ignore[attr-defined]

    add(node.body)  # type: ignore[attr-defined]
    return module, statements


def decorator_names(node: ast.FunctionDef | ast.AsyncFunctionDef) -> list[str]:
    names = []
    for decorator in node.decorator_list:
        target = decorator.func if isinstance(decorator, ast.Call) else decorator
        if isinstance(target, ast.Attribute):
            names.append(target.attr)
        elif isinstance(target, ast.Name):
            names.append(target.id)
    return names


@dataclass
class Source:
    """A PyMongo (or greenmotor) member as written: its definitions and where."""

    module: str
    functions: list[ast.FunctionDef | ast.AsyncFunctionDef] = field(default_factory=list)
    annotation: ast.expr | None = None  # an annotated or typed attribute
    constant: Any = None  # an attribute's constant value (HOST = "localhost")

    @property
    def signatures(self) -> list[ast.FunctionDef | ast.AsyncFunctionDef]:
        """The ``@overload`` variants if there are any, else the definition."""
        overloads = [f for f in self.functions if "overload" in decorator_names(f)]
        return overloads or self.functions[-1:]

    @property
    def result(self) -> ast.expr | None:
        if self.functions:
            return self.functions[-1].returns
        return self.annotation


def find_member(klass: type, name: str) -> Source | None:
    """``name`` as ``klass`` (or the first class of its MRO defining it) writes it."""
    for owner in klass.__mro__:
        if owner is object or owner.__module__ == "builtins" or owner.__module__ == "_io":
            continue
        try:
            module, body = class_body(owner)
        except (GeneratorError, TypeError, OSError):
            continue
        found = _member_in(body, module, name)
        if found is not None:
            return found
    return None


def _member_in(body: list[ast.stmt], module: str, name: str) -> Source | None:
    source = Source(module)
    for stmt in body:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)) and stmt.name == name:
            source.functions.append(stmt)
        elif isinstance(stmt, ast.AnnAssign) and _target_is(stmt.target, name):
            source.annotation = stmt.annotation
        elif isinstance(stmt, ast.Assign) and any(_target_is(t, name) for t in stmt.targets):
            if isinstance(stmt.value, ast.Name):  # an alias: __next__ = next
                return _member_in(body, module, stmt.value.id)
            if isinstance(stmt.value, ast.Constant):
                source.constant = stmt.value.value
    if source.functions or source.annotation is not None or source.constant is not None:
        return source
    for stmt in body:  # an instance attribute, declared in __init__
        if isinstance(stmt, ast.FunctionDef) and stmt.name == "__init__":
            for node in ast.walk(stmt):
                if (
                    isinstance(node, ast.AnnAssign)
                    and isinstance(node.target, ast.Attribute)
                    and node.target.attr == name
                ):
                    source.annotation = node.annotation
                    return source
    return None


def _target_is(target: ast.expr, name: str) -> bool:
    return isinstance(target, ast.Name) and target.id == name


# --- greenmotor's classes ----------------------------------------------------------------


def declared(cls: type) -> type:
    """The declared (Tornado) class of a greenmotor class of any flavour."""
    if not issubclass(cls, MotorWrapper):
        return cls
    name = cls.__name__.removeprefix(cls._framework.class_prefix)
    return TORNADO.classes.get(name, cls)


def public_class(obj: Any, *, wrap: bool) -> type | None:
    """The greenmotor class ``obj`` is or (with ``wrap``) PyMongo's class ``obj`` maps to."""
    if not isinstance(obj, type):
        return None
    if issubclass(obj, MotorWrapper) and obj is not MotorWrapper:
        return declared(obj)
    if wrap:
        for klass in obj.__mro__:
            if klass in _class_for_delegate:
                return _class_for_delegate[klass]
    return None


def greenmotor_classes() -> list[type]:
    """Every class declared in greenmotor's public modules (private ones too)."""
    return [cls for cls in TORNADO.classes.values() if cls.__module__ in MODULES]


@functools.cache
def delegate_of(cls: type) -> type | None:
    """The PyMongo class ``cls`` wraps; for a private base, that of its first subclass."""
    delegate = vars(cls).get("__delegate_class__")
    if isinstance(delegate, type) and delegate is not object:
        return delegate
    for klass in cls.__mro__[1:]:
        if "__delegate_class__" in vars(klass) and klass.__delegate_class__ is not object:
            return klass.__delegate_class__  # type: ignore[no-any-return]
    for sub in cls.__subclasses__():
        if sub.__module__ in MODULES:
            found = delegate_of(sub)
            if found is not None:
                return found
    return None


@functools.cache
def item_of(cls: type) -> type | None:
    """The greenmotor class a cursor class yields when its items are not documents
    (PyMongo's ``GridOutCursor.next`` gives a ``GridOut``: MotorGridOutCursor yields
    MotorGridOut); None for document cursors and other classes."""
    if not issubclass(cls, _BaseCursor) or cls is _BaseCursor:
        return None
    delegate = delegate_of(cls)
    source = find_member(delegate, "next") if delegate else None
    if source is None or source.result is None:
        return None
    result = source.result
    if isinstance(result, ast.Name):
        ref = resolve(source.module, result.id)
        return public_class(ref.value if ref else None, wrap=True)
    return None


@functools.cache
def is_generic(cls: type) -> bool:
    """Generic in the document type: subscriptable at run time (as Motor's classes are),
    bar cursors of files (Motor's GridFS cursor is not generic either)."""
    if item_of(cls) is not None:
        return False
    try:
        cls[dict]  # type: ignore[index]
    except TypeError:
        return False
    return True


def flavoured_name(cls: type, flavour: Framework) -> str:
    """``cls``'s name in ``flavour``: AsyncIOMotorCursor for MotorCursor; private classes
    have one name."""
    if cls.__name__.startswith("_"):
        return cls.__name__
    return flavour.class_prefix + cls.__name__


# --- a stub's imports ----------------------------------------------------------------------


class Imports:
    """The names one stub imports, each from the module its source imported it from."""

    def __init__(self, module: str, local: set[str]) -> None:
        self.module = module
        self.local = local  # names the stub defines itself
        self.names: dict[str, Ref] = {}

    def use(self, name: str, ref: Ref) -> str:
        """Make ``name`` (meaning ``ref``) available in the stub; returns the name to use."""
        if ref.module == "typing" and ref.attr in collections.abc.__all__:
            ref = Ref("collections.abc", ref.attr)  # one Mapping, whichever the source used
        if ref.module == self.module and ref.attr == name:
            return name
        if name in self.local:
            if ref.module.startswith("greenmotor.") and ref.attr == name:
                return name  # defined here (a flavour class) or one of ours
            raise GeneratorError(f"{self.module}: {name!r} is defined here and imported")
        known = self.names.get(name)
        if known is not None and known != ref:
            if known.value is not None and known.value is ref.value:
                return name  # one object, re-exported
            # Two modules' names alike (PyMongo's client and collection each define a
            # _WriteOp): the later one is imported under an alias.
            alias = f"_{ref.module.rpartition('.')[2]}_{name.lstrip('_')}"
            if self.names.get(alias, ref) != ref:
                raise GeneratorError(f"{self.module}: {name!r} and {alias!r} are both taken")
            return self.use(alias, ref)
        self.names.setdefault(name, ref)
        return name

    def lines(self) -> list[str]:
        plain = sorted(
            ref.module
            for name, ref in self.names.items()
            if ref.attr is None and name == ref.module.partition(".")[0]
        )
        aliased = sorted(
            f"import {ref.module} as {name}"
            for name, ref in self.names.items()
            if ref.attr is None and name != ref.module.partition(".")[0]
        )
        by_module: dict[str, list[str]] = {}
        for name, ref in self.names.items():
            if ref.attr is not None:
                entry = ref.attr if ref.attr == name else f"{ref.attr} as {name}"
                by_module.setdefault(ref.module, []).append(entry)
        lines = [f"import {module}" for module in plain] + aliased
        for module in sorted(by_module):
            lines.append(f"from {module} import {', '.join(sorted(by_module[module]))}")
        return lines


# --- annotations -----------------------------------------------------------------------------


@dataclass
class Context:
    """How to render annotations written in ``module`` into a stub."""

    imports: Imports
    module: str  # where the annotation was written
    owner: type | None = None  # the greenmotor class whose member this is
    flavour: Framework = TORNADO
    result: bool = False  # a result (flavoured; Self for the owner) rather than a parameter
    handed: bool = False  # what greenmotor passes to a callable parameter (flavoured)
    wrap: bool = False  # PyMongo's classes become greenmotor's (PyMongo's parameters, and
    # the results of declarations with wrap=...)
    type_args: str | None = None  # for a bare generic class, instead of the owner's

    def replace(self, **changes: Any) -> Context:
        return dataclasses.replace(self, **changes)


def render(node: ast.expr | None, context: Context) -> str:
    """The annotation ``node`` as the stub must write it (``Any`` if there is none)."""
    if node is None:
        return use_name(context, "Any", "typing")
    return ast.unparse(_Rewriter(context).visit(copy.deepcopy(node)))


def use_name(context: Context, name: str, module: str, attr: str | None = None) -> str:
    return context.imports.use(name, Ref(module, attr if attr is not None else name))


class _Rewriter(ast.NodeTransformer):
    """Rewrites names to the stub's: PyMongo's classes to greenmotor's, imports recorded."""

    def __init__(self, context: Context) -> None:
        self.context = context

    def visit_Constant(self, node: ast.Constant) -> ast.AST:
        if isinstance(node.value, str):  # a forward reference: "Collection[_DocumentType]"
            return self.visit(ast.parse(node.value, mode="eval").body)
        return node

    def visit_Subscript(self, node: ast.Subscript) -> ast.AST:
        target = self._class_of(node.value)
        if target is not None:
            return self._class_node(target, node.slice)
        if evaluate(self.context.module, node.value) is typing.Literal:
            node.value = self.visit(node.value)
            return node  # Literal["x"]: strings, not forward references
        callable_types = (collections.abc.Callable, typing.Callable)
        if (
            not self.context.result
            and evaluate(self.context.module, node.value) in callable_types
            and isinstance(node.slice, ast.Tuple)
            and isinstance(node.slice.elts[0], ast.List)
        ):
            # with_transaction(coro: Callable[[MotorClientSession], ...]): the asyncio
            # flavour hands coro an AsyncIOMotorClientSession.
            node.value = self.visit(node.value)
            handed = _Rewriter(self.context.replace(handed=True))
            node.slice.elts[0] = handed.visit(node.slice.elts[0])
            node.slice.elts[1:] = [self.visit(e) for e in node.slice.elts[1:]]
            return node
        return self.generic_visit(node)

    def visit_Name(self, node: ast.Name) -> ast.AST:
        target = self._class_of(node)
        if target is not None:
            return self._class_node(target, None)
        if node.id == "_DocumentType":
            return node  # each stub defines its own
        ref = resolve(self.context.module, node.id)
        if ref is not None:
            node.id = self.context.imports.use(node.id, ref)
        return node

    def visit_Attribute(self, node: ast.Attribute) -> ast.AST:
        target = self._class_of(node)
        if target is not None:
            return self._class_node(target, None)
        root: ast.expr = node
        while isinstance(root, ast.Attribute):
            root = root.value
        if isinstance(root, ast.Name):
            ref = resolve(self.context.module, root.id)
            if ref is not None:
                root.id = self.context.imports.use(root.id, ref)
        return node

    def _class_of(self, node: ast.expr) -> type | None:
        """The greenmotor class ``node`` names or maps to, if any."""
        if not isinstance(node, (ast.Name, ast.Attribute)):
            return None
        value = evaluate(self.context.module, node)
        target = public_class(value, wrap=self.context.wrap)
        pymongo_source = not self.context.module.startswith("greenmotor")
        if target is None and self.context.result and pymongo_source and isinstance(value, type):
            delegate = delegate_of(self.context.owner) if self.context.owner else None
            if delegate is not None and value is not object and issubclass(delegate, value):
                return self.context.owner  # PyMongo's method returns the object itself
        return target

    def _class_node(self, target: type, args: ast.expr | None) -> ast.expr:
        """``target`` (a greenmotor class) with its type arguments: ``Self`` for the owner's
        own class in a result, the owner's document type for a bare generic class."""
        if self._is_self(target, args):
            return ast.Name(use_name(self.context, "Self", "typing_extensions"))
        name = ast.Name(self._class_name(target))
        if not is_generic(target):
            return name
        if args is not None:
            return ast.Subscript(name, self.visit(args))
        owner = self.context.owner
        if self.context.type_args is not None:
            return ast.Subscript(name, ast.Name(self.context.type_args))
        if owner is not None and is_generic(owner):
            return ast.Subscript(name, ast.Name("_DocumentType"))
        return ast.Subscript(name, ast.Name(use_name(self.context, "Any", "typing")))

    def _is_self(self, target: type, args: ast.expr | None) -> bool:
        owner = self.context.owner
        if not self.context.result or owner is None or target not in declared(owner).__mro__:
            return False
        return args is None or (isinstance(args, ast.Name) and args.id == "_DocumentType")

    def _class_name(self, target: type) -> str:
        flavoured = self.context.result or self.context.handed
        flavour = self.context.flavour if flavoured else TORNADO
        name = flavoured_name(target, flavour)
        module = (
            FLAVOUR_MODULE
            if flavour is not TORNADO and name != target.__name__
            else (target.__module__)
        )
        return use_name(self.context, name, module)


# --- signatures --------------------------------------------------------------------------------


@dataclass
class Param:
    name: str
    kind: str  # "posonly", "normal", "vararg", "kwonly", "kwarg"
    annotation: str | None
    default: str | None  # rendered; None: required

    def text(self) -> str:
        star = {"vararg": "*", "kwarg": "**"}.get(self.kind, "")
        text = f"{star}{self.name}"
        if self.annotation:
            text += f": {self.annotation}"
        if self.default is not None:
            text += f" = {self.default}" if self.annotation else f"={self.default}"
        return text


def render_default(node: ast.expr) -> str:
    if isinstance(node, ast.Constant) and not isinstance(node.value, (bytes,)):
        if isinstance(node.value, str) and len(node.value) > 40:
            return "..."
        return ast.unparse(node)
    if (
        isinstance(node, ast.UnaryOp)
        and isinstance(node.op, ast.USub)
        and isinstance(node.operand, ast.Constant)
    ):
        return ast.unparse(node)
    return "..."


def parameters(
    function: ast.FunctionDef | ast.AsyncFunctionDef, context: Context
) -> list[tuple[Param, ast.expr | None]]:
    """The parameters as written, each with its annotation's node (rendered in ``context``)."""
    args = function.args
    positional = args.posonlyargs + args.args
    defaults: list[ast.expr | None] = [None] * (len(positional) - len(args.defaults))
    defaults += args.defaults
    params: list[tuple[Param, ast.expr | None]] = []

    def param(arg: ast.arg, kind: str, default: ast.expr | None) -> None:
        annotation = render(arg.annotation, context) if arg.annotation is not None else None
        rendered = render_default(default) if default is not None else None
        params.append((Param(arg.arg, kind, annotation, rendered), arg.annotation))

    for index, arg in enumerate(positional):
        param(arg, "posonly" if index < len(args.posonlyargs) else "normal", defaults[index])
    if args.vararg:
        param(args.vararg, "vararg", None)
    for arg, default in zip(args.kwonlyargs, args.kw_defaults, strict=True):
        param(arg, "kwonly", default)
    if args.kwarg:
        param(args.kwarg, "kwarg", None)
    return params


def params_text(params: list[Param]) -> str:
    parts: list[str] = []
    posonly = any(p.kind == "posonly" for p in params)
    star_done = any(p.kind == "vararg" for p in params)
    for index, p in enumerate(params):
        if p.kind == "kwonly" and not star_done:
            parts.append("*")
            star_done = True
        parts.append(p.text())
        if (
            posonly
            and p.kind == "posonly"
            and (index + 1 == len(params) or params[index + 1].kind != "posonly")
        ):
            parts.append("/")
    return ", ".join(parts)


def with_callback(params: list[Param], context: Context) -> list[Param]:
    """``params`` plus greenmotor's keyword-only ``callback=None`` (before ``**kwargs``)."""
    use_name(context, "Callable", "typing")
    use_name(context, "Any", "typing")
    existing = [p for p in params if p.name == "callback"]
    if existing:
        existing[0].annotation = CALLBACK
        return params
    callback = Param("callback", "kwonly", CALLBACK, "None")
    if params and params[-1].kind == "kwarg":
        return [*params[:-1], callback, params[-1]]
    return [*params, callback]


def future_of(result: str, context: Context) -> str:
    return f"{use_name(context, 'Future', 'asyncio')}[{result}]"


def is_any(node: ast.expr | None) -> bool:
    return node is None or (isinstance(node, ast.Name) and node.id == "Any")


def function_lines(
    name: str,
    params: list[Param],
    result: str,
    *,
    is_async: bool = False,
    decorators: tuple[str, ...] = (),
) -> list[str]:
    head = "async def" if is_async else "def"
    lines = [f"@{decorator}" for decorator in decorators]
    lines.append(f"{head} {name}({params_text(params)}) -> {result}: ...")
    return lines


# --- members ---------------------------------------------------------------------------------


@dataclass
class Declaration:
    """``name = Async(wrap="MotorCursor")`` in a class body, as written."""

    kind: type  # Async, Delegate, Chain or ReadOnly (or a subclass)
    attr_name: str  # PyMongo's attribute
    wrap: bool  # PyMongo's result becomes a greenmotor object


def declaration(stmt: ast.stmt, name: str, module: str) -> Declaration | None:
    """The declaration ``stmt`` makes, if it is one (read from the source, not from the
    method built from it)."""
    if not (isinstance(stmt, ast.Assign) and isinstance(stmt.value, ast.Call)):
        return None
    call = stmt.value
    kind = evaluate(module, call.func)
    if not (isinstance(kind, type) and issubclass(kind, MotorAttribute)):
        return None
    options = {k.arg: ast.literal_eval(k.value) for k in call.keywords if k.arg}
    return Declaration(kind, options.get("attr_name") or name, bool(options.get("wrap")))


def declared_member(cls: type, name: str, declared_as: Declaration, context: Context) -> list[str]:
    """The stub of a member built from ``Async()``, ``Delegate()``, ``Chain()`` or
    ``ReadOnly()``: PyMongo's signature and types."""
    delegate = delegate_of(cls)
    attr_name = declared_as.attr_name
    source = find_member(delegate, attr_name) if delegate else None
    if source is None:
        raise GeneratorError(f"{cls.__name__}.{name}: no {attr_name} in PyMongo's {delegate}")
    in_source = context.replace(module=source.module, owner=cls, wrap=True)
    result_context = in_source.replace(result=True, wrap=declared_as.wrap)
    if issubclass(declared_as.kind, ReadOnly):
        if source.result is not None:
            result = render(source.result, result_context)
        elif source.constant is not None:
            result = type(source.constant).__name__
        else:
            result = render(None, result_context)
        return ["@property", f"def {name}(self) -> {result}: ..."]
    lines: list[str] = []
    signatures = source.signatures
    overloaded = len(signatures) > 1
    for function in signatures:
        params = [p for p, _ in parameters(function, in_source)]
        if issubclass(declared_as.kind, Chain):
            result = use_name(context, "Self", "typing_extensions")
        else:
            result = render(function.returns, result_context)
        if issubclass(declared_as.kind, Async):
            params = with_callback(params, context)
            result = future_of(result, context)
        decorators = (use_name(context, "overload", "typing"),) if overloaded else ()
        lines += function_lines(name, params, result, decorators=decorators)
    return lines


def counterpart(cls: type, name: str) -> Source | None:
    """PyMongo's member that greenmotor's written-out member ``name`` stands for."""
    if name.startswith("_") and not name.startswith("__"):
        return None
    delegate = delegate_of(cls)
    if delegate is None:
        return None
    found = find_member(delegate, ASYNC_COUNTERPARTS.get(name, name))
    return found if found is not None and found.functions else None


def refine(
    params: list[tuple[Param, ast.expr | None]],
    theirs: Source | None,
    context: Context,
) -> list[Param]:
    """greenmotor's parameters, each ``Any`` (or bare generic class) replaced by the type
    PyMongo's same-named parameter has; ``(*args, **kwargs)`` becomes PyMongo's signature."""
    if theirs is None:
        return [p for p, _ in params]
    their_function = theirs.signatures[-1]
    their_context = context.replace(module=theirs.module, result=False, wrap=True)
    scratch = their_context.replace(imports=Imports(context.imports.module, context.imports.local))
    their_params = parameters(their_function, scratch)  # rendered again where they are used
    ours = [p for p, _ in params]
    if [p.kind for p in ours[1:]] == ["vararg", "kwarg"] and len(theirs.signatures) == 1:
        return [ours[0], *(p for p, _ in parameters(their_function, their_context)[1:])]
    by_name = {p.name: (p, node) for p, node in their_params if node is not None}
    refined = []
    for param, node in params:
        theirs_param, their_node = by_name.get(param.name, (None, None))
        if theirs_param is not None and (
            param.kind == theirs_param.kind
            or {param.kind, theirs_param.kind} <= {"normal", "kwonly"}
        ):
            if (is_any(node) or _bare_generic(node, context)) and "_Agnostic" not in (
                theirs_param.annotation or ""
            ):  # not PyMongo's unions of its synchronous and asynchronous classes
                annotation = render(their_node, their_context)
                param = Param(param.name, param.kind, annotation, param.default)
        refined.append(param)
    return refined


def _bare_generic(node: ast.expr | None, context: Context) -> bool:
    if not isinstance(node, ast.Name):
        return False
    ref = resolve(context.module, node.id)
    target = public_class(ref.value if ref else None, wrap=False)
    return target is not None and is_generic(target)


def written_member(
    cls: type,
    name: str,
    function: ast.FunctionDef | ast.AsyncFunctionDef,
    context: Context,
    *,
    decorators: tuple[str, ...] = (),
) -> list[str]:
    """The stub of a written-out method or property: greenmotor's annotations, made
    precise from PyMongo's same-named member where they only say ``Any``."""
    own = context.replace(owner=cls)
    theirs = counterpart(cls, name)
    params = refine(parameters(function, own), theirs, own)
    takes_callback = any(p.name == "callback" for p in params)
    is_async = isinstance(function, ast.AsyncFunctionDef)
    result_context = own.replace(result=True)
    if (cls.__name__, name) in RESULTS:
        override = ast.parse(RESULTS[cls.__name__, name], mode="eval").body
        if isinstance(override, ast.Name) and override.id == "Self":
            result = use_name(context, "Self", "typing_extensions")
        else:
            result = render(override, result_context.replace(module="greenmotor"))
    elif _bare_generic(function.returns, own) and theirs is not None:
        # cursor = collection.list_indexes(): PyMongo's CommandCursor[MutableMapping[...]]
        # says what greenmotor's MotorLatentCommandCursor yields.
        args = _type_args(theirs)
        arg_text = render(args, result_context.replace(module=theirs.module)) if args else None
        result = render(function.returns, result_context.replace(type_args=arg_text))
    elif not is_any(function.returns) or theirs is None:
        result = render(function.returns, result_context)
    else:
        if _unbound_typevars(theirs, params):
            result = render(None, context)
        else:
            their_context = result_context.replace(module=theirs.module, wrap=False)
            result = render(theirs.result, their_context)
    if takes_callback and is_any(function.returns) and not is_async:
        params = with_callback(params, context)
        result = future_of(result, context)
    if "property" in decorators:
        return ["@property", f"def {name}(self) -> {result}: ..."]
    return function_lines(name, params, result, is_async=is_async, decorators=decorators)


def _type_args(source: Source) -> ast.expr | None:
    """The type arguments of PyMongo's result (``CommandCursor[X]``: ``X``), if any."""
    result = source.result
    if isinstance(result, ast.Constant) and isinstance(result.value, str):
        result = ast.parse(result.value, mode="eval").body
    return result.slice if isinstance(result, ast.Subscript) else None


def _unbound_typevars(theirs: Source, params: list[Param]) -> bool:
    """Whether PyMongo's result names a type variable none of ``params`` binds (its
    ``with_transaction`` returns its callback's ``_T``; greenmotor's callback differs)."""
    bound = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", params_text(params)))
    for node in ast.walk(theirs.result) if theirs.result is not None else ():
        if isinstance(node, ast.Name) and node.id not in bound | {"_DocumentType"}:
            if isinstance(evaluate(theirs.module, node), TypeVar):
                return True
    return False


def attribute_type(value: Any, context: Context) -> str:
    """The declared type of a plain class or module attribute, from its value."""
    if value is None:
        return render(None, context)
    kind = type(value)
    if kind.__module__ == "builtins":
        return kind.__name__
    return use_name(context, kind.__name__, kind.__module__)


def class_members(
    cls: type, context: Context, only: set[str] | None = None
) -> list[tuple[str, list[str]]]:
    """The stub of each member ``cls``'s body defines (or of those named ``only``), in
    source order: (name, lines)."""
    module = cls.__module__
    own = context.replace(module=module, owner=cls)
    _, body = class_body(cls)
    members: list[tuple[str, list[str]]] = []
    runtime = vars(cls)
    seen: set[str] = set()
    for stmt in body:
        names: list[str] = []
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
            names = [stmt.name]
        elif isinstance(stmt, ast.Assign):
            names = [t.id for t in stmt.targets if isinstance(t, ast.Name)]
        elif isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
            names = [stmt.target.id]
        for name in names:
            if name in SKIPPED or name in seen:
                continue
            seen.add(name)
            if only is not None and name not in only:
                continue
            value = runtime.get(name)
            members.append((name, member_lines(cls, name, value, stmt, body, own)))
    inherited = set(dir(MotorWrapper)) | set(MotorWrapper.__annotations__)
    attributes = instance_attributes(cls, body, seen | inherited, own)
    members += [(name, lines) for name, lines in attributes if only is None or name in only]
    return members


def member_lines(
    cls: type, name: str, value: Any, stmt: ast.stmt, body: list[ast.stmt], context: Context
) -> list[str]:
    declared_as = declaration(stmt, name, cls.__module__)
    if declared_as is not None:
        return declared_member(cls, name, declared_as, context)
    if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
        kept = ("property", "classmethod", "staticmethod")
        decorators = tuple(d for d in decorator_names(stmt) if d in kept)
        final = [s for s in body if isinstance(s, type(stmt)) and s.name == name][-1]
        return written_member(cls, name, final, context, decorators=decorators)
    if isinstance(stmt, ast.AnnAssign):
        return [f"{name}: {render(stmt.annotation, context)}"]
    if isinstance(value, staticmethod):  # _take = staticmethod(_take)
        function = value.__func__
        node = next(
            s
            for s in module_ast(function.__module__).body
            if isinstance(s, ast.FunctionDef) and s.name == function.__name__
        )
        return written_member(cls, name, node, context, decorators=("staticmethod",))
    if inspect.isfunction(value) and value.__name__ != name:  # __anext__ = next
        return [f"{name} = {value.__name__}"]
    return [f"{name}: {attribute_type(value, context)}"]


def instance_attributes(
    cls: type, body: list[ast.stmt], known: set[str], context: Context
) -> list[tuple[str, list[str]]]:
    """Attributes ``__init__`` sets on the instance (``self.collection = ...``)."""
    found: dict[str, str] = {}
    for stmt in body:
        if not (isinstance(stmt, ast.FunctionDef) and stmt.name == "__init__"):
            continue
        for node in ast.walk(stmt):
            if isinstance(node, ast.AnnAssign):
                targets, annotation = [node.target], node.annotation
            elif isinstance(node, ast.Assign):
                targets, annotation = node.targets, None
            else:
                continue
            for target in targets:
                if not (
                    isinstance(target, ast.Attribute)
                    and isinstance(target.value, ast.Name)
                    and target.value.id == "self"
                ):
                    continue
                attr = target.attr
                if attr in known or attr in found:
                    continue
                if annotation is not None:
                    found[attr] = render(annotation, context)
                elif isinstance(node.value, ast.Constant) and node.value.value is not None:
                    found[attr] = type(node.value.value).__name__
                else:
                    found[attr] = render(None, context)
    return [(attr, [f"{attr}: {kind}"]) for attr, kind in found.items()]


# --- classes and modules -------------------------------------------------------------------


def class_header(cls: type, context: Context) -> str:
    """``class Name(Bases):`` with the type parameters a generic class passes on."""
    bases = []
    generic_base = False
    for base in cls.__bases__:
        if base is object:
            continue
        name = use_name(context, base.__name__, base.__module__)
        if base is not MotorWrapper and issubclass(base, MotorWrapper) and is_generic(base):
            if is_generic(cls):
                arg = "_DocumentType"
            else:  # what MotorGridOutCursor yields is no document: Any, as in Motor
                arg = use_name(context, "Any", "typing")
            name = f"{name}[{arg}]"
            generic_base = True
        bases.append(name)
    if is_generic(cls) and not generic_base:
        bases.append(f"{use_name(context, 'Generic', 'typing')}[_DocumentType]")
    return f"class {cls.__name__}({', '.join(bases)}):" if bases else f"class {cls.__name__}:"


def block(header: str, members: list[tuple[str, list[str]]]) -> list[str]:
    lines = [header]
    for _, member in members:
        lines += [f"    {line}" for line in member]
    if len(lines) == 1:
        lines[0] += " ..."
    return lines


def typevar_lines(module: str, imports: Imports) -> list[str]:
    """The stub's document type: PyMongo's (any mapping), defaulting to ``Any``.

    The default is greenmotor's one deliberate difference from Motor's stubs. Without it
    ``client = MotorClient()`` (no ``document_class``) leaves the type parameter unsolved
    and mypy asks for an annotation ("Need type annotation for 'client'"), as it does with
    Motor and PyMongo; with it the client is a ``MotorClient[Any]``, which is what both
    give once annotated with the bare class. Code that annotates is checked alike.
    """
    imports.use("TypeVar", Ref("typing_extensions", "TypeVar"))  # with PEP 696's default
    imports.use("Mapping", Ref("collections.abc", "Mapping"))
    imports.use("Any", Ref("typing", "Any"))
    return ['_DocumentType = TypeVar("_DocumentType", bound=Mapping[str, Any], default=Any)']


def all_list(names: list[str]) -> str:
    return "\n".join(["__all__ = [", *(f'    "{name}",' for name in names), "]"])


def defined_names(module: str) -> set[str]:
    names = set()
    for stmt in module_ast(module).body:
        if isinstance(stmt, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            names.add(stmt.name)
        elif isinstance(stmt, ast.Assign):
            names.update(t.id for t in stmt.targets if isinstance(t, ast.Name))
        elif isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
            names.add(stmt.target.id)
    return names | {"_DocumentType"}


def module_stub(module: str) -> str:
    """The stub of one of greenmotor's modules: every name it defines."""
    imports = Imports(module, defined_names(module))
    context = Context(imports, module)
    body: list[str] = []
    runtime = importlib.import_module(module)
    for stmt in module_ast(module).body:
        if isinstance(stmt, ast.ClassDef):
            cls = getattr(runtime, stmt.name)
            members = class_members(cls, context)
            body += ["", *block(class_header(cls, context), members)]
        elif isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
            params = [p for p, _ in parameters(stmt, context)]
            result = render(stmt.returns, context.replace(result=True))
            body += [
                "",
                *function_lines(
                    stmt.name, params, result, is_async=isinstance(stmt, ast.AsyncFunctionDef)
                ),
            ]
        elif isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
            body.append(f"{stmt.target.id}: {render(stmt.annotation, context)}")
        elif isinstance(stmt, ast.Assign):
            for target in stmt.targets:
                if not isinstance(target, ast.Name):
                    continue
                if target.id == "__all__":
                    body.append(all_list(runtime.__all__))
                else:
                    kind = attribute_type(getattr(runtime, target.id), context)
                    body.append(f"{target.id}: {kind}")
    typevar = typevar_lines(module, imports)
    return assemble(module, imports, typevar, body)


def flavour_stub() -> str:
    """``motor_asyncio.pyi``: each public class in the asyncio flavour, a subclass of the
    declared class that redeclares the members whose results are of the flavour."""
    module = FLAVOUR_MODULE
    classes = sorted(
        (cls for cls in greenmotor_classes() if not cls.__name__.startswith("_")),
        key=lambda cls: cls.__name__,
    )
    local = {flavoured_name(cls, ASYNCIO) for cls in classes} | {"_DocumentType"}
    imports = Imports(module, local)
    context = Context(imports, module, flavour=ASYNCIO)
    body: list[str] = [all_list(importlib.import_module(module).__all__)]
    for cls in classes:
        name = flavoured_name(cls, ASYNCIO)
        base = use_name(context, cls.__name__, cls.__module__)
        if is_generic(cls):
            header = f"class {name}({base}[_DocumentType]):"
        else:
            header = f"class {name}({base}):"
        body += ["", *block(header, flavour_overrides(cls, context))]
    typevar = typevar_lines(module, imports)
    return assemble(module, imports, typevar, body)


def flavour_overrides(cls: type, context: Context) -> list[tuple[str, list[str]]]:
    """The members of ``cls`` (own or inherited) whose asyncio flavour differs."""
    overrides: list[tuple[str, list[str]]] = []
    seen: set[str] = set()
    for klass in cls.__mro__:
        if klass is MotorWrapper or not issubclass(klass, MotorWrapper):
            continue
        scratch = context.replace(imports=Imports(context.module, context.imports.local))
        tornado = class_members(klass, scratch.replace(owner=cls, flavour=TORNADO))
        flavoured = dict(class_members(klass, scratch.replace(owner=cls)))
        differing = set()
        for name, lines in tornado:
            if name not in seen and flavoured[name] != lines:
                differing.add(name)
            seen.add(name)
        if differing:
            for name, lines in class_members(klass, context.replace(owner=cls), differing):
                overrides.append((name, [_covariant_future(line) for line in lines]))
    return overrides


def _covariant_future(line: str) -> str:
    """asyncio.Future is invariant (its set_result takes the type): an AsyncIOMotorClient's
    Future of an AsyncIOMotorDatabase overrides MotorClient's Future of a MotorDatabase as
    the result read from it, which is all an application does with it."""
    if line.startswith("def ") and re.search(r"-> Future\[", line):
        return f"{line}  # type: ignore[override]"
    return line


def assemble(module: str, imports: Imports, typevar: list[str], body: list[str]) -> str:
    source = module.replace(".", "/") + ".py"
    text = HEADER.format(source=source, pymongo=pymongo.version)
    return "\n".join([text.rstrip("\n"), "", *imports.lines(), "", *typevar, "", *body, ""])


def stubs() -> dict[Path, str]:
    """Each stub's path and text."""
    out = {}
    for module in MODULES:
        out[REPO / (module.replace(".", "/") + ".pyi")] = module_stub(module)
    out[REPO / (FLAVOUR_MODULE.replace(".", "/") + ".pyi")] = flavour_stub()
    return out


# --- checking the implementation ------------------------------------------------------------


def mypy_implementation() -> int:
    """Type-check the modules the stubs hide, from a copy of the package without their stubs,
    with the project's mypy settings.

    ``motor_asyncio.pyi`` stays: its module only calls ``for_framework()``, so the asyncio
    classes other modules name (``greenmotor.aiohttp``) exist for type checkers only there.
    It is written for the stubs' generic classes, so its own errors are not reported.
    """
    flavour_stub = FLAVOUR_MODULE.rpartition(".")[2] + ".pyi"
    with tempfile.TemporaryDirectory() as tmp:
        copy_of = Path(tmp) / "greenmotor"
        shutil.copytree(REPO / "greenmotor", copy_of, ignore=shutil.ignore_patterns("*.pyi"))
        shutil.copy(REPO / "greenmotor" / flavour_stub, copy_of / flavour_stub)
        shutil.copytree(REPO / "typings", Path(tmp) / "typings")  # mypy_path's stubs
        # The project's settings (pyproject.toml: strict), and the flavour stub's errors off.
        config = Path(tmp) / "pyproject.toml"
        config.write_text(
            (REPO / "pyproject.toml").read_text()
            + f'\n[[tool.mypy.overrides]]\nmodule = ["{FLAVOUR_MODULE}"]\nignore_errors = true\n'
        )
        command = [sys.executable, "-m", "mypy", "--config-file", str(config),
                   "--no-incremental", "--cache-dir", os.devnull, "greenmotor"]  # fmt: skip
        return subprocess.run(command, cwd=tmp, check=False).returncode


def _made_from() -> str | None:
    """The PyMongo release the committed stubs were made from (their header says)."""
    path = REPO / (MODULES[0].replace(".", "/") + ".pyi")
    if not path.exists():
        return None
    found = re.search(r"annotations of PyMongo (\S+?);", path.read_text())
    return found.group(1) if found else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="fail if a stub is out of date")
    parser.add_argument(
        "--mypy-implementation",
        action="store_true",
        help="type-check the modules the stubs hide, from a copy of the package without them",
    )
    args = parser.parse_args()
    if args.mypy_implementation:
        return mypy_implementation()
    if args.check:
        made_from = _made_from()
        if made_from is not None and made_from != pymongo.version:
            print(
                f"warning: the stubs were made from PyMongo {made_from}, PyMongo "
                f"{pymongo.version} is installed; not checked",
                file=sys.stderr,
            )
            return 0
    stale = []
    for path, text in stubs().items():
        current = path.read_text() if path.exists() else None
        if current == text:
            continue
        if args.check:
            stale.append(path.relative_to(REPO))
        else:
            path.write_text(text)
            print(f"wrote {path.relative_to(REPO)}")
    if stale:
        print(
            f"out of date: {', '.join(map(str, stale))}; run python tools/generate_typing.py",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
