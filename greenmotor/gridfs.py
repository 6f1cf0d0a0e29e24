"""GridFS: store and stream files of any size in MongoDB.

::

    bucket = MotorGridFSBucket(client.mydb)
    file_id = await bucket.upload_from_stream("notes.txt", b"some bytes")

    grid_out = await bucket.open_download_stream(file_id)
    print(grid_out.filename, grid_out.length)
    data = await grid_out.read()

    async with bucket.open_upload_stream("big.bin") as grid_in:
        for block in blocks:
            await grid_in.write(block)

The classes have Motor 3's constructors, attributes and errors, so code written for
``motor.motor_gridfs`` runs unchanged: a :class:`MotorGridOut` made directly must be opened
(``await grid_out.open()``) before its properties are read, and :class:`MotorGridIn` sets
file-document fields with ``await grid_in.set(name, value)``.
"""

from __future__ import annotations

import hashlib
import inspect
import itertools
import warnings
from typing import Any

import gridfs
from gridfs.synchronous.grid_file import GridIn, GridOut, GridOutCursor
from pymongo.errors import InvalidOperation

from greenmotor.client import MotorCollection, MotorDatabase
from greenmotor.cursor import MotorCursor
from greenmotor.metaprogramming import Async, Chain, Delegate, MotorWrapper, ReadOnly

__all__ = ["MotorGridFSBucket", "MotorGridIn", "MotorGridOut", "MotorGridOutCursor"]


def _hash_gridout(gridout: Any) -> str:
    """The ETag of a stored file (a PyMongo GridOut or an open MotorGridOut), as Motor's.

    A hash of ``_id``, length and upload date: a new upload gets a new ``_id``, so the tag
    changes with the content without reading it. Motor's web handlers compute the same
    value, so ETags stay valid across a switch between the two.
    """
    digest = hashlib.sha256()
    for part in (gridout._id, gridout.length, gridout.upload_date):
        digest.update(str(part).encode("utf8"))
    return digest.hexdigest()


def _check_collection(owner: MotorWrapper, root_collection: Any) -> None:
    """Motor's check: a file's root collection is a MotorCollection of the owner's flavour."""
    expected = owner._flavoured(MotorCollection)
    if not (
        isinstance(root_collection, expected) and root_collection._framework is owner._framework
    ):
        declared = type(owner).__name__.removeprefix(owner._framework.class_prefix)
        raise TypeError(
            f"First argument to {declared} must be MotorCollection, not {root_collection!r}"
        )


def _unwrap_session(session: Any) -> Any:
    return getattr(session, "delegate", session)


class _NotGeneric:
    """Motor's GridFS classes take no type parameter: ``MotorGridIn[dict]`` is a TypeError."""

    def __class_getitem__(cls, item: Any) -> Any:
        raise TypeError(f"type {cls.__name__!r} is not subscriptable")


class MotorGridFSBucket(_NotGeneric, MotorWrapper):
    """A GridFS bucket in a database (collections ``<name>.files`` and ``<name>.chunks``).

    ``collection`` is the bucket's root collection (``db.fs``), with the bucket's write
    concern and read preference.
    """

    __delegate_class__ = gridfs.GridFSBucket

    delete = Async()
    download_to_stream = Async()
    download_to_stream_by_name = Async()
    open_download_stream = Async(wrap="MotorGridOut")
    open_download_stream_by_name = Async(wrap="MotorGridOut")
    rename = Async()
    upload_from_stream = Async()
    upload_from_stream_with_id = Async()
    find = Delegate(wrap="MotorGridOutCursor")
    open_upload_stream = Delegate(wrap="MotorGridIn")
    open_upload_stream_with_id = Delegate(wrap="MotorGridIn")
    # Motor 3 offers neither delete_by_name nor rename_by_name; neither does greenmotor, so
    # the two APIs stay the same (find() the files, then delete() or rename() each).

    def __init__(
        self,
        database: Any,
        bucket_name: str = "fs",
        chunk_size_bytes: int = gridfs.DEFAULT_CHUNK_SIZE,
        write_concern: Any = None,
        read_preference: Any = None,
        collection: str | None = None,
    ) -> None:
        if collection is not None:  # Motor 1's name for bucket_name
            warnings.warn(
                'the "collection" parameter is deprecated, use "bucket_name" instead',
                DeprecationWarning,
                stacklevel=2,
            )
            bucket_name = collection
        expected = self._flavoured(MotorDatabase)
        if not (isinstance(database, expected) and database._framework is self._framework):
            raise TypeError(
                f"First argument to {type(self)} must be  MotorDatabase, not {database!r}"
            )
        self._client = database._client
        self.collection = database.get_collection(
            bucket_name, write_concern=write_concern, read_preference=read_preference
        )
        self.delegate = gridfs.GridFSBucket(
            database.delegate,
            bucket_name,
            chunk_size_bytes=chunk_size_bytes,
            write_concern=write_concern,
            read_preference=read_preference,
        )


class MotorGridIn(_NotGeneric, MotorWrapper):
    """A file being uploaded; get one from ``bucket.open_upload_stream(filename)``.

    Its data is stored when you ``await close()`` (or leave ``async with`` without an
    error). Fields of the file document other than the properties below (metadata given
    at creation, or set later with :meth:`set`) read as attributes: ``grid_in.author``.
    """

    __delegate_class__ = GridIn

    _id = ReadOnly()
    chunk_size = ReadOnly()
    closed = ReadOnly()
    content_type = ReadOnly()
    filename = ReadOnly()
    length = ReadOnly()
    name = ReadOnly()
    upload_date = ReadOnly()
    read = Delegate()  # raises io.UnsupportedOperation: a file being written
    readable = Delegate()
    seekable = Delegate()
    writeable = Delegate()
    abort = Async()
    close = Async()
    write = Async()
    writelines = Async()
    # Assigning through PyMongo's __setattr__, as Motor does, accepts the Python names of
    # the properties too: set("content_type", ...) stores the document's contentType.
    set = Async(
        attr_name="__setattr__",
        doc="Set a field of the file document (``name``, ``value``). Before close it is "
        "stored with the file; after close it updates the stored document at once.",
    )

    def __init__(
        self, root_collection: Any, delegate: Any = None, session: Any = None, **kwargs: Any
    ) -> None:
        """A new file in ``root_collection`` (e.g. ``db.fs``); prefer ``open_upload_stream``.

        Keyword arguments are fields of the file document: ``_id``, ``filename``,
        ``contentType``, ``chunkSize`` and any others, stored with the file.
        """
        _check_collection(self, root_collection)
        self._client = root_collection._client
        self.delegate = delegate or GridIn(
            root_collection.delegate, session=_unwrap_session(session), **kwargs
        )

    def __getattr__(self, name: str) -> Any:
        # Extra fields of the file document; PyMongo raises AttributeError for the others.
        if name == "delegate":  # not set yet: construction failed
            raise AttributeError(name)
        return self.delegate.__getattr__(name)

    async def __aenter__(self) -> MotorGridIn:
        return self

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        # PyMongo's context manager: store the file if the block succeeded; after an error
        # only mark it closed (chunks already written stay, as in PyMongo and Motor).
        await self._async_call(lambda: self.delegate.__exit__(exc_type, exc, tb))


class _FileProperty(ReadOnly):
    """A property of a stored file, readable once its document is loaded.

    Reading it before ``open()`` would be blocking I/O on the loop, so, as in Motor, it
    raises InvalidOperation instead.
    """

    def build(self, cls: type[MotorWrapper], name: str) -> Any:
        attr_name = self.attr_name or name

        def getter(self: MotorGridOut) -> Any:
            self._require_open(attr_name)
            return getattr(self.delegate, attr_name)

        return property(getter, doc=self.delegate_doc(cls, attr_name))


class MotorGridOut(_NotGeneric, MotorWrapper):
    """A stored file, opened for reading; get one from ``bucket.open_download_stream(id)``.

    Its properties (``filename``, ``length``, ``metadata``...) need no I/O once open; a
    MotorGridOut made directly needs ``await grid_out.open()`` first. Other fields of the
    file document read as attributes too: ``grid_out.author``.
    """

    __delegate_class__ = GridOut

    _id = _FileProperty()
    aliases = _FileProperty()
    chunk_size = _FileProperty()
    content_type = _FileProperty()  # deprecated by PyMongo: prefer metadata["contentType"]
    filename = _FileProperty()
    length = _FileProperty()
    metadata = _FileProperty()
    name = _FileProperty()
    upload_date = _FileProperty()
    close = Async()  # drops the server cursor reading the chunks, if any
    read = Async()
    readchunk = Async()
    readable = Delegate()
    seek = Delegate()
    seekable = Delegate()
    tell = Delegate()
    write = Delegate()  # raises io.UnsupportedOperation, as a read-only file does

    def __init__(
        self,
        root_collection: Any,
        file_id: Any = None,
        file_document: Any = None,
        delegate: Any = None,
        session: Any = None,
    ) -> None:
        """A stored file, by ``file_id`` or ``file_document`` (prefer the bucket's methods).

        Call ``await grid_out.open()`` before reading its properties.
        """
        _check_collection(self, root_collection)
        self._client = root_collection._client
        self.delegate = delegate or GridOut(
            root_collection.delegate, file_id, file_document, session=_unwrap_session(session)
        )

    def _require_open(self, attribute: str) -> None:
        if not self.delegate._file:
            raise InvalidOperation(
                f"You must call MotorGridOut.open() before accessing the {attribute} property"
            )

    def __getattr__(self, name: str) -> Any:
        # Other fields of the file document, once it is loaded.
        if name == "delegate" or name.startswith("__"):
            raise AttributeError(name)
        self._require_open(name)
        return getattr(self.delegate, name)

    def open(self, *, callback: Any = None) -> Any:
        """Load the file document (nothing to do if loaded); resolves to this MotorGridOut.

        Raises ``gridfs.NoFile`` if there is no such file.
        """

        def open_and_return_self() -> MotorGridOut:
            self.delegate.open()
            return self

        return self._async_call(open_and_return_self, callback)

    def readline(self, size: int = -1, /, *, callback: Any = None) -> Any:
        """The next line of the file, or at most ``size`` bytes of it (a Future of bytes)."""
        return self._async_call(lambda: self.delegate.readline(size), callback)

    def __aiter__(self) -> MotorGridOut:
        return self

    async def __anext__(self) -> bytes:
        chunk: bytes = await self.readchunk()
        if not chunk:
            raise StopAsyncIteration
        return chunk

    async def stream_to_handler(self, request_handler: Any) -> None:
        """Write the rest of the file to a Tornado ``RequestHandler``, chunk by chunk.

        Each chunk is written and flushed; a flush that returns an awaitable (Tornado's
        Future) is awaited, so a slow client holds back the reading instead of the whole
        file piling up in memory. Set the headers first; call ``finish()`` after.
        """
        async for chunk in self:
            request_handler.write(chunk)
            flushed = request_handler.flush()
            if inspect.isawaitable(flushed):
                await flushed


class MotorGridOutCursor(MotorCursor):
    """``bucket.find()``: a cursor whose documents are :class:`MotorGridOut` files."""

    __delegate_class__ = GridOutCursor

    # Declared again so they are GridOutCursor's: it refuses the first two with
    # NotImplementedError. max_scan is PyMongo's deprecated option, which Motor 3 offers.
    add_option = Chain()
    remove_option = Chain()
    max_scan = Chain()

    def __init__(self, cursor: GridOutCursor, collection: Any) -> None:
        """Wrap PyMongo's ``cursor`` over ``collection``'s files (prefer ``bucket.find()``)."""
        self.delegate = cursor
        self._client = collection._client

    @property
    def collection(self) -> Any:
        """The bucket's root collection (``db.fs``), as in Motor."""
        return MotorCollection._from_delegate(self, self.delegate._root_collection)

    @staticmethod
    def _take(cursor: Any, length: int | None) -> list[Any]:
        # GridOutCursor.to_list(n) raises StopIteration when fewer than n files match
        # (PyMongo 4.20), so collect by iterating, which stops cleanly.
        return list(itertools.islice(cursor, length))

    def _wrap_documents(self, docs: list[Any]) -> list[Any]:
        return [MotorGridOut._from_delegate(self, doc) for doc in docs]
