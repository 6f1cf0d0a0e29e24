"""MotorClient, MotorDatabase and MotorCollection, declared over PyMongo's classes.

Each class body is the API: one line per PyMongo attribute (see
:mod:`greenmotor.metaprogramming`). What does not fit a declaration - construction, the
loop a client belongs to, attribute access to databases and collections - is written out.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import threading
import weakref
from typing import Any, Self

import pymongo
import pymongo.mongo_client  # as with Motor, pymongo.mongo_client is loaded
import tornado
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.driver_info import DriverInfo
from pymongo.errors import InvalidOperation

from greenmotor import green_kms
from greenmotor._version import version
from greenmotor.change_stream import MotorChangeStream
from greenmotor.core import GreenmotorUsageError, cancel_abandoned
from greenmotor.cursor import MotorLatentCommandCursor, _MotorLatentRawBatchCommandCursor
from greenmotor.metaprogramming import (
    Async,
    Delegate,
    MotorWrapper,
    ReadOnly,
    unwrap_all,
)
from greenmotor.pymongo_hooks import GreenPool, green_mongo_client

__all__ = ["MotorClient", "MotorCollection", "MotorDatabase"]

logger = logging.getLogger(__name__)

#: The Motor release whose API greenmotor reproduces; named in the connection handshake.
MOTOR_VERSION = "3.7.1"


# The loop each thread last ran an operation of an unbound client on (see _starting_on).
_last_loop: threading.local = threading.local()


def _starting_on(loop: asyncio.AbstractEventLoop) -> None:
    """A thread starts operations on another loop: if the loop it used before was closed
    with operations still in flight, they are abandoned; cancel them, which returns what
    they held (pooled connections) to the client."""
    last = getattr(_last_loop, "ref", None)
    previous = None if last is None else last()
    _last_loop.ref = weakref.ref(loop)
    if previous is not None and previous.is_closed():
        cancel_abandoned()


def _checked_pool_class(pool_class: Any) -> Any:
    """A ``_pool_class`` given to a client: a GreenPool subclass, or a partial of one.

    PyMongo's ``_pool_class`` hook makes a client's pools of another class (PyMongo's test
    suite mocks a topology that way). greenmotor's pools must stay green - their waits
    switch greenlets - so the class must derive from :class:`~greenmotor.pymongo_hooks.GreenPool`::

        class CountingPool(GreenPool, MyPyMongoPool): ...
        MotorClient(_pool_class=CountingPool)
    """
    cls = pool_class.func if isinstance(pool_class, functools.partial) else pool_class
    if isinstance(cls, type) and issubclass(cls, GreenPool):
        return pool_class
    raise TypeError(
        f"_pool_class={pool_class!r} is not green: pass a subclass of "
        "greenmotor.pymongo_hooks.GreenPool (or a functools.partial of one), e.g. "
        "class MyPool(GreenPool, MyPyMongoPool)"
    )


def _close_in_background(delegate: pymongo.MongoClient[Any]) -> None:
    """PyMongo's close, in a thread of its own, where no caller is left to raise to.

    Its first step, ``endSessions``, may fail with an error PyMongo does not swallow (a
    reply that is not BSON, say), which the sessions spec says to ignore; the sessions are
    gone from the pool by then, so a second close sends nothing and closes the connections
    and monitors.
    """
    try:
        delegate.close()
    except Exception:
        logger.debug("closing a client: endSessions failed; closing again", exc_info=True)
        delegate.close()


class _CommonProperties(MotorWrapper):
    codec_options = ReadOnly()
    read_preference = ReadOnly()
    read_concern = ReadOnly()
    write_concern = ReadOnly()

    def watch(
        self,
        pipeline: Any = None,
        full_document: Any = None,
        resume_after: Any = None,
        max_await_time_ms: Any = None,
        batch_size: Any = None,
        collation: Any = None,
        start_at_operation_time: Any = None,
        session: Any = None,
        start_after: Any = None,
        comment: Any = None,
        full_document_before_change: Any = None,
        show_expanded_events: Any = None,
    ) -> MotorChangeStream:
        """A change stream on this client, database or collection (PyMongo's arguments).

        Returns at once; the stream opens on first use. ``session`` may be a
        MotorClientSession or, as with Motor, the PyMongo session it wraps.
        """
        options = dict(
            pipeline=pipeline,
            full_document=full_document,
            resume_after=resume_after,
            max_await_time_ms=max_await_time_ms,
            batch_size=batch_size,
            collation=collation,
            start_at_operation_time=start_at_operation_time,
            session=session,
            start_after=start_after,
            comment=comment,
            full_document_before_change=full_document_before_change,
            show_expanded_events=show_expanded_events,
        )
        return self._flavoured(MotorChangeStream)(self, **options)

    def _not_an_attribute(self, name: str, kind: str, owner: str, full_name: str) -> AttributeError:
        """Motor's error for ``obj._name``: a private name is not a database or collection."""
        return AttributeError(
            f"{type(self).__name__} has no attribute {name!r}. To access the {full_name} "
            f"{kind}, use {owner}['{full_name}']."
        )

    def _latent(
        self, cls: type[MotorLatentCommandCursor], method: str, *args: Any, **kwargs: Any
    ) -> MotorLatentCommandCursor:
        args, kwargs = unwrap_all(args, kwargs)
        return self._flavoured(cls)(self, getattr(self.delegate, method), *args, **kwargs)


def motor_driver_info(framework_name: str, theirs: DriverInfo | None = None) -> DriverInfo:
    """What a client adds to PyMongo's handshake metadata: Motor's, as Motor 3.7 sends it.

    Servers log it and tools group connections by it, and Motor's own tests check it: the
    driver name is "Motor" and the platform names the framework ("Tornado 6.4" or
    "asyncio"). The version says both: the Motor API and, as a local version label, the
    greenmotor release that implements it ("3.7.1+greenmotor.0.1.0").

    ``theirs`` (``MotorClient(driver=...)``, from a library built on Motor) follows Motor's:
    "PyMongo|Motor|Theirs". PyMongo sends this one DriverInfo on every connection, monitors'
    included (``append_metadata`` reaches only the application's). Its constructor refuses
    a "|" in a field since 4.20 (Motor 3.7 fails there), because PyMongo pairs the name and
    version segments to truncate them; each segment here has its pair, so the merged info
    is built without that check.
    """
    name, full_version = "Motor", f"{MOTOR_VERSION}+greenmotor.{version}"
    platform = f"Tornado {tornado.version}" if framework_name == "tornado" else framework_name
    if theirs is None:
        return DriverInfo(name, full_version, platform)
    return DriverInfo._make((
        f"{name}|{theirs.name or ''}",
        f"{full_version}|{theirs.version or ''}",
        f"{platform}|{theirs.platform}" if theirs.platform else platform,
    ))  # fmt: skip


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

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if "io_loop" in kwargs:
            io_loop = kwargs.pop("io_loop")
            self._framework.check_io_loop(io_loop)
        else:
            io_loop = None
        if "_condition_class" in kwargs:
            raise TypeError("greenmotor sets _condition_class itself")
        pool_class = kwargs.pop("_pool_class", None)
        their_driver = kwargs.get("driver")
        if their_driver and not isinstance(their_driver, DriverInfo):
            raise TypeError(
                f"Incorrect type for `driver` {type(their_driver)}; expected value of type "
                "pymongo.driver_info.DriverInfo"
            )
        kwargs["driver"] = motor_driver_info(self._framework.name, their_driver or None)
        kwargs.setdefault("connect", False)  # no I/O, and no threads, until first use
        if pool_class is not None:
            kwargs["_pool_class"] = _checked_pool_class(pool_class)
        self.delegate = green_mongo_client(*args, **kwargs)
        if self.delegate._encrypter is not None:
            # auto_encryption_opts: PyMongo built a blocking _Encrypter (mongocryptd through a
            # plain client, KMS over blocking sockets). Not used yet, so closing it does no I/O.
            self.delegate._encrypter.close()
            self.delegate._encrypter = green_kms.GreenEncrypter(
                self.delegate, self.delegate._options.auto_encryption_opts
            )
        self._client = self
        self._closed = False
        #: The loop given as ``io_loop=``: the client is bound to it, as Motor's are. None:
        #: each operation runs on the loop running when it starts (see doc/any-loop.rst).
        self._io_loop = io_loop
        self._asyncio_loop = None if io_loop is None else self._framework.asyncio_loop(io_loop)
        self._bound_pid = os.getpid()
        self._loop_thread: int | None = None  # the thread last seen running the bound loop

    def get_io_loop(self) -> Any:
        """The loop this client runs on: a Tornado IOLoop (MotorClient) or an asyncio loop
        (AsyncIOMotorClient).

        With ``io_loop=`` that loop. Without, the client serves any loop and this is the one
        an operation started here would run on: the running loop, else the thread's current
        one (made if there is none, as ``IOLoop.current()`` does)::

            client = AsyncIOMotorClient(uri)

            async def main():
                assert client.get_io_loop() is asyncio.get_running_loop()

            asyncio.run(main())
            asyncio.run(main())  # another loop, the same client
        """
        if self._io_loop is None:
            return self._framework.current_io_loop()
        return self._io_loop

    def _bind(self, io_loop: Any) -> asyncio.AbstractEventLoop:
        """Belong to ``io_loop`` from now on; its asyncio loop."""
        self._io_loop = io_loop
        loop = self._asyncio_loop = self._framework.asyncio_loop(io_loop)
        self._bound_pid = os.getpid()
        self._loop_thread = None
        return loop

    def _loop_for_call(self) -> asyncio.AbstractEventLoop:
        """The asyncio loop to run an operation on; refuses calls that cannot work."""
        if self._closed:
            raise InvalidOperation(f"Cannot use {type(self).__name__} after close")
        running = asyncio._get_running_loop()
        bound = self._asyncio_loop
        if bound is None:
            # Not bound: the running loop, whichever it is and in whatever thread.
            if running is not None:
                last = getattr(_last_loop, "ref", None)
                if last is None or last() is not running:
                    _starting_on(running)
                return running
            return self._idle_thread_loop()
        return self._bound_loop_for_call(bound, running)

    def _idle_thread_loop(self) -> asyncio.AbstractEventLoop:
        """For a call made with no loop running in this thread (``loop.run_until_complete(
        coll.find_one())``): the thread's current loop, which will run the operation."""
        loop = self._framework.asyncio_loop(self._framework.current_io_loop())
        thread = threading.current_thread().name
        if loop.is_closed():
            raise GreenmotorUsageError(
                f"{type(self).__name__} was called in thread {thread!r} with no event loop "
                f"running, and the thread's current loop {loop!r} is closed; call it from a "
                "coroutine running on a loop (inside asyncio.run() or IOLoop.run_sync())"
            )
        if loop.is_running():
            # Set as this thread's current loop but running in another thread: the greenlet
            # would belong to this thread and could never be resumed by that loop.
            raise GreenmotorUsageError(
                f"{type(self).__name__} was called in thread {thread!r}, whose current event "
                f"loop {loop!r} runs in another thread; hand the work to that loop with "
                "IOLoop.add_callback (Tornado) or asyncio.run_coroutine_threadsafe (asyncio), "
                "or run a loop in this thread"
            )
        return loop

    def _bound_loop_for_call(
        self, loop: asyncio.AbstractEventLoop, running: asyncio.AbstractEventLoop | None
    ) -> asyncio.AbstractEventLoop:
        """``_loop_for_call`` for a client given ``io_loop=``: that loop only, as Motor."""
        if running is not loop and self._bound_pid != os.getpid():
            # Bound in the parent before a fork (whose loop never runs in this child): take
            # this process's loop. PyMongo resets its pools and monitors and warns
            # "MongoClient opened before fork" if the parent had used the client.
            loop = self._bind(self._framework.current_io_loop())
        if running is not loop:
            if running is not None:
                raise GreenmotorUsageError(
                    f"this {type(self).__name__} belongs to {self._io_loop!r} but was used on "
                    f"another running event loop; create one {type(self).__name__} per loop, "
                    "or create it without io_loop= to use it on any loop"
                )
            if loop.is_running():
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
        return loop

    def close(self) -> None:
        """Close every connection and stop PyMongo's monitor threads.

        Sending ``endSessions`` is I/O: when called on a thread whose loop is running (any
        loop, for a client not bound to one), PyMongo's close runs in a short-lived thread so
        the loop is not blocked. Not in a greenlet: if the loop stopped right after
        (``client.close()`` as the last line of the coroutine given to ``run_sync``), a
        parked greenlet would never finish and the monitor threads and sockets would stay
        open. Anywhere else it runs directly, as in PyMongo.
        """
        self._closed = True
        running = asyncio._get_running_loop()
        if running is not None and running.is_running():
            threading.Thread(
                target=_close_in_background,
                args=(self.delegate,),
                name="greenmotor-close",
                daemon=True,
            ).start()
        else:
            self.delegate.close()

    def __getattr__(self, name: str) -> MotorDatabase:
        if name.startswith("_"):
            raise self._not_an_attribute(name, "database", "client", name)
        return self[name]

    def __getitem__(self, name: str) -> MotorDatabase:
        return MotorDatabase._from_delegate(self, self.delegate[name])

    # Not in Motor (whose clients are closed with close()): greenmotor's documented way to
    # close a client at the end of a block, as PyMongo's ``with MongoClient()`` does.
    def __enter__(self) -> MotorClient:
        return self

    def __exit__(self, exc_type: Any, exc_val: Any, exc_tb: Any) -> None:
        self.close()


class _Namespace(_CommonProperties):
    """A database or a collection: a name, not a value to test or a function to call.

    ``db.things`` is a collection, so a misspelt method name becomes a collection; calling it
    or testing it says what happened instead of failing later.
    """

    def __bool__(self) -> bool:
        return bool(self.delegate)  # PyMongo's Database and Collection refuse, saying why


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
            raise TypeError(
                f"client must be a {self._flavoured(MotorClient).__name__}, not {client!r}"
            )
        delegate = kwargs.pop("_delegate", None)  # Motor's way to wrap a PyMongo Database
        if delegate is None:
            delegate = Database(client.delegate, name, **kwargs)
        self.delegate = delegate
        self._client = client

    @property
    def client(self) -> MotorClient:
        return self._client

    def __getattr__(self, name: str) -> MotorCollection:
        if name.startswith("_"):
            raise self._not_an_attribute(name, "collection", "database", name)
        return self[name]

    def __getitem__(self, name: str) -> MotorCollection:
        return MotorCollection._from_delegate(self, self.delegate[name])

    def __call__(self, *args: Any, **kwargs: Any) -> None:
        # client.foo() is a call of the database "foo": Motor's message says so.
        name = self.delegate.name
        client_class = type(self._client).__name__
        if name == "open_sync":
            raise TypeError(
                f"{client_class}.open_sync() is unnecessary Motor 0.2, see changelog for details."
            )
        raise TypeError(
            "MotorDatabase object is not callable. If you meant to call the "
            f"'{name}' method on a {client_class} object it is failing because no such "
            "method exists."
        )


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

    def list_indexes(self, session: Any = None, **kwargs: Any) -> MotorLatentCommandCursor:
        """A cursor over this collection's index documents (sent on first iteration)."""
        return self._latent(MotorLatentCommandCursor, "list_indexes", session=session, **kwargs)

    def list_search_indexes(self, *args: Any, **kwargs: Any) -> MotorLatentCommandCursor:
        """A cursor over this collection's Atlas Search indexes (sent on first iteration)."""
        return self._latent(MotorLatentCommandCursor, "list_search_indexes", *args, **kwargs)

    def __init__(
        self,
        database: MotorDatabase,
        name: str,
        codec_options: Any = None,
        read_preference: Any = None,
        write_concern: Any = None,
        read_concern: Any = None,
        _delegate: Any = None,
    ) -> None:
        # No **kwargs: PyMongo's Collection(..., capped=True) creates the collection, I/O a
        # constructor can't do. The database must be of this class's flavour.
        if not (isinstance(database, MotorDatabase) and database._framework is self._framework):
            raise TypeError(
                f"First argument to MotorCollection must be MotorDatabase, not {database!r}"
            )
        if _delegate is None:
            _delegate = Collection(
                database.delegate,
                name,
                codec_options=codec_options,
                read_preference=read_preference,
                write_concern=write_concern,
                read_concern=read_concern,
            )
        self.delegate = _delegate
        self._client = database._client
        self._database = database

    @classmethod
    def _from_delegate(cls, owner: MotorWrapper, delegate: Any) -> Self:
        collection = super()._from_delegate(owner, delegate)
        if isinstance(owner, MotorDatabase):
            collection._database = owner
        elif isinstance(owner, MotorCollection):
            collection._database = owner.database
        return collection

    @property
    def database(self) -> MotorDatabase:
        """The MotorDatabase this collection came from: ``db.coll.database is db``, as in Motor."""
        database = self.__dict__.get("_database")  # not through __getattr__: no collection
        if database is None:
            database = MotorDatabase._from_delegate(self, self.delegate.database)
            self._database = database
        return database

    def __getattr__(self, name: str) -> MotorCollection:
        if name.startswith("_"):
            raise self._not_an_attribute(name, "collection", "database", f"{self.name}.{name}")
        return self[name]

    def __getitem__(self, name: str) -> MotorCollection:
        # A sub-collection: "coll.sub". PyMongo would take any name and format it, so `in`
        # or iteration (which try coll[0], coll[1]...) would never end; Motor refuses.
        if not isinstance(name, str):
            raise TypeError(f'can only concatenate str (not "{type(name).__name__}") to str')
        return MotorCollection._from_delegate(self, self.delegate[name])

    def __call__(self, *args: Any, **kwargs: Any) -> None:
        # db.coll.foo() calls the collection "coll.foo": Motor's message says so.
        raise TypeError(
            "MotorCollection object is not callable. If you meant to call the "
            f"'{self.delegate.name}' method on a MotorCollection object it is failing because "
            "no such method exists."
        )
