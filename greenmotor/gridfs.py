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
"""

from __future__ import annotations

import itertools
from typing import Any

import gridfs
from gridfs.synchronous.grid_file import GridIn, GridOut, GridOutCursor

from greenmotor.cursor import MotorCursor
from greenmotor.metaprogramming import Async, Delegate, MotorWrapper, ReadOnly

__all__ = ["MotorGridFSBucket", "MotorGridIn", "MotorGridOut", "MotorGridOutCursor"]


class MotorGridFSBucket(MotorWrapper):
    """A GridFS bucket in a database (collections ``<name>.files`` and ``<name>.chunks``)."""

    __delegate_class__ = gridfs.GridFSBucket

    delete = Async()
    delete_by_name = Async()
    download_to_stream = Async()
    download_to_stream_by_name = Async()
    open_download_stream = Async(wrap="MotorGridOut")
    open_download_stream_by_name = Async(wrap="MotorGridOut")
    rename = Async()
    rename_by_name = Async()
    upload_from_stream = Async()
    upload_from_stream_with_id = Async()
    find = Delegate(wrap="MotorGridOutCursor")
    open_upload_stream = Delegate(wrap="MotorGridIn")
    open_upload_stream_with_id = Delegate(wrap="MotorGridIn")

    def __init__(
        self,
        database: Any,
        bucket_name: str = "fs",
        chunk_size_bytes: int = gridfs.DEFAULT_CHUNK_SIZE,
        write_concern: Any = None,
        read_preference: Any = None,
        collection: str | None = None,
    ) -> None:
        from greenmotor.client import MotorDatabase

        if not isinstance(database, MotorDatabase):
            raise TypeError(f"database must be a MotorDatabase, not {database!r}")
        if collection is not None:  # Motor's older name for bucket_name
            bucket_name = collection
        self.delegate = gridfs.GridFSBucket(
            database.delegate,
            bucket_name,
            chunk_size_bytes=chunk_size_bytes,
            write_concern=write_concern,
            read_preference=read_preference,
        )
        self._client = database._client


class MotorGridIn(MotorWrapper):
    """A file being uploaded; get one from ``bucket.open_upload_stream(filename)``.

    Its data is stored when you ``await close()`` (or leave ``async with``).
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
    abort = Async()
    close = Async()
    write = Async()
    writelines = Async()
    set = Async(attr_name="__setattr__")  # set a file-document field; saved at close
    read = Delegate()
    readable = Delegate()
    seekable = Delegate()
    writeable = Delegate()

    def __getattr__(self, name: str) -> Any:
        # Extra fields of the file document (metadata given at open, or set later).
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.delegate, name)

    async def __aenter__(self) -> MotorGridIn:
        return self

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            await self.close()
        else:
            await self.abort()


class MotorGridOut(MotorWrapper):
    """A stored file, opened for reading; get one from ``bucket.open_download_stream(id)``.

    Its properties (``filename``, ``length``, ``metadata``...) need no I/O once open.
    """

    __delegate_class__ = GridOut

    _id = ReadOnly()
    aliases = ReadOnly()
    chunk_size = ReadOnly()
    content_type = ReadOnly()  # deprecated by PyMongo: prefer metadata["contentType"]
    filename = ReadOnly()
    length = ReadOnly()
    metadata = ReadOnly()
    name = ReadOnly()
    upload_date = ReadOnly()
    close = Async()
    read = Async()
    readchunk = Async()
    readline = Async()
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
        session: Any = None,
    ) -> None:
        """Open a file by id or file document (prefer ``bucket.open_download_stream``).

        Call ``await grid_out.open()`` before reading properties.
        """
        from greenmotor.client import MotorCollection

        if not isinstance(root_collection, MotorCollection):
            raise TypeError(f"root_collection must be a MotorCollection, not {root_collection!r}")
        self.delegate = GridOut(
            root_collection.delegate,
            file_id,
            file_document,
            session=getattr(session, "delegate", session),
        )
        self._client = root_collection._client

    def open(self, callback: Any = None) -> Any:
        """Load the file document (nothing to do if loaded); resolves to this MotorGridOut."""

        def open_and_return_self() -> MotorGridOut:
            self.delegate.open()
            return self

        return self._async_call(open_and_return_self, callback)

    def __aiter__(self) -> MotorGridOut:
        return self

    async def __anext__(self) -> bytes:
        chunk = await self.readchunk()
        if not chunk:
            raise StopAsyncIteration
        return chunk  # type: ignore[no-any-return]

    async def stream_to_handler(self, request_handler: Any) -> None:
        """Write the file to a Tornado ``RequestHandler`` chunk by chunk, flushing each."""
        async for chunk in self:
            request_handler.write(chunk)
            await request_handler.flush()


class MotorGridOutCursor(MotorCursor):
    """``bucket.find()``: a cursor whose documents are :class:`MotorGridOut` files."""

    __delegate_class__ = GridOutCursor

    @staticmethod
    def _take(cursor: Any, length: int | None) -> list:
        # GridOutCursor.to_list(n) raises StopIteration when fewer than n files match
        # (PyMongo 4.20), so collect by iterating, which stops cleanly.
        return list(itertools.islice(cursor, length))

    def _wrap_documents(self, docs: list) -> list:
        return [MotorGridOut._from_delegate(self, doc) for doc in docs]
