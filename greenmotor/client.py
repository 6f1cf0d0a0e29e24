"""MotorClient, MotorDatabase and MotorCollection, declared over PyMongo's classes.

Each class body is the API: one line per PyMongo attribute (see
:mod:`greenmotor.metaprogramming`). What does not fit a declaration - construction, the
loop a client belongs to, attribute access to databases and collections - is written out.
"""

from __future__ import annotations

import asyncio
import os
import threading
from typing import Any

import pymongo
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import InvalidOperation

from greenmotor import green_pool
from greenmotor.change_stream import MotorChangeStream
from greenmotor.core import GreenmotorUsageError
from greenmotor.cursor import (
    MotorCommandCursor,
    MotorCursor,
    MotorLatentCommandCursor,
    MotorRawBatchCommandCursor,
    MotorRawBatchCursor,
)
from greenmotor.metaprogramming import (
    Async,
    Delegate,
    MotorWrapper,
    ReadOnly,
    unwrap_all,
)
from greenmotor.session import MotorClientSession

__all__ = ["MotorClient", "MotorCollection", "MotorDatabase"]


class _MotorLatentRawBatchCommandCursor(MotorLatentCommandCursor):
    __delegate_class__ = MotorRawBatchCommandCursor.__delegate_class__



class _CommonProperties(MotorWrapper):
    codec_options = ReadOnly()
    read_preference = ReadOnly()
    read_concern = ReadOnly()
    write_concern = ReadOnly()

    def watch(self, *args: Any, **kwargs: Any) -> MotorChangeStream:
        """A change stream on this client, database or collection (PyMongo's arguments).

        Returns at once; the stream opens on first use.
        """
        args, kwargs = unwrap_all(args, kwargs)
        return self._flavoured(MotorChangeStream)(self, *args, **kwargs)

    def _latent(
        self, cls: type[MotorLatentCommandCursor], method: str, *args: Any, **kwargs: Any
    ) -> Any:
        args, kwargs = unwrap_all(args, kwargs)
        return self._flavoured(cls)(self, getattr(self.delegate, method), *args, **kwargs)


class MotorClient(_CommonProperties):
    """An asynchronous MongoDB client for Tornado, running PyMongo in greenlets.

    Takes PyMongo's arguments plus ``io_loop``. No I/O happens here: the first operation
    connects. Use it from the loop's thread::

        client = MotorClient("mongodb://localhost:27017", maxPoolSize=50)

        async def handler():
            await client.test.pages.insert_one({"title": "hello"})
            doc = await client.test.pages.find_one({"title": "hello"})
    """

    __delegate_class__ = pymongo.MongoClient

    HOST = ReadOnly()
    PORT = ReadOnly()
    address = ReadOnly()
    arbiters = ReadOnly()
    is_mongos = ReadOnly()
    is_primary = ReadOnly()
    nodes = ReadOnly()
    options = ReadOnly()
    primary = ReadOnly()
    secondaries = ReadOnly()
    topology_description = ReadOnly()

    bulk_write = Async()
    drop_database = Async()
    list_database_names = Async()
    list_databases = Async(wrap="MotorCommandCursor")
    server_info = Async()
    start_session = Async(wrap="MotorClientSession")
    get_database = Delegate(wrap="MotorDatabase")
    get_default_database = Delegate(wrap="MotorDatabase")
    append_metadata = Delegate()  # no I/O: used by the next handshakes

    def __init__(self, *args: Any, io_loop: Any = None, **kwargs: Any) -> None:
        if io_loop is not None:
            self._framework.check_io_loop(io_loop)
        if "_pool_class" in kwargs or "_condition_class" in kwargs:
            raise TypeError("greenmotor sets _pool_class and _condition_class itself")
        kwargs.setdefault("connect", False)  # no I/O, and no threads, until first use
        green_pool.install_green_sleeps()
        kwargs.update(green_pool.client_hooks())
        self.delegate = green_pool.GreenMongoClient(*args, **kwargs)
        self._client = self
        self._closed = False
        self._io_loop = io_loop
        self._asyncio_loop = None if io_loop is None else self._framework.asyncio_loop(io_loop)
        self._bound_pid = os.getpid()
        self._loop_thread: int | None = None  # the thread last seen running the loop

    def get_io_loop(self) -> Any:
        """The loop this client runs on: a Tornado IOLoop (MotorClient) or an asyncio loop
        (AsyncIOMotorClient); without ``io_loop=``, the one current when first used."""
        if self._io_loop is None:
            self._bind(self._framework.current_io_loop())
        return self._io_loop

    def _bind(self, io_loop: Any) -> None:
        self._io_loop = io_loop
        self._asyncio_loop = self._framework.asyncio_loop(io_loop)
        self._bound_pid = os.getpid()
        self._loop_thread = None

    def _loop_for_call(self) -> asyncio.AbstractEventLoop:
        """The asyncio loop to run an operation on; refuses calls that cannot work."""
        if self._closed:
            raise InvalidOperation(f"Cannot use {type(self).__name__} after close")
        running = asyncio._get_running_loop()
        loop = self._asyncio_loop
        if loop is None or (running is not loop and self._bound_pid != os.getpid()):
            # Unbound yet, or bound in the parent before a fork (whose loop never runs in
            # this child): take this process's loop. PyMongo resets its pools and monitors
            # and warns "MongoClient opened before fork" if the parent had used the client.
            self._bind(self._framework.current_io_loop())
            loop = self._asyncio_loop
        if running is not loop:
            if running is not None:
                raise GreenmotorUsageError(
                    f"this {type(self).__name__} belongs to {self._io_loop!r} but was used on "
                    f"another running event loop; create one {type(self).__name__} per loop"
                )
            if loop.is_running():  # type: ignore[union-attr]
                raise GreenmotorUsageError(
                    f"this {type(self).__name__} belongs to {self._io_loop!r}, which runs in "
                    "another thread, but was called from thread "
                    f"{threading.current_thread().name!r}; hand the work to the loop with "
                    "IOLoop.add_callback (Tornado) or loop.call_soon_threadsafe (asyncio)"
                )
            if self._loop_thread not in (None, threading.get_ident()):
                # The greenlet would belong to this thread and could never be resumed by
                # the loop: the operation would hang.
                raise GreenmotorUsageError(
                    f"this {type(self).__name__} belongs to {self._io_loop!r}, which is not "
                    "running and last ran in another thread, but was called from thread "
                    f"{threading.current_thread().name!r}; call it from the loop's thread"
                )
        else:
            self._loop_thread = threading.get_ident()
        return loop  # type: ignore[return-value]

    def close(self) -> None:
        """Close every connection and stop PyMongo's monitor threads.

        Sending ``endSessions`` is I/O: when called on the running loop's thread, PyMongo's
        close runs in a short-lived thread so the loop is not blocked. Not in a greenlet: if
        the loop stopped right after (``client.close()`` as the last line of the coroutine
        given to ``run_sync``), a parked greenlet would never finish and the monitor threads
        and sockets would stay open. Anywhere else it runs directly, as in PyMongo.
        """
        self._closed = True
        loop = self._asyncio_loop
        if loop is not None and loop.is_running() and asyncio._get_running_loop() is loop:
            threading.Thread(
                target=self.delegate.close, name="greenmotor-close", daemon=True
            ).start()
        else:
            self.delegate.close()

    def __getattr__(self, name: str) -> MotorDatabase:
        if name.startswith("_"):
            raise AttributeError(
                f"MotorClient has no attribute {name!r}. To access the {name} database, "
                f"use client[{name!r}]."
            )
        return self[name]

    def __getitem__(self, name: str) -> MotorDatabase:
        return MotorDatabase._from_delegate(self, self.delegate[name])

    def __enter__(self) -> MotorClient:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class _Namespace(_CommonProperties):
    """A database or a collection: a name, not a value to test or a function to call.

    ``db.things`` is a collection, so a misspelt method name becomes a collection; calling it
    or testing it says what happened instead of failing later.
    """

    def __bool__(self) -> bool:
        kind = type(self).__name__
        raise NotImplementedError(
            f"{kind} objects do not implement truth value testing or bool(); compare with "
            f"None instead: {kind.removeprefix('Motor').lower()} is not None"
        )

    def __call__(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError(
            f"{type(self).__name__} object is not callable. If you meant to call a method "
            f"named {self.delegate.name.rpartition('.')[2]!r}, it does not exist"
        )


class MotorDatabase(_Namespace):
    """A MongoDB database: ``client.name`` or ``client["name"]``."""

    __delegate_class__ = Database

    name = ReadOnly()
    command = Async()
    create_collection = Async(wrap="MotorCollection")
    dereference = Async()
    drop_collection = Async()
    list_collection_names = Async()
    list_collections = Async(wrap="MotorCommandCursor")
    validate_collection = Async()
    get_collection = Delegate(wrap="MotorCollection")
    with_options = Delegate(wrap="MotorDatabase")
    cursor_command = Async(wrap="MotorCommandCursor")

    def aggregate(self, pipeline: Any, *args: Any, **kwargs: Any) -> MotorLatentCommandCursor:
        """Run a database-level aggregation; the command is sent on first iteration."""
        return self._latent(MotorLatentCommandCursor, "aggregate", pipeline, *args, **kwargs)

    def __init__(self, client: MotorClient, name: str, **kwargs: Any) -> None:
        if not isinstance(client, MotorClient):
            raise TypeError(f"client must be a MotorClient, not {client!r}")
        self.delegate = Database(client.delegate, name, **kwargs)
        self._client = client

    @property
    def client(self) -> MotorClient:
        return self._client  # type: ignore[no-any-return]

    def __getattr__(self, name: str) -> MotorCollection:
        if name.startswith("_"):
            raise AttributeError(
                f"MotorDatabase has no attribute {name!r}. To access the {name} collection, "
                f"use database[{name!r}]."
            )
        return self[name]

    def __getitem__(self, name: str) -> MotorCollection:
        return MotorCollection._from_delegate(self, self.delegate[name])



class MotorCollection(_Namespace):
    """A MongoDB collection: ``database.name`` or ``database["name"]``."""

    __delegate_class__ = Collection

    name = ReadOnly()
    full_name = ReadOnly()
    bulk_write = Async()
    count_documents = Async()
    create_index = Async()
    create_indexes = Async()
    create_search_index = Async()
    create_search_indexes = Async()
    delete_many = Async()
    delete_one = Async()
    distinct = Async()
    drop = Async()
    drop_index = Async()
    drop_indexes = Async()
    drop_search_index = Async()
    estimated_document_count = Async()
    find_one = Async()
    find_one_and_delete = Async()
    find_one_and_replace = Async()
    find_one_and_update = Async()
    index_information = Async()
    insert_many = Async()
    insert_one = Async()
    options = Async()
    rename = Async()
    replace_one = Async()
    update_many = Async()
    update_one = Async()
    update_search_index = Async()
    with_options = Delegate(wrap="MotorCollection")
    find = Delegate(wrap="MotorCursor")
    find_raw_batches = Delegate(wrap="MotorRawBatchCursor")

    def aggregate(self, pipeline: Any, *args: Any, **kwargs: Any) -> MotorLatentCommandCursor:
        """Run an aggregation; the command is sent on first iteration."""
        return self._latent(MotorLatentCommandCursor, "aggregate", pipeline, *args, **kwargs)

    def aggregate_raw_batches(self, pipeline: Any, **kwargs: Any) -> MotorLatentCommandCursor:
        """Like aggregate, yielding raw BSON batches."""
        return self._latent(
            _MotorLatentRawBatchCommandCursor, "aggregate_raw_batches", pipeline, **kwargs
        )

    def list_indexes(self, *args: Any, **kwargs: Any) -> MotorLatentCommandCursor:
        """A cursor over this collection's index documents (sent on first iteration)."""
        return self._latent(MotorLatentCommandCursor, "list_indexes", *args, **kwargs)

    def list_search_indexes(self, *args: Any, **kwargs: Any) -> MotorLatentCommandCursor:
        """A cursor over this collection's Atlas Search indexes (sent on first iteration)."""
        return self._latent(MotorLatentCommandCursor, "list_search_indexes", *args, **kwargs)

    def __init__(self, database: MotorDatabase, name: str, **kwargs: Any) -> None:
        if not isinstance(database, MotorDatabase):
            raise TypeError(f"database must be a MotorDatabase, not {database!r}")
        self.delegate = Collection(database.delegate, name, **kwargs)
        self._client = database._client

    @property
    def database(self) -> MotorDatabase:
        return MotorDatabase._from_delegate(self, self.delegate.database)

    def __getattr__(self, name: str) -> MotorCollection:
        if name.startswith("_"):
            full_name = f"{self.delegate.name}.{name}"
            raise AttributeError(
                f"MotorCollection has no attribute {name!r}. To access the {full_name} "
                f"collection, use database[{full_name!r}]."
            )
        return self[name]

    def __getitem__(self, name: str) -> MotorCollection:
        return MotorCollection._from_delegate(self, self.delegate[name])

