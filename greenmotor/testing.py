"""Clients for unit tests that need no MongoDB server: an in-memory database (mongomock).

:class:`MotorClient` (Tornado) and :class:`AsyncIOMotorClient` (asyncio) are greenmotor's
clients with one difference: their operations run against `mongomock
<https://github.com/mongomock/mongomock>`_, an in-memory implementation of PyMongo's API,
instead of a server. Everything above PyMongo is greenmotor's own code: the databases,
collections and cursors are the usual :class:`~greenmotor.MotorDatabase`,
:class:`~greenmotor.MotorCollection`, :class:`~greenmotor.MotorCursor`... and each operation
returns a Future (or calls its ``callback``) on the loop, so application code runs
unchanged::

    from greenmotor.testing import AsyncIOMotorClient

    async def test_signup():
        client = AsyncIOMotorClient()          # a fresh, empty, in-memory server
        await signup(client.app.users, "ada")  # the application's code
        assert await client.app.users.count_documents({"name": "ada"}) == 1

mongomock is optional: ``pip install 'greenmotor[testing]'``. It emulates CRUD, cursors,
indexes and much of the aggregation language; it does not emulate sessions, transactions,
change streams, GridFS, raw BSON batches, ``explain``, server commands beyond a few, or
authentication (see ``doc/testing.rst``). Those raise ``NotImplementedError``.

Nothing here opens a socket or starts a thread.
"""

from __future__ import annotations

import collections
import functools
import inspect
from collections.abc import Callable, Collection, Iterable
from typing import Any

import pymongo.collection
import pymongo.cursor
import pymongo.database
import pymongo.mongo_client

from greenmotor.client import MotorClient as _MotorClient
from greenmotor.frameworks import ASYNCIO, TORNADO
from greenmotor.motor_asyncio import AsyncIOMotorClient as _AsyncIOMotorClient

__all__ = ["AsyncIOMotorClient", "MotorClient", "NOT_EMULATED"]

#: Options that change how a server works, never which documents an operation finds or
#: writes. mongomock refuses some of them; in memory they mean nothing, so they are dropped
#: where mongomock's method does not take them.
IGNORED_OPTIONS = frozenset({
    "comment", "hint", "max_time_ms", "maxTimeMS", "max_await_time_ms", "batch_size",
    "batchSize", "allow_disk_use", "allowDiskUse", "no_cursor_timeout",
})  # fmt: skip

#: What mongomock does not emulate, by PyMongo method: calling one raises NotImplementedError.
NOT_EMULATED = {
    "watch": "change streams",
    "start_session": "sessions and transactions",
    "find_raw_batches": "raw BSON batches",
    "aggregate_raw_batches": "raw BSON batches",
    "explain": "explain",
    "list_search_indexes": "Atlas Search indexes",
    "create_search_index": "Atlas Search indexes",
    "create_search_indexes": "Atlas Search indexes",
    "drop_search_index": "Atlas Search indexes",
    "update_search_index": "Atlas Search indexes",
    "cursor_command": "cursor commands",
    "validate_collection": "validate",
}


def _mongomock() -> Any:
    try:
        import mongomock
    except ImportError as exc:
        raise ImportError(
            "greenmotor.testing runs operations against mongomock, which is not installed: "
            "pip install 'greenmotor[testing]' (or pip install mongomock)"
        ) from exc
    return mongomock


def _not_emulated(name: str) -> NotImplementedError:
    what = NOT_EMULATED.get(name, name)
    return NotImplementedError(
        f"greenmotor.testing does not emulate {what} ({name}): mongomock has no such feature. "
        "Test this code against a real server (e.g. SecantusDB, or mongod)."
    )


def _unwrap(value: Any) -> Any:
    return value._target if isinstance(value, _Proxy) else value


def _call(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """``fn(*args, **kwargs)`` with proxies unwrapped and meaningless options dropped."""
    args = tuple(_unwrap(arg) for arg in args)
    kwargs = {key: _unwrap(value) for key, value in kwargs.items()}
    ignorable = IGNORED_OPTIONS.intersection(kwargs)
    if ignorable:
        parameters: Collection[str]
        try:
            parameters = inspect.signature(fn).parameters
        except (TypeError, ValueError):
            parameters = ()
        for key in ignorable:
            if key not in parameters:
                del kwargs[key]
    return fn(*args, **kwargs)


class _Proxy:
    """A mongomock object seen as the PyMongo object greenmotor's classes expect.

    Attributes are mongomock's; results that are mongomock databases, collections or
    cursors come back as proxies, so greenmotor can wrap them as usual.
    """

    _pymongo_class: type = object

    def __init__(self, target: Any, client: _ClientProxy | None = None) -> None:
        self._target = target
        self._client_proxy = client

    def __repr__(self) -> str:
        return f"InMemory({self._target!r})"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, _Proxy):
            return bool(self._target == other._target)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._target)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        if name in NOT_EMULATED:
            raise _not_emulated(name)
        value = getattr(self._target, name)
        mongomock = _mongomock()
        made_up = isinstance(value, (mongomock.Collection, mongomock.Database))
        if made_up and hasattr(self._pymongo_class, name):
            # mongomock answers any unknown name with a database or collection of that name:
            # a PyMongo method or property it lacks would fail later, less clearly.
            raise _not_emulated(name)
        if callable(value):
            return functools.partial(self._adapted_call, value)
        return self._adapt(value)

    def _adapted_call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return self._adapt(_call(fn, args, kwargs))

    def _adapt(self, value: Any) -> Any:
        mongomock = _mongomock()
        client = self._client_proxy
        if isinstance(value, mongomock.Collection):
            return _CollectionProxy(value, client)
        if isinstance(value, mongomock.Database):
            return _DatabaseProxy(value, client)
        if isinstance(value, mongomock.MongoClient):
            return client
        if isinstance(value, mongomock.collection.Cursor):
            return _Cursor(value, client)
        if isinstance(value, mongomock.command_cursor.CommandCursor) or inspect.isgenerator(value):
            return _CommandCursor(value, client)
        return value

    def __getitem__(self, name: str) -> Any:
        return self._adapt(self._target[name])

    def __bool__(self) -> bool:
        raise NotImplementedError(
            f"{self._pymongo_class.__name__} objects have no truth value; compare with None"
        )

    def watch(self, *args: Any, **kwargs: Any) -> Any:
        raise _not_emulated("watch")


class _ClientProxy(_Proxy):
    _pymongo_class = pymongo.mongo_client.MongoClient

    def __init__(self, target: Any) -> None:
        super().__init__(target, self)

    def start_session(self, *args: Any, **kwargs: Any) -> Any:
        raise _not_emulated("start_session")

    def list_databases(self, *args: Any, **kwargs: Any) -> _CommandCursor:
        names = self._target.list_database_names()
        return _CommandCursor([{"name": name, "empty": False} for name in names], self)

    def bulk_write(self, *args: Any, **kwargs: Any) -> Any:
        raise _not_emulated("bulk_write")  # the client-level (MongoDB 8) bulk write


class _DatabaseProxy(_Proxy):
    _pymongo_class = pymongo.database.Database

    def list_collections(self, filter: Any = None, **kwargs: Any) -> _CommandCursor:
        """The collections' names and types (mongomock keeps no options or info)."""
        names = _call(self._target.list_collection_names, (), {"filter": filter, **kwargs})
        return _CommandCursor([{"name": name, "type": "collection"} for name in names], None)

    def aggregate(self, *args: Any, **kwargs: Any) -> Any:
        raise _not_emulated("aggregate")  # database-level aggregation ($currentOp...)


class _CollectionProxy(_Proxy):
    _pymongo_class = pymongo.collection.Collection

    def find(self, *args: Any, **kwargs: Any) -> _Cursor:
        return _Cursor(_call(self._target.find, args, kwargs), self._client_proxy)

    def aggregate(self, pipeline: Any, *args: Any, **kwargs: Any) -> _CommandCursor:
        kwargs.pop("batchSize", None)
        return _CommandCursor(_call(self._target.aggregate, (pipeline, *args), kwargs), None)

    def list_indexes(self, *args: Any, **kwargs: Any) -> _CommandCursor:
        return _CommandCursor(_call(self._target.list_indexes, args, kwargs), None)

    def bulk_write(
        self,
        requests: Iterable[Any],
        ordered: bool = True,
        bypass_document_validation: bool | None = None,
        session: Any = None,
        **kwargs: Any,
    ) -> Any:
        """mongomock's bulk_write, taking the ``sort`` PyMongo (4.11+) passes for each
        update and replacement (it has no effect unless given)."""
        if bypass_document_validation or session is not None:
            return _call(
                self._target.bulk_write,
                (requests, ordered, bypass_document_validation, session),
                kwargs,
            )
        mongomock = _mongomock()
        bulk = _bulk_builder_class()(self._target, ordered=ordered)
        for request in requests:
            request._add_to_bulk(bulk)
        return mongomock.results.BulkWriteResult(bulk.execute(), True)


@functools.cache
def _bulk_builder_class() -> type:
    builder: type = _mongomock().collection.BulkOperationBuilder

    class Builder(builder):  # type: ignore[misc]
        def add_update(self, *args: Any, sort: Any = None, **kwargs: Any) -> Any:
            if sort is not None:
                raise _not_emulated("UpdateOne(sort=...)")
            return super().add_update(*args, **kwargs)

        def add_replace(self, *args: Any, sort: Any = None, **kwargs: Any) -> Any:
            if sort is not None:
                raise _not_emulated("ReplaceOne(sort=...)")
            return super().add_replace(*args, **kwargs)

    return Builder


class _CursorBase:
    """What greenmotor's cursor classes use of a PyMongo cursor, over a mongomock result.

    The first fetch (``_refresh``) reads every result into the buffer: one batch, after
    which the "server cursor" is closed (``cursor_id`` 0), as with a small real query.
    """

    session = None

    def __init__(self, client: _ClientProxy | None) -> None:
        self._client_proxy = client
        self._data: collections.deque[Any] = collections.deque()
        self._started = False
        self._killed = False

    def __repr__(self) -> str:
        state = "killed" if self._killed else ("started" if self._started else "not started")
        return f"<InMemory {type(self).__name__.lstrip('_')} {state} buffered={len(self._data)}>"

    def _results(self) -> Iterable[Any]:
        raise NotImplementedError

    def _refresh(self) -> int:
        if not self._started and not self._killed:
            self._started = True
            self._data.extend(self._results())
            self._killed = True
        return len(self._data)

    @property
    def alive(self) -> bool:
        return bool(self._data) or not self._killed

    @property
    def cursor_id(self) -> int | None:
        return 0 if self._started else None

    @property
    def address(self) -> Any:
        return ("localhost", 27017) if self._started else None

    def next(self) -> Any:
        if not self._data:
            self._refresh()
        if not self._data:
            raise StopIteration
        return self._data.popleft()

    __next__ = next

    def __iter__(self) -> _CursorBase:
        return self

    def to_list(self, length: int | None = None) -> list[Any]:
        self._refresh()
        count = len(self._data) if length is None else min(length, len(self._data))
        return [self._data.popleft() for _ in range(count)]

    def try_next(self) -> Any:
        self._refresh()
        return self._data.popleft() if self._data else None

    def close(self) -> None:
        self._killed = True

    def batch_size(self, batch_size: int) -> _CursorBase:
        if not isinstance(batch_size, int):
            raise TypeError("batch_size must be an integer")
        if batch_size < 0:
            raise ValueError("batch_size must be >= 0")
        return self


def _cursor_option(name: str) -> Callable[..., _Cursor]:
    """The cursor method that sets option ``name`` (see ``_Cursor._option``)."""

    def option(self: _Cursor, *args: Any, **kwargs: Any) -> _Cursor:
        return self._option(name, *args, **kwargs)

    option.__name__ = option.__qualname__ = name
    return option


class _Cursor(_CursorBase):
    """A find cursor: options chain onto mongomock's cursor until the first fetch."""

    _query_flags = 0  # never tailable: mongomock has no capped collections to tail

    def __init__(self, target: Any, client: _ClientProxy | None) -> None:
        super().__init__(client)
        self._target = target

    def _results(self) -> Iterable[Any]:
        return list(self._target)

    def _option(self, name: str, *args: Any, **kwargs: Any) -> _Cursor:
        if self._started:
            raise _mongomock().InvalidOperation("cannot set options after executing query")
        method = getattr(self._target, name, None)
        if name in ("comment", "hint", "max_time_ms", "max_await_time_ms", "allow_disk_use"):
            if method is not None:
                method(*args, **kwargs)
            return self  # no effect in memory
        if method is None or not callable(method):
            raise _not_emulated(f"cursor.{name}")
        method(*args, **kwargs)
        return self

    sort = _cursor_option("sort")
    skip = _cursor_option("skip")
    limit = _cursor_option("limit")
    comment = _cursor_option("comment")
    hint = _cursor_option("hint")
    max_time_ms = _cursor_option("max_time_ms")
    max_await_time_ms = _cursor_option("max_await_time_ms")
    allow_disk_use = _cursor_option("allow_disk_use")

    def __getattr__(self, name: str) -> Any:
        # PyMongo cursor options mongomock lacks: collation(), min(), max(), where()...
        if not name.startswith("_") and hasattr(pymongo.cursor.Cursor, name):
            raise _not_emulated(f"cursor.{name}")
        raise AttributeError(name)

    @property
    def collection(self) -> _CollectionProxy:
        return _CollectionProxy(self._target.collection, self._client_proxy)

    def distinct(self, key: str) -> list[Any]:
        values: list[Any] = self._target.distinct(key)
        return values

    def explain(self) -> Any:
        raise _not_emulated("explain")

    def rewind(self) -> _Cursor:
        self._target.rewind()
        self._data.clear()
        self._started = self._killed = False
        return self

    def clone(self) -> _Cursor:
        return _Cursor(self._target.clone(), self._client_proxy)

    def __copy__(self) -> _Cursor:
        return self.clone()

    def __deepcopy__(self, memo: Any) -> _Cursor:
        return self.clone()


class _CommandCursor(_CursorBase):
    """A command cursor (aggregate, list_indexes...) over mongomock's results."""

    def __init__(self, results: Iterable[Any], client: _ClientProxy | None) -> None:
        super().__init__(client)
        self._pending = results

    def _results(self) -> Iterable[Any]:
        return list(self._pending)


def _set_up(
    client: _MotorClient,
    motor_init: Callable[..., None],
    args: tuple[Any, ...],
    io_loop: Any,
    kwargs: dict[str, Any],
) -> None:
    """greenmotor's own set-up (the loop a client uses...), over a PyMongo client that never
    connects; then the in-memory client takes its place."""
    delegate = _ClientProxy(_mongomock().MongoClient(*args, **kwargs))  # fails if missing
    motor_init(**({} if io_loop is None else {"io_loop": io_loop}))
    client.delegate.close()  # never connected: no I/O, no threads
    client.delegate = delegate


def _repr(client: _MotorClient) -> str:
    return f"greenmotor.testing.{type(client).__name__}({client.delegate._target!r})"


class MotorClient(_MotorClient):
    """A :class:`greenmotor.MotorClient` over an in-memory database (Tornado flavour).

    Takes mongomock's ``MongoClient`` arguments (a host string, ``tz_aware``,
    ``document_class``...) and ``io_loop``; each client starts with its own empty data.
    Its databases, collections and cursors are greenmotor's usual classes::

        from greenmotor.testing import MotorClient

        async def test_home_page():
            client = MotorClient()
            await client.wiki.pages.insert_one({"title": "Home"})
            assert await client.wiki.pages.find_one({}, {"_id": 0}) == {"title": "Home"}
    """

    _framework = TORNADO  # set here: not a declared class, nothing to build or register

    def __init__(self, *args: Any, io_loop: Any = None, **kwargs: Any) -> None:
        _set_up(self, super().__init__, args, io_loop, kwargs)

    def __repr__(self) -> str:
        return _repr(self)


class AsyncIOMotorClient(_AsyncIOMotorClient):
    """A :class:`greenmotor.motor_asyncio.AsyncIOMotorClient` over an in-memory database.

    The asyncio flavour of :class:`MotorClient`, with the same arguments::

        from greenmotor.testing import AsyncIOMotorClient

        async def test_signup():
            users = AsyncIOMotorClient().app.users
            await users.insert_one({"name": "ada"})
            assert await users.count_documents({}) == 1
    """

    _framework = ASYNCIO

    def __init__(self, *args: Any, io_loop: Any = None, **kwargs: Any) -> None:
        _set_up(self, super().__init__, args, io_loop, kwargs)

    def __repr__(self) -> str:
        return _repr(self)
