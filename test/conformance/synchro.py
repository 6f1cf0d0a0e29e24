"""Synchro: PyMongo's synchronous API as a thin facade over greenmotor.

It exists for one purpose: running PyMongo's own synchronous test suite against greenmotor
(see ``run.py`` and ``synchro_plugin.py`` beside this file). It is test code, not part of the
shipped package.

How a call works
----------------
All greenmotor objects made through the facade belong to **one Tornado IOLoop running in a
daemon thread** (:class:`LoopThread`). A facade call such as ``collection.insert_one(doc)``
hands ``motor_collection.insert_one(doc)`` to that loop, and the calling thread waits until
greenmotor's Future completes; its result (or exception) is returned (or raised) as PyMongo
would. Why a loop thread rather than ``io_loop.run_sync`` in the caller:

* PyMongo's tests use threads (``runOnThread`` in the unified format, concurrent cursors,
  ...). Any thread may call the facade, and calls run concurrently on the loop, as
  greenmotor's operations do in a Tornado app. With ``run_sync`` only one thread at a time
  could drive the loop, and a thread waiting for another's write would deadlock.
* The caller's contextvars travel with the call (``call_soon_threadsafe(..., context=)``),
  so ``with pymongo.timeout(0.5): coll.find_one()`` reaches greenmotor's greenlet exactly
  as it would from a coroutine.

A PyMongo event listener runs on the loop thread, inside the greenlet of the operation that
fired it. When such a listener calls the facade (a few of PyMongo's tests configure a fail
point from ``CommandListener.failed``), the call parks that greenlet until the loop has run
it, as greenmotor parks PyMongo's own waits.

Which attribute comes from where
--------------------------------
* greenmotor's public API first: a method that returns a Future is run to completion;
  greenmotor objects in results are wrapped in the matching facade class.
* Private names (``client._topology``, ``session._server_session``...) come from the PyMongo
  object greenmotor wraps, so PyMongo's tests of its own internals can look inside; a PyMongo
  client, database, collection, session or cursor found there is handed back wrapped in the
  facade (``change_stream._client.drop_database(...)`` still goes through greenmotor).
* A *public* PyMongo method that greenmotor does not declare raises AttributeError rather
  than silently running sync PyMongo: the suite must exercise greenmotor, not bypass it.
  Public data attributes (``cursor.retrieved``) are read from the PyMongo object.

Where greenmotor is lazy and PyMongo is eager (``aggregate()``, ``list_indexes()`` and
``watch()`` send their command when created in PyMongo, on first use in greenmotor), the
facade starts them at once, so errors and command events happen where PyMongo's tests
expect them.

Example::

    client = MongoClient("mongodb://127.0.0.1:27017")
    client.db.things.insert_one({"x": 1})
    assert client.db.things.find_one({"x": 1})["x"] == 1
    with client.start_session() as session, session.start_transaction():
        client.db.things.insert_one({"x": 2}, session=session)
    client.close()
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import functools
import inspect
import os
import threading
import weakref
from collections.abc import Callable
from typing import Any

from gridfs.synchronous.grid_file import GridOutCursor as PyMongoGridOutCursor
from pymongo.synchronous.client_session import ClientSession as PyMongoClientSession
from pymongo.synchronous.collection import Collection as PyMongoCollection
from pymongo.synchronous.database import Database as PyMongoDatabase
from pymongo.synchronous.mongo_client import MongoClient as PyMongoClient
from pymongo.synchronous.pool import Pool
from tornado.ioloop import IOLoop

import greenmotor
from greenmotor.core import Wakeup, current_driver_greenlet, spawn
from greenmotor.cursor import MotorLatentCommandCursor
from greenmotor.gridfs import MotorGridFSBucket, MotorGridIn, MotorGridOut, MotorGridOutCursor
from greenmotor.metaprogramming import MotorWrapper
from greenmotor.pymongo_hooks import GreenMongoClient, GreenPool

__all__ = [
    "ChangeStream",
    "ClientSession",
    "Collection",
    "CommandCursor",
    "Cursor",
    "Database",
    "GridFSBucket",
    "GridIn",
    "GridOut",
    "GridOutCursor",
    "LoopThread",
    "MongoClient",
    "RawBatchCommandCursor",
    "RawBatchCursor",
    "SynchroUsageError",
]


class SynchroUsageError(RuntimeError):
    """The facade was called on its loop's thread outside greenmotor's greenlets.

    Such a call would wait for the very loop it is blocking.
    """


class LoopThread:
    """A Tornado IOLoop running forever in a daemon thread; :meth:`call` runs work on it.

    ::

        loop = LoopThread()
        assert loop.call(lambda: 42) == 42                      # plain value
        assert loop.call(lambda: asyncio.sleep(0, "x")) == "x"  # awaitable: awaited
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._io_loop: IOLoop | None = None
        self.calls = 0
        # A forked child has no loop thread: it starts its own on its first call (clients
        # are not bound to a loop, so greenmotor takes the child's, as after any fork).
        os.register_at_fork(after_in_child=self._forget)

    def _forget(self) -> None:
        self._lock = threading.Lock()
        self._thread = None
        self._io_loop = None

    def __repr__(self) -> str:
        state = "running" if self._thread and self._thread.is_alive() else "not started"
        return f"<LoopThread {state} calls={self.calls}>"

    @property
    def io_loop(self) -> IOLoop:
        with self._lock:
            if self._io_loop is None:
                self._start()
        return self._io_loop  # type: ignore[return-value]

    def _start(self) -> None:
        ready = threading.Event()

        def run() -> None:
            self._io_loop = IOLoop(make_current=False)
            ready.set()
            self._io_loop.start()

        self._thread = threading.Thread(target=run, name="synchro-ioloop", daemon=True)
        self._thread.start()
        ready.wait()

    def call(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn()`` on the loop (awaiting its result if awaitable); return the outcome."""
        io_loop = self.io_loop
        on_loop_thread = threading.current_thread() is self._thread
        if on_loop_thread and current_driver_greenlet() is None:
            raise SynchroUsageError(
                "the synchro facade was called on greenmotor's loop thread outside its "
                "greenlets; that call would wait for the loop it blocks"
            )
        self.calls += 1
        outcome: concurrent.futures.Future = concurrent.futures.Future()

        def start() -> None:
            try:
                result = fn()
            except BaseException as exc:  # every outcome goes to the caller
                outcome.set_exception(exc)
                return
            if not inspect.isawaitable(result):
                outcome.set_result(result)
                return
            task = asyncio.ensure_future(result)  # copies this (the caller's) context
            task.add_done_callback(functools.partial(_transfer, outcome))

        context = contextvars.copy_context()
        if on_loop_thread:
            # A PyMongo event listener, running inside one of greenmotor's greenlets, calls
            # the driver (several of PyMongo's tests do). Blocking here would block the loop
            # the call needs: park this greenlet instead, as greenmotor parks PyMongo's waits.
            io_loop.asyncio_loop.call_soon(start, context=context)  # type: ignore[attr-defined]
            wakeup = Wakeup()
            outcome.add_done_callback(lambda _: wakeup.fire_threadsafe())
            wakeup.wait()
        else:
            io_loop.asyncio_loop.call_soon_threadsafe(start, context=context)  # type: ignore[attr-defined]
        return outcome.result()


def _transfer(outcome: concurrent.futures.Future, task: asyncio.Future) -> None:
    if task.cancelled():
        outcome.set_exception(asyncio.CancelledError())
    elif task.exception() is not None:
        exc = task.exception()
        # greenmotor's Futures carry StopAsyncIteration where PyMongo raises StopIteration.
        outcome.set_exception(StopIteration() if isinstance(exc, StopAsyncIteration) else exc)
    else:
        outcome.set_result(task.result())


loop_thread = LoopThread()

# The facade object of a PyMongo client or session is remembered on that object (by
# identity: PyMongo clients compare equal when their seeds match), so ``session.client is
# client`` and ``cursor.session is session`` hold as in PyMongo.
_FACADE_ATTRIBUTE = "_synchro_facade"


def unwrap(value: Any) -> Any:
    """Facade objects given as arguments become greenmotor's."""
    return value._motor if isinstance(value, Synchro) else value


def _unwrap_all(args: tuple, kwargs: dict) -> tuple[tuple, dict]:
    return tuple(map(unwrap, args)), {key: unwrap(value) for key, value in kwargs.items()}


def wrap(value: Any) -> Any:
    """greenmotor objects in results become facade objects; anything else is returned as is."""
    if isinstance(value, MotorWrapper):
        cls = _facade_class_for(type(value))
        if cls is None:
            return value
        delegate = value.delegate
        cached = _cached_facade(delegate)
        if cached is not None:
            return cached
        facade = cls._from_motor(value)
        if cls in (MongoClient, ClientSession):
            _remember(delegate, facade)
        return facade
    if isinstance(value, list) and value and isinstance(value[0], MotorWrapper):
        return [wrap(item) for item in value]  # e.g. GridFS find().to_list()
    return value


def _cached_facade(delegate: Any) -> Any:
    ref = getattr(delegate, "__dict__", {}).get(_FACADE_ATTRIBUTE)
    return ref() if ref is not None else None


def _remember(delegate: Any, facade: Synchro) -> None:
    if hasattr(delegate, "__dict__"):
        delegate.__dict__[_FACADE_ATTRIBUTE] = weakref.ref(facade)


def _rewrap_pymongo(value: Any, owner: Synchro) -> Any:
    """A PyMongo object read from a delegate (``cursor.collection``) back into the facade."""
    if isinstance(value, (PyMongoClient, PyMongoClientSession)):
        cached = _cached_facade(value)
        if cached is not None:
            return cached
    motor_client = owner._motor._client
    if isinstance(value, PyMongoCollection):
        return Collection._from_motor(
            greenmotor.MotorCollection._from_delegate(motor_client, value)
        )
    if isinstance(value, PyMongoDatabase):
        return Database._from_motor(greenmotor.MotorDatabase._from_delegate(motor_client, value))
    if isinstance(value, PyMongoClient) and value is motor_client.delegate:
        return wrap(motor_client)
    if type(value) in _MOTOR_CURSOR_OF:  # e.g. a change stream's ``_cursor``
        return wrap(_MOTOR_CURSOR_OF[type(value)]._from_delegate(owner._motor, value))
    return value


_MOTOR_CURSOR_OF = {
    cls.__delegate_class__: cls
    for cls in (
        greenmotor.MotorCursor,
        greenmotor.MotorRawBatchCursor,
        greenmotor.MotorCommandCursor,
        greenmotor.MotorRawBatchCommandCursor,
    )
}


def _run(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call a greenmotor callable on the loop thread; wait for and wrap its result."""
    args, kwargs = _unwrap_all(args, kwargs)
    return wrap(loop_thread.call(lambda: fn(*args, **kwargs)))


class _SynchroMeta(type):
    """Private names of a facade *class* are those of the PyMongo class underneath.

    Tests patch PyMongo internals on the client's class, e.g.
    ``patch.object(type(client), "_should_pin_cursor", ...)``: reading, setting and deleting
    such a name on ``synchro.MongoClient`` acts on greenmotor's PyMongo client class, so the
    patch reaches the clients greenmotor runs (and no plain PyMongo client).
    """

    def _pymongo_class(cls) -> type | None:
        if issubclass(cls, MongoClient):
            return GreenMongoClient
        return getattr(cls.__dict__.get("_motor_class"), "__delegate_class__", None)

    def _redirects(cls, name: str) -> bool:
        private = name.startswith("_") and not name.startswith("__")
        return private and cls._pymongo_class() is not None and not _defined_on(cls, name)

    def __getattr__(cls, name: str) -> Any:
        if name.startswith("_") and not name.startswith("__"):
            pymongo_class = cls._pymongo_class()
            if pymongo_class is not None:
                return getattr(pymongo_class, name)
        raise AttributeError(f"type object {cls.__name__!r} has no attribute {name!r}")

    def __setattr__(cls, name: str, value: Any) -> None:
        if cls._redirects(name):
            setattr(cls._pymongo_class(), name, value)
        else:
            super().__setattr__(name, value)

    def __delattr__(cls, name: str) -> None:
        if cls._redirects(name):
            delattr(cls._pymongo_class(), name)
        else:
            super().__delattr__(name)


def _defined_on(cls: type, name: str) -> bool:
    return any(name in klass.__dict__ for klass in cls.__mro__)


class Synchro(metaclass=_SynchroMeta):
    """Base of the facade classes: wraps one greenmotor object, ``_motor``."""

    _motor_class: type = object
    _motor: Any

    @classmethod
    def _from_motor(cls, motor: Any) -> Any:
        obj = cls.__new__(cls)
        object.__setattr__(obj, "_motor", motor)
        return obj

    def __class_getitem__(cls, item: Any) -> type:  # MongoClient[dict] in annotations
        return cls

    @property
    def delegate(self) -> Any:
        """The PyMongo object underneath (as greenmotor's ``delegate``)."""
        return self._motor.delegate

    def __getattr__(self, name: str) -> Any:
        if name == "_motor":
            raise AttributeError(name)
        if name.startswith("_"):
            return self._pymongo_attribute(name)
        motor = self._motor
        try:
            attr = getattr(motor, name)
        except AttributeError:
            return self._pymongo_attribute(name)
        if isinstance(attr, MotorWrapper):
            return wrap(attr)
        if inspect.ismethod(attr) and attr.__self__ is motor:
            return self._synchronized(attr)
        if isinstance(attr, (PyMongoClient, PyMongoClientSession)):
            return _rewrap_pymongo(attr, self)  # e.g. cursor.session: the facade session
        return wrap(attr)

    def _synchronized(self, method: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            result = _run(method, *args, **kwargs)
            return self if unwrap(result) is self._motor else result

        functools.update_wrapper(call, method)  # greenmotor's name, docstring and signature
        return call

    def _pymongo_attribute(self, name: str) -> Any:
        motor = self._motor
        delegate = motor.delegate
        value = getattr(delegate, name)  # AttributeError here is the right answer
        if name.startswith("_"):
            return _rewrap_pymongo(value, self)
        if inspect.ismethod(value) or inspect.isbuiltin(value):
            raise AttributeError(
                f"greenmotor's {type(motor).__name__} has no {name!r} "
                f"(PyMongo's {type(delegate).__name__}.{name} is not offered)"
            )
        return _rewrap_pymongo(value, self)

    def __setattr__(self, name: str, value: Any) -> None:
        # Tests set PyMongo internals (``cursor._Cursor__foo = ...``) and check that public
        # properties are read-only: both are about the PyMongo object underneath. Other new
        # attributes (the unified runner adds ``bucket.drop``) stay on the facade object.
        try:  # a subclass (PyMongo's MockClient) may set attributes before __init__ runs
            motor = object.__getattribute__(self, "_motor")
        except AttributeError:
            motor = None
        delegate = getattr(motor, "delegate", None)
        if delegate is not None and (name.startswith("_") or hasattr(type(delegate), name)):
            setattr(delegate, name, value)
        else:
            object.__setattr__(self, name, value)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Synchro):
            return bool(self._motor == other._motor)
        return NotImplemented

    def __ne__(self, other: object) -> bool:
        result = self.__eq__(other)
        return result if result is NotImplemented else not result

    def __hash__(self) -> int:
        return hash(self._motor)

    def __repr__(self) -> str:
        return repr(self._motor.delegate)  # the facade passes for PyMongo's object


class _NamedChildren(Synchro):
    """Client, database and collection: ``parent.name`` and ``parent["name"]``."""

    def __getitem__(self, name: str) -> Any:
        return wrap(self._motor[name])

    def __bool__(self) -> bool:
        return bool(self._motor)  # database and collection raise NotImplementedError

    __iter__ = None  # as PyMongo's: iter() raises "'MongoClient' object is not iterable"

    def __next__(self) -> Any:  # as PyMongo's: defined, yet not iterable
        raise TypeError(f"'{type(self).__name__}' object is not iterable")

    next = __next__

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._motor(*args, **kwargs)

    def watch(self, *args: Any, **kwargs: Any) -> ChangeStream:
        """Open a change stream now, as PyMongo does (greenmotor opens on first use)."""
        args, kwargs = _unwrap_all(args, kwargs)

        async def open_stream() -> Any:
            stream = self._motor.watch(*args, **kwargs)
            await spawn(asyncio.get_running_loop(), stream._open)
            return stream

        return wrap(loop_thread.call(open_stream))

    def _started(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """A greenmotor latent command cursor, started now as PyMongo's is."""
        args, kwargs = _unwrap_all(args, kwargs)

        async def start() -> Any:
            cursor = getattr(self._motor, method)(*args, **kwargs)
            if isinstance(cursor, MotorLatentCommandCursor):
                await spawn(asyncio.get_running_loop(), cursor._started_delegate)
            return cursor

        return wrap(loop_thread.call(start))


class MongoClient(_NamedChildren):
    """PyMongo's ``MongoClient`` signature; a greenmotor MotorClient underneath."""

    _motor_class = greenmotor.MotorClient
    HOST = PyMongoClient.HOST
    PORT = PyMongoClient.PORT

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # PyMongo's defaults where greenmotor's differ: connect=True (greenmotor, like Motor,
        # connects on first use), and HOST/PORT read from this class, which tests change.
        names = ("host", "port", "document_class", "tz_aware", "connect")
        given = set(names[: len(args)]) | set(kwargs)
        defaults = {"host": type(self).HOST, "port": type(self).PORT, "connect": True}
        kwargs.update({key: value for key, value in defaults.items() if key not in given})
        if "_pool_class" in kwargs:
            kwargs["_pool_class"] = green_pool_class(kwargs["_pool_class"])
        # Not bound to the loop thread's IOLoop: greenmotor binds the client to the loop of
        # its first call - always the loop thread's, or a forked child's own.
        motor = greenmotor.MotorClient(*args, **kwargs)
        object.__setattr__(self, "_motor", motor)
        _remember(motor.delegate, self)

    def close(self) -> None:
        # Off the loop's thread greenmotor closes synchronously, exactly like PyMongo.
        self._motor.close()

    def __enter__(self) -> MongoClient:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def green_pool_class(pool_class: Any) -> Any:
    """A PyMongo ``_pool_class`` (or a partial of one) made green: GreenPool mixed in first.

    PyMongo's MockClient passes ``partial(MockPool, client)``: a Pool subclass that routes
    checkouts by mocked host. Mixed in after GreenPool it keeps that routing while the pool's
    queues, sockets and connections are greenmotor's own, so the tests check greenmotor's pool.
    """
    partial = pool_class if isinstance(pool_class, functools.partial) else None
    cls = partial.func if partial else pool_class
    if not issubclass(cls, Pool):
        # A stub that is no Pool at all (test_heartbeat_monitoring's hands out fake
        # connections to a fake server): it does no I/O, so it keeps its own methods;
        # GreenPool is only its base of last resort.
        cls = type(f"Green{cls.__name__}", (cls, GreenPool), {})
    elif not issubclass(cls, GreenPool):
        cls = type(f"Green{cls.__name__}", (GreenPool, cls), {})
    return functools.partial(cls, *partial.args, **partial.keywords) if partial else cls


class Database(_NamedChildren):
    _motor_class = greenmotor.MotorDatabase

    def __init__(self, client: MongoClient, name: str, *args: Any, **kwargs: Any) -> None:
        motor = greenmotor.MotorDatabase(unwrap(client), name, *args, **kwargs)
        object.__setattr__(self, "_motor", motor)

    def aggregate(self, *args: Any, **kwargs: Any) -> CommandCursor:
        return self._started("aggregate", *args, **kwargs)


class Collection(_NamedChildren):
    _motor_class = greenmotor.MotorCollection

    def __init__(self, database: Database, name: str, *args: Any, **kwargs: Any) -> None:
        motor = greenmotor.MotorCollection(unwrap(database), name, *args, **kwargs)
        object.__setattr__(self, "_motor", motor)

    def aggregate(self, *args: Any, **kwargs: Any) -> CommandCursor:
        return self._started("aggregate", *args, **kwargs)

    def aggregate_raw_batches(self, *args: Any, **kwargs: Any) -> CommandCursor:
        return self._started("aggregate_raw_batches", *args, **kwargs)

    def list_indexes(self, *args: Any, **kwargs: Any) -> CommandCursor:
        return self._started("list_indexes", *args, **kwargs)

    def list_search_indexes(self, *args: Any, **kwargs: Any) -> CommandCursor:
        return self._started("list_search_indexes", *args, **kwargs)


class _Iterating(Synchro):
    """Cursors and change streams: ``for doc in cursor``, ``next(cursor)``, ``with``."""

    def __iter__(self) -> Any:
        return self

    def __next__(self) -> Any:
        return _run(self._motor.next)

    next = __next__

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class Cursor(_Iterating):
    _motor_class = greenmotor.MotorCursor

    def __init__(self, collection: Collection, *args: Any, **kwargs: Any) -> None:
        motor = unwrap(collection).find(*args, **kwargs)
        object.__setattr__(self, "_motor", motor)

    @property  # type: ignore[misc]
    def __dict__(self) -> dict:  # type: ignore[override]
        """The PyMongo cursor's attributes: PyMongo's clone tests compare them."""
        return self._motor.delegate.__dict__

    def __copy__(self) -> Cursor:
        return wrap(self._motor.__copy__())

    def __deepcopy__(self, memo: Any) -> Cursor:
        return wrap(self._motor.__deepcopy__(memo))


class RawBatchCursor(Cursor):
    _motor_class = greenmotor.MotorRawBatchCursor


class CommandCursor(_Iterating):
    _motor_class = greenmotor.MotorCommandCursor

    def __init__(self, collection: Collection, *args: Any, **kwargs: Any) -> None:
        """PyMongo's constructor (a cursor over a server-side cursor someone opened)."""
        motor_collection = unwrap(collection)
        args, kwargs = _unwrap_all(args, kwargs)
        if kwargs.get("session") is not None:
            kwargs["session"] = kwargs["session"].delegate
        delegate_class = self._motor_class.__delegate_class__
        cursor = delegate_class(motor_collection.delegate, *args, **kwargs)
        object.__setattr__(self, "_motor", self._motor_class(cursor, motor_collection))


class RawBatchCommandCursor(CommandCursor):
    _motor_class = greenmotor.MotorRawBatchCommandCursor


class ChangeStream(_Iterating):
    _motor_class = greenmotor.MotorChangeStream


# PyMongo's kinds of change stream; the tests only use them as names and in isinstance.
ClusterChangeStream = DatabaseChangeStream = CollectionChangeStream = ChangeStream


class ClientSession(Synchro):
    _motor_class = greenmotor.MotorClientSession

    def __enter__(self) -> ClientSession:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.end_session()

    def bind(self, end_session: bool = True) -> _Binding:
        """Pass this session implicitly to the operations inside ``with``."""
        return _Binding(self, end_session)

    def start_transaction(self, *args: Any, **kwargs: Any) -> _TransactionContext:
        """Start a transaction (no I/O); ``with`` commits it, or aborts on an exception."""
        self._motor.start_transaction(*args, **kwargs)
        return _TransactionContext(self)

    def with_transaction(
        self, callback: Callable[[ClientSession], Any], *args: Any, **kwargs: Any
    ) -> Any:
        """greenmotor's with_transaction, running PyMongo-style sync ``callback(session)``.

        greenmotor awaits a coroutine; the facade's callback is synchronous and calls the
        facade itself, so it runs in an executor thread while greenmotor's retry loop waits.
        """

        async def run_callback(_motor_session: Any) -> Any:
            context = contextvars.copy_context()
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(None, context.run, callback, self)

        return _run(self._motor.with_transaction, run_callback, *args, **kwargs)


class _Binding:
    """``with session.bind():`` - PyMongo's bound-session context variable, set by greenmotor's
    ``bind()`` in the *caller's* context, which every facade call carries to the loop."""

    def __init__(self, session: ClientSession, end_session: bool) -> None:
        self._session = session
        self._bound = session._motor.bind(end_session)  # greenmotor's _BoundSession

    def __repr__(self) -> str:
        return f"<synchro binding of {self._session!r}>"

    def __enter__(self) -> ClientSession:
        self._bound._binding.__enter__()
        return self._session

    def __exit__(self, *exc: Any) -> None:
        self._bound._binding.__exit__(*exc)
        if self._bound._end_session:
            self._session.end_session()


class _TransactionContext:
    def __init__(self, session: ClientSession) -> None:
        self._session = session

    def __repr__(self) -> str:
        return f"<synchro transaction of {self._session!r}>"

    def __enter__(self) -> _TransactionContext:
        return self

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        if self._session.in_transaction:
            if exc_type is None:
                self._session.commit_transaction()
            else:
                self._session.abort_transaction()


class GridFSBucket(Synchro):
    _motor_class = MotorGridFSBucket

    def __init__(self, db: Database, *args: Any, **kwargs: Any) -> None:
        object.__setattr__(self, "_motor", MotorGridFSBucket(unwrap(db), *args, **kwargs))


class GridIn(Synchro):
    _motor_class = MotorGridIn

    def __init__(self, root_collection: Collection, *args: Any, **kwargs: Any) -> None:
        args, kwargs = _unwrap_all(args, kwargs)
        motor = MotorGridIn(unwrap(root_collection), *args, **kwargs)
        object.__setattr__(self, "_motor", motor)

    def __setattr__(self, name: str, value: Any) -> None:
        # PyMongo's ``grid_in.x = 1`` sets a field of the file document (sent at close, or at
        # once after it): greenmotor's (Motor's) ``set(name, value)``. Properties and
        # internals keep the base behaviour (read-only properties raise AttributeError).
        delegate = self._motor.delegate
        if name.startswith("_") or hasattr(type(delegate), name) or name in delegate.__dict__:
            super().__setattr__(name, value)
        else:
            _run(self._motor.set, name, value)

    def __enter__(self) -> GridIn:
        return self

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


class GridOut(Synchro):
    _motor_class = MotorGridOut

    def __init__(self, root_collection: Collection, *args: Any, **kwargs: Any) -> None:
        args, kwargs = _unwrap_all(args, kwargs)
        motor = MotorGridOut(unwrap(root_collection), *args, **kwargs)
        object.__setattr__(self, "_motor", motor)

    def __getattr__(self, name: str) -> Any:
        # PyMongo's GridOut reads its file document on first use; greenmotor's (as Motor's)
        # wants ``await grid_out.open()`` first. The facade opens it where PyMongo would.
        opening = name.startswith("_") or name in ("open", "delegate")
        if not opening and not self._motor.delegate._file:
            _run(self._motor.open)
        return super().__getattr__(name)

    def __iter__(self) -> GridOut:
        return self

    def __next__(self) -> bytes:
        line = self.readline()  # PyMongo's GridOut iterates by line
        if not line:
            raise StopIteration
        return line  # type: ignore[no-any-return]

    def __enter__(self) -> GridOut:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class GridOutCursor(Cursor):
    _motor_class = MotorGridOutCursor

    def __init__(
        self,
        collection: Collection,
        filter: Any = None,
        skip: int = 0,
        limit: int = 0,
        no_cursor_timeout: bool = False,
        sort: Any = None,
        batch_size: int = 0,
        session: Any = None,
    ) -> None:
        motor_collection = unwrap(collection)
        cursor = PyMongoGridOutCursor(
            motor_collection.delegate,
            filter,
            skip=skip,
            limit=limit,
            no_cursor_timeout=no_cursor_timeout,
            sort=sort,
            batch_size=batch_size,
            session=unwrap(session).delegate if session is not None else None,
        )
        object.__setattr__(self, "_motor", MotorGridOutCursor(cursor, motor_collection))


def _take_greenmotor_signatures() -> None:
    """The facade's own methods show greenmotor's signature and docstring, as the others do."""
    names = ("watch", "aggregate", "aggregate_raw_batches", "list_indexes", "list_search_indexes")
    for cls in (MongoClient, Database, Collection):
        for name in names:
            motor_method = getattr(cls._motor_class, name, None)
            facade_method = getattr(cls, name, None)
            if motor_method is None or facade_method is None:
                continue

            def method(
                self: Synchro, *args: Any, _facade: Any = facade_method, **kwargs: Any
            ) -> Any:
                return _facade(self, *args, **kwargs)

            setattr(cls, name, functools.update_wrapper(method, motor_method))


_take_greenmotor_signatures()

_FACADE_CLASSES: list[type[Synchro]] = [
    GridOutCursor,
    GridFSBucket,
    GridIn,
    GridOut,
    MongoClient,
    Database,
    Collection,
    RawBatchCursor,
    Cursor,
    RawBatchCommandCursor,
    CommandCursor,
    ChangeStream,
    ClientSession,
]


def _facade_class_for(motor_class: type) -> type[Synchro] | None:
    for cls in _FACADE_CLASSES:  # most specific first
        if issubclass(motor_class, cls._motor_class):
            return cls
    return None
