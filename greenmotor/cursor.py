"""Cursors: MotorCursor (find), MotorCommandCursor (aggregate, list_*), and their latent and
raw-batch variants.

A cursor does no I/O until it is iterated. Documents already fetched are handed out
directly; only when PyMongo's batch is empty does a greenlet run ``find``/``getMore``::

    async for doc in collection.find({"x": {"$gt": 1}}).sort("x").limit(10):
        print(doc)
    docs = await collection.find().to_list(100)
"""

from __future__ import annotations

import asyncio
import functools
import warnings
from collections.abc import Callable
from typing import Any

from pymongo.cursor import CursorType
from pymongo.errors import InvalidOperation
from pymongo.synchronous.command_cursor import CommandCursor, RawBatchCommandCursor
from pymongo.synchronous.cursor import Cursor, RawBatchCursor

from greenmotor.core import spawn
from greenmotor.delivery import check_callback, consume_exception, deliver
from greenmotor.metaprogramming import Async, Chain, MotorWrapper, ReadOnly

__all__ = [
    "MotorCommandCursor",
    "MotorCursor",
    "MotorLatentCommandCursor",
    "MotorRawBatchCommandCursor",
    "MotorRawBatchCursor",
]

#: Motor's deprecation messages, word for word: code (and Motor's own test configuration)
#: filters these warnings by their text.
FETCH_NEXT_DEPRECATED = (
    "The fetch_next property is deprecated and may be removed in a future major release. "
    "Use `async for` to iterate over Cursor objects instead."
)
NEXT_OBJECT_DEPRECATED = (
    "The next_object method is deprecated and may be removed in a future major release.  "
    "Use `async for` to iterate over Cursor objects instead."
)


def _refresh(cursor: Any) -> int:
    """In a greenlet: send the query or one getMore unless documents are buffered.

    Returns how many documents are buffered afterwards (0: none came). This is the one
    step Motor builds every iteration style on, so ``next``, ``fetch_next`` and ``each``
    see the same batches, and a tailable cursor's empty getMore ends an ``async for``.
    """
    buffered: int = cursor._refresh()
    return buffered


def _take(cursor: Any, length: int | None) -> list[Any]:
    """Up to length documents (all if None), fetching batches as needed: one greenlet.

    PyMongo's own ``to_list`` does the work: ``pymongo.timeout()`` then bounds the whole
    call, and it stops at an empty batch, so a tailable command cursor (a ``$changeStream``
    aggregate) returns what is there instead of waiting forever.
    """
    documents: list[Any] = cursor.to_list(length)
    return documents


def _done(loop: asyncio.AbstractEventLoop, result: Any) -> asyncio.Future[Any]:
    future = loop.create_future()
    future.set_result(result)
    return future


class _BaseCursor(MotorWrapper):
    """What find cursors and command cursors share: iteration in its four styles."""

    address = ReadOnly()
    alive = ReadOnly()
    cursor_id = ReadOnly()
    session = ReadOnly()

    # Motor's public flags. Class-level defaults because cursors are made by
    # _from_delegate, which runs no __init__; an instance sets its own when they change.
    #: True once the cursor has asked the server for documents (until :meth:`rewind`).
    started = False
    #: True once :meth:`close` was called.
    closed = False

    def __init__(self, cursor: Any, collection: MotorWrapper) -> None:
        """Motor's constructor: wrap PyMongo's ``cursor`` over ``collection`` (a public
        collection or database, whose client and loop the cursor uses).

        Applications get cursors from ``find()``, ``aggregate()``, ``list_indexes()``...
        rather than making them.
        """
        if not isinstance(collection, MotorWrapper):
            raise TypeError(
                f"collection must be the {self._framework.class_prefix}MotorCollection the "
                f"cursor reads, not {collection!r}"
            )
        self.delegate = cursor
        self._client = collection._client

    def _loop(self) -> asyncio.AbstractEventLoop:
        return self._client._loop_for_call()

    def _buffer_size(self) -> int:
        """Documents fetched and not handed out yet (Motor's tests read this too)."""
        return len(self.delegate._data)

    def _is_tailable(self) -> bool:
        return False

    def _wrap_documents(self, docs: list[Any]) -> list[Any]:
        """What the caller gets for PyMongo's documents (GridFS cursors wrap them)."""
        return docs

    def _next_buffered(self) -> Any:
        """The next document already fetched (PyMongo does no I/O for it)."""
        return self._wrap_documents([self.delegate.next()])[0]

    _take = staticmethod(_take)

    def _run(self, fn: Callable[..., Any], *args: Any, callback: Any = None) -> Any:
        """Run fn(delegate, *args) in a greenlet (command cursors start their command here)."""
        return self._async_call(lambda: fn(self._started_delegate(), *args), callback)

    def _started_delegate(self) -> Any:
        return self.delegate

    def _get_more(self) -> asyncio.Future[Any]:
        """The query or a getMore, in a greenlet: a Future of the number of buffered docs."""
        self.started = True
        fetched: asyncio.Future[int] = self._run(_refresh)
        return fetched

    # async for / next
    def __aiter__(self) -> _BaseCursor:
        return self

    async def next(self) -> Any:
        """The next document; raises ``StopAsyncIteration`` when there are no more.

        As with Motor, a fetch that brings nothing ends the iteration: a tailable cursor
        with nothing new stops here, and can be iterated again later.
        """
        while not self._buffer_size():
            # Another coroutine may take what one fetch brought: never read past the
            # buffer outside a greenlet.
            if not self.alive or not await self._get_more():
                raise StopAsyncIteration
        return self._next_buffered()

    __anext__ = next

    async def __aenter__(self) -> _BaseCursor:
        return self

    async def __aexit__(self, exc_type: Any, exc_val: Any, exc_tb: Any) -> None:
        await self.close()

    def to_list(self, length: int | None = None, *, callback: Any = None) -> Any:
        """A list of up to ``length`` documents (all of them if None).

        Returns a Future, or calls ``callback(docs, error)``.
        """
        check_callback(callback)
        if length is not None:
            if not isinstance(length, int):
                raise TypeError(f"length must be an int, not {length!r}")
            if length < 0:
                raise ValueError("length must be non-negative")
        if self._is_tailable():
            raise InvalidOperation("Can't call to_list on tailable cursor")
        if length == 0 or not self.alive:
            future = _done(self._loop(), [])
        else:
            self.started = True
            future = self._run(lambda cursor: self._wrap_documents(self._take(cursor, length)))
        return deliver(future, callback)

    def each(self, callback: Callable[[Any, Any], Any]) -> None:
        """Call ``callback(doc, None)`` for each document, then ``callback(None, None)``.

        Errors arrive as ``callback(None, error)``. Returning ``False`` (exactly) from the
        callback, or closing the cursor in it, stops the iteration. Every call happens on
        the loop, never inside each().
        """
        if not callable(callback):
            raise TypeError("callback must be a callable")
        self._loop().call_soon(self._each_step, callback, None)

    def _each_step(
        self, callback: Callable[[Any, Any], Any], fetched: asyncio.Future[Any] | None
    ) -> None:
        if fetched is not None:
            error = asyncio.CancelledError() if fetched.cancelled() else fetched.exception()
            if error is not None:
                callback(None, error)
                return
        while self._buffer_size():
            if callback(self._next_buffered(), None) is False or self.closed:
                return
        # More on the server: a cursor not started yet, or one with an open server cursor.
        if self.alive and (self.cursor_id or not self.started):
            self._get_more().add_done_callback(functools.partial(self._each_step, callback))
        else:
            self._loop().call_soon(callback, None, None)

    # The pre-async-for API of Motor 1.x.
    @property
    def fetch_next(self) -> asyncio.Future[Any]:
        """**Deprecated** (warns as Motor does): a Future resolving to a true value if
        :meth:`next_object` has a document to return, to a false one at the end.

        Use ``async for`` instead.
        """
        warnings.warn(FETCH_NEXT_DEPRECATED, DeprecationWarning, stacklevel=2)
        if self._buffer_size():
            return _done(self._loop(), True)
        if self.alive:
            return self._get_more()
        return _done(self._loop(), False)

    def next_object(self) -> Any:
        """**Deprecated** (warns as Motor does): the document :attr:`fetch_next` fetched,
        or None."""
        warnings.warn(NEXT_OBJECT_DEPRECATED, DeprecationWarning, stacklevel=2)
        if not self._buffer_size():
            return None
        return self._next_buffered()

    def close(self, *, callback: Any = None) -> Any:
        """Kill the server cursor. Returns a Future, or calls ``callback(None, error)``.

        Documents already fetched can still be read. Closing again does nothing.
        """
        if self.closed:
            check_callback(callback)
            return deliver(_done(self._loop(), None), callback)
        self.closed = True
        return self._async_call(self.delegate.close, callback)

    def batch_size(self, batch_size: int) -> Any:
        self.delegate.batch_size(batch_size)
        return self


class MotorCursor(_BaseCursor):
    """The cursor ``MotorCollection.find()`` returns; chain options, then iterate."""

    __delegate_class__: Any = Cursor

    collection = ReadOnly(wrap="MotorCollection")
    add_option = Chain()
    allow_disk_use = Chain()
    collation = Chain()
    comment = Chain()
    hint = Chain()
    limit = Chain()
    max = Chain()
    max_await_time_ms = Chain()
    max_scan = Chain()
    max_time_ms = Chain()
    min = Chain()
    remove_option = Chain()
    skip = Chain()
    sort = Chain()
    where = Chain()
    distinct = Async()
    explain = Async()

    def _is_tailable(self) -> bool:
        return bool(self.delegate._query_flags & CursorType.TAILABLE)

    def rewind(self) -> MotorCursor:
        """Start over: the next iteration re-runs the query (:attr:`started` is False again).

        An open server cursor is killed in a greenlet, so rewinding never blocks the loop.
        The rewound cursor can be closed again: its next server cursor is a new one.
        """
        self.started = False
        self.closed = False
        old = self.delegate
        if old.cursor_id:
            self.delegate = old.clone()
            spawn(self._loop(), old.close).add_done_callback(consume_exception)
        else:
            old.rewind()
        return self

    def clone(self) -> MotorCursor:
        """A new, unevaluated MotorCursor with the same options."""
        return type(self)._from_delegate(self, self.delegate.clone())

    def __copy__(self) -> MotorCursor:
        return type(self)._from_delegate(self, self.delegate.__copy__())

    def __deepcopy__(self, memo: Any) -> MotorCursor:
        return type(self)._from_delegate(self, self.delegate.__deepcopy__(memo))


class MotorRawBatchCursor(MotorCursor):
    """``find_raw_batches``: iterating yields raw BSON batches (``bytes``)."""

    __delegate_class__ = RawBatchCursor


class MotorCommandCursor(_BaseCursor):
    """A cursor over a command's results (aggregate, list_indexes, list_collections...)."""

    __delegate_class__: Any = CommandCursor

    def try_next(self, *, callback: Any = None) -> Any:
        """The next document, or None if none is available right now (one getMore at most)."""
        return self._run(lambda cursor: cursor.try_next(), callback=callback)


class MotorRawBatchCommandCursor(MotorCommandCursor):
    __delegate_class__ = RawBatchCommandCursor


class MotorLatentCommandCursor(MotorCommandCursor):
    """A command cursor whose command (e.g. ``aggregate``) is sent on first iteration.

    ``collection.aggregate(pipeline)`` returns one at once, without I/O::

        async for doc in collection.aggregate([{"$match": {"x": 1}}]):
            ...
    """

    def __init__(
        self, collection: MotorWrapper, start: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> None:
        """``start(*args, **kwargs)`` (a PyMongo method of ``collection``'s delegate, e.g.
        ``aggregate``) runs in a greenlet on first use and returns the command cursor."""
        self.delegate = None
        self._client = collection._client
        self._start = start
        self._args = args
        self._kwargs = kwargs

    def __repr__(self) -> str:
        state = "not started" if self.delegate is None else repr(self.delegate)
        return f"{type(self).__name__}({state})"

    def _started_delegate(self) -> Any:
        if self.delegate is None:
            self.delegate = self._start(*self._args, **self._kwargs)
        return self.delegate

    def _buffer_size(self) -> int:
        return 0 if self.delegate is None else len(self.delegate._data)

    @property
    def alive(self) -> bool:
        return True if self.delegate is None else self.delegate.alive

    @property
    def cursor_id(self) -> int | None:
        return None if self.delegate is None else self.delegate.cursor_id

    @property
    def address(self) -> Any:
        return None if self.delegate is None else self.delegate.address

    @property
    def session(self) -> Any:
        return self._kwargs.get("session") if self.delegate is None else self.delegate.session

    def batch_size(self, batch_size: int) -> MotorLatentCommandCursor:
        if self.delegate is None:
            self._kwargs["batchSize"] = batch_size
        else:
            self.delegate.batch_size(batch_size)
        return self

    def close(self, *, callback: Any = None) -> Any:
        if self.delegate is None:  # never started: nothing on the server to kill
            self.delegate = NeverStarted()
        return super().close(callback=callback)


class _MotorLatentRawBatchCommandCursor(MotorLatentCommandCursor):
    """``aggregate_raw_batches``: a latent command cursor yielding raw BSON batches."""

    __delegate_class__ = RawBatchCommandCursor


class NeverStarted:
    """Stands in for the PyMongo object of a latent cursor or change stream closed before
    it started: nothing to kill on the server, nothing more to read."""

    _data: tuple[Any, ...] = ()
    alive = False
    cursor_id = None
    address = None
    session = None
    resume_token = None

    def close(self) -> None:
        pass

    def _refresh(self) -> int:
        return 0

    def next(self) -> Any:
        raise StopIteration

    def try_next(self) -> None:
        return None

    def __iter__(self) -> Any:
        return iter(())

    def to_list(self, length: int | None = None) -> list[Any]:
        return []
