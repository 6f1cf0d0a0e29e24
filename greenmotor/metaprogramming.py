"""Generate the public classes from declarative class bodies over PyMongo's classes.

A public class names the PyMongo class it wraps and declares each attribute once::

    class MotorCollection(MotorWrapper):
        __delegate_class__ = pymongo.collection.Collection

        insert_one = Async()                    # runs in a greenlet; Future or callback
        find = Delegate(wrap="MotorCursor")     # no I/O; result wrapped
        name = ReadOnly()                       # the delegate's attribute

When the class is created each declaration is replaced by the real method or property,
named and documented after the PyMongo attribute it delegates to. All behaviour lives in
the four declarations below and in :class:`MotorWrapper`.

The declared classes are the Tornado flavour. :func:`for_framework` derives another
flavour's class from one, e.g. ``AsyncIOMotorCollection`` from ``MotorCollection``: a
subclass that only says which :class:`~greenmotor.frameworks.Framework` it belongs to.
Objects a public object hands out (a collection's cursors, a client's databases) are of
its own flavour, so ``wrap="MotorCursor"`` means ``AsyncIOMotorCursor`` on the asyncio side.
"""

from __future__ import annotations

import difflib
import inspect
import itertools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Self, TypeVar

from greenmotor.core import spawn
from greenmotor.delivery import check_callback, check_session, deliver
from greenmotor.frameworks import TORNADO, Framework

if TYPE_CHECKING:  # for annotations only: client.py builds on this module
    from greenmotor.client import MotorClient

__all__ = [
    "Async",
    "Chain",
    "Delegate",
    "MotorWrapper",
    "ReadOnly",
    "check_wrap_names",
    "for_framework",
]

_class_for_delegate: dict[type, type[MotorWrapper]] = {}  # PyMongo class -> public class

# ``wrap=`` names not declared yet, each with where it was used. A class may name one
# declared later (MotorClient.get_database names MotorDatabase, below it); the package
# checks none is left once every module is imported (check_wrap_names), and afterwards a
# new class's names are checked as it is created.
_unresolved_wraps: dict[str, list[str]] = {}
_all_declared = False

_FUTURE_NOTE = """

greenmotor: returns a Future to ``await`` (or ``yield`` in a ``gen.coroutine``) that
resolves to {result}. With ``callback=fn`` it returns None and later calls
``fn(result, error)`` on the loop's thread, ``error`` being the exception PyMongo raised.
"""


def _unwrap(value: Any) -> Any:
    return value.delegate if isinstance(value, MotorWrapper) else value


def unwrap_all(
    args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Motor objects given as arguments (sessions, databases...) become PyMongo's."""
    check_session(_unwrap(kwargs.get("session")))
    # Most calls carry only documents and options: don't rebuild them (hot path).
    for value in itertools.chain(args, kwargs.values()):
        if isinstance(value, MotorWrapper):
            break
    else:
        return args, kwargs
    return (
        tuple(map(_unwrap, args)),
        {key: _unwrap(value) for key, value in kwargs.items()},
    )


_CALLBACK = inspect.Parameter("callback", inspect.Parameter.KEYWORD_ONLY, default=None)


def with_callback(signature: inspect.Signature) -> inspect.Signature:
    """``signature`` plus greenmotor's keyword-only ``callback=None`` (before ``**kwargs``)."""
    params = list(signature.parameters.values())
    if "callback" in signature.parameters:
        return signature
    at = len(params)
    if params and params[-1].kind is inspect.Parameter.VAR_KEYWORD:
        at -= 1
    return signature.replace(parameters=[*params[:at], _CALLBACK, *params[at:]])


class MotorAttribute:
    """A declaration in a class body, built into the real attribute when the class is made."""

    def __init__(self, wrap: str | None = None, attr_name: str | None = None, doc: str = ""):
        self.wrap = wrap  # name of the public class that wraps the result, if any
        self.attr_name = attr_name  # the delegate's attribute, if named differently
        self.doc = doc

    def wrapper_class(self, owner: MotorWrapper) -> type[MotorWrapper] | None:
        """The class of ``owner``'s flavour that wraps the result, if any."""
        if self.wrap is None:
            return None
        made = owner._framework.classes.get(self.wrap)
        return made or for_framework(owner._framework, TORNADO.classes[self.wrap])

    def wrap_result(self, owner: MotorWrapper, value: Any) -> Any:
        """``value`` (what PyMongo returned) as ``owner``'s flavour of the ``wrap=`` class;
        unchanged without ``wrap=``, or if None."""
        wrap = self.wrapper_class(owner)
        return value if wrap is None or value is None else wrap._from_delegate(owner, value)

    def delegate_doc(self, cls: type[MotorWrapper], name: str) -> str:
        target = getattr(cls.__delegate_class__, name, None)
        return self.doc or inspect.cleandoc(target.__doc__ or "" if target is not None else "")

    def describe(
        self, method: Callable[..., Any], cls: type[MotorWrapper], name: str, note: str = ""
    ) -> None:
        """Give ``method`` the PyMongo method's docstring and signature, as functools.wraps
        would, so ``help()``, IDEs and Sphinx show PyMongo's parameters. Methods answering
        with a Future also take ``callback``, keyword-only."""
        method.__doc__ = self.delegate_doc(cls, name) + note
        target = getattr(cls.__delegate_class__, name, None)
        if not callable(target):
            return
        try:
            signature = inspect.signature(target)
        except ValueError:  # a C method that does not describe its parameters
            return
        function_attributes = vars(method)  # what inspect.signature and help() read
        function_attributes["__wrapped__"] = target
        if isinstance(self, Async):
            signature = with_callback(signature)
        function_attributes["__signature__"] = signature

    def build(self, cls: type[MotorWrapper], name: str) -> Any:
        raise NotImplementedError

    if TYPE_CHECKING:
        # Type checkers see the declaration, not the method built from it: let them treat
        # declared attributes as what they become (a method, or a property's value).
        def __get__(self, obj: Any, owner: Any = None) -> Any: ...


class Async(MotorAttribute):
    """A PyMongo method that may do I/O: run it in a greenlet, answer with a Future."""

    def build(self, cls: type[MotorWrapper], name: str) -> Any:
        attr_name = self.attr_name or name
        wrap_declaration = self

        def method(self: MotorWrapper, *args: Any, callback: Any = None, **kwargs: Any) -> Any:
            check_callback(callback)
            loop = self._client._loop_for_call()
            bound = getattr(self.delegate, attr_name)
            if args or kwargs:
                args, kwargs = unwrap_all(args, kwargs)
            if wrap_declaration.wrap is None:
                future = spawn(loop, bound, *args, **kwargs)
            else:
                future = spawn(
                    loop, lambda: wrap_declaration.wrap_result(self, bound(*args, **kwargs))
                )
            return deliver(future, callback)

        result = f"a {self.wrap}" if self.wrap else "PyMongo's result"
        self.describe(method, cls, attr_name, _FUTURE_NOTE.format(result=result))
        return method


class Delegate(MotorAttribute):
    """A PyMongo method that does no I/O: call it directly, wrapping its result if asked."""

    def build(self, cls: type[MotorWrapper], name: str) -> Any:
        attr_name = self.attr_name or name
        wrap_declaration = self

        def method(self: MotorWrapper, *args: Any, **kwargs: Any) -> Any:
            args, kwargs = unwrap_all(args, kwargs)
            result = getattr(self.delegate, attr_name)(*args, **kwargs)
            return wrap_declaration.wrap_result(self, result)

        self.describe(method, cls, attr_name)
        return method


class Chain(MotorAttribute):
    """A cursor-building PyMongo method (``sort``, ``limit``...): returns the Motor object."""

    def build(self, cls: type[MotorWrapper], name: str) -> Any:
        attr_name = self.attr_name or name

        def method(self: MotorWrapper, *args: Any, **kwargs: Any) -> Any:
            args, kwargs = unwrap_all(args, kwargs)
            getattr(self.delegate, attr_name)(*args, **kwargs)
            return self

        self.describe(method, cls, attr_name)
        return method


class ReadOnly(MotorAttribute):
    """A PyMongo attribute or property, read through; wrapped if it is a PyMongo object."""

    def build(self, cls: type[MotorWrapper], name: str) -> Any:
        attr_name = self.attr_name or name
        wrap_declaration = self

        def getter(self: MotorWrapper) -> Any:
            return wrap_declaration.wrap_result(self, getattr(self.delegate, attr_name))

        return property(getter, doc=self.delegate_doc(cls, attr_name))


class MotorWrapper:
    """Base of the public classes: holds the PyMongo object (``delegate``) and the client.

    Subclasses set ``__delegate_class__`` and declare their API with the attributes above.
    """

    __delegate_class__: Any = object
    _framework: Framework = TORNADO  # declared classes are Tornado's; see for_framework()
    delegate: Any
    _client: MotorClient  # which knows the loop

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "_framework" in vars(cls):  # made by for_framework(): nothing declared here
            return
        declared = {n: v for n, v in vars(cls).items() if isinstance(v, MotorAttribute)}
        for name, value in declared.items():
            if value.wrap is not None and value.wrap != cls.__name__:
                _note_wrap(value.wrap, f"{cls.__module__}.{cls.__qualname__}.{name}")
        TORNADO.classes[cls.__name__] = cls
        _unresolved_wraps.pop(cls.__name__, None)
        for name, value in declared.items():
            built = value.build(cls, name)
            if callable(built):
                built.__name__ = name
                built.__qualname__ = f"{cls.__name__}.{name}"
                built.__module__ = cls.__module__
            setattr(cls, name, built)
        if "__delegate_class__" in vars(cls):
            _class_for_delegate.setdefault(cls.__delegate_class__, cls)

    # Allow generics at run time, as Motor does: MotorCollection[dict] is MotorCollection.
    @classmethod
    def __class_getitem__(cls, item: Any) -> Any:
        return cls

    @classmethod
    def _from_delegate(cls, owner: MotorWrapper, delegate: Any) -> Self:
        """Wrap a PyMongo object produced by ``owner`` (another public object), as an
        instance of ``cls`` in ``owner``'s flavour."""
        if cls._framework is not owner._framework:
            cls = for_framework(owner._framework, cls)
        obj = cls.__new__(cls)
        obj.delegate = delegate
        obj._client = owner._client
        return obj

    def _async_call(self, fn: Callable[[], Any], callback: Any = None) -> Any:
        """Run fn() in a greenlet: a Future, or ``callback(result, error)`` later."""
        check_callback(callback)
        return deliver(spawn(self._client._loop_for_call(), fn), callback)

    def wrap(self, obj: Any) -> Any:
        """The public greenmotor object for a PyMongo object (e.g. a Collection)."""
        cls = _class_for_delegate.get(type(obj))
        if cls is None:
            raise TypeError(f"greenmotor has no class wrapping {type(obj).__name__}")
        return cls._from_delegate(self, obj)

    def get_io_loop(self) -> Any:
        return self._client.get_io_loop()

    @property
    def io_loop(self) -> Any:
        return self._client.get_io_loop()

    def __eq__(self, other: object) -> bool:
        if isinstance(other, type(self)):  # as Motor: an instance of this class, or a subclass
            return bool(self.delegate == other.delegate)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.delegate)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.delegate!r})"

    def _flavoured(self, cls: type[_W]) -> type[_W]:
        """``cls`` (a declared class) in this object's flavour."""
        return for_framework(self._framework, cls)


_W = TypeVar("_W", bound=MotorWrapper)


def _note_wrap(wrap: str, where: str) -> None:
    """Record a ``wrap=`` name; once every module is imported, an unknown one raises."""
    if wrap in TORNADO.classes:
        return
    _unresolved_wraps.setdefault(wrap, []).append(where)
    if _all_declared:
        check_wrap_names()


def check_wrap_names() -> None:
    """Raise if a ``wrap=`` names no declared class; from now on check each new class.

    ``greenmotor/__init__.py`` calls it once all its modules are imported, so a misspelt
    name (``Delegate(wrap="MotorCurser")``) fails ``import greenmotor``, not a first call.
    """
    global _all_declared
    _all_declared = True
    if not _unresolved_wraps:
        return
    wrap, places = next(iter(_unresolved_wraps.items()))
    _unresolved_wraps.clear()
    public = sorted(name for name in TORNADO.classes if not name.startswith("_"))
    close = difflib.get_close_matches(wrap, public, n=1)
    hint = f"did you mean {close[0]!r}?" if close else f"declared: {', '.join(public)}"
    raise TypeError(f"wrap={wrap!r} in {', '.join(places)} names no greenmotor class; {hint}")


def for_framework(framework: Framework, cls: type[_W]) -> type[_W]:
    """The class ``cls`` has in ``framework``'s flavour, made once on first use.

    ``for_framework(ASYNCIO, MotorCursor)`` is ``AsyncIOMotorCursor``, a subclass of
    ``MotorCursor`` that belongs to the asyncio flavour; for Tornado it is ``cls`` itself.
    """
    declared_name = cls.__name__.removeprefix(cls._framework.class_prefix)
    made = framework.classes.get(declared_name)
    if made is None:
        declared = TORNADO.classes[declared_name]
        name = framework.class_prefix + declared_name
        made = type(name, (declared,), {
            "_framework": framework,
            "__module__": framework.module,
            "__qualname__": name,
            "__doc__": declared.__doc__,
        })  # fmt: skip
        framework.classes[declared_name] = made
    return made
