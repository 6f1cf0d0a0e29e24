"""GridFS through greenmotor against the real server.

The first tests use the Tornado flavour on the ``io_loop`` fixture; those from
:class:`Flavour` on run each test in both flavours (``MotorGridIn`` on a Tornado IOLoop,
``AsyncIOMotorGridIn`` under ``asyncio.run``), for the behaviour Motor 3 specifies.
"""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import io

import gridfs
import pytest
from gridfs.errors import NoFile
from pymongo.errors import InvalidOperation
from pymongo.read_preferences import ReadPreference
from pymongo.write_concern import WriteConcern

from greenmotor import MotorGridFSBucket, MotorGridIn, MotorGridOut, MotorGridOutCursor
from greenmotor.gridfs import _hash_gridout


@pytest.fixture
def bucket(db):
    return MotorGridFSBucket(db, chunk_size_bytes=1024)


@pytest.fixture
def sync_bucket(sync_client, db):
    return gridfs.GridFSBucket(sync_client[db.name], chunk_size_bytes=1024)


DATA = bytes(range(256)) * 20  # 5 KB: several 1 KB chunks


async def test_upload_and_download(bucket, sync_bucket, io_loop):
    file_id = await bucket.upload_from_stream("a.bin", DATA, metadata={"kind": "test"})
    assert sync_bucket.open_download_stream(file_id).read() == DATA
    grid_out = await bucket.open_download_stream(file_id)
    assert isinstance(grid_out, MotorGridOut)
    assert (grid_out.filename, grid_out.name, grid_out.length) == ("a.bin", "a.bin", len(DATA))
    assert grid_out.chunk_size == 1024 and grid_out.metadata == {"kind": "test"}
    assert grid_out._id == file_id and grid_out.upload_date is not None
    assert await grid_out.read() == DATA


async def test_upload_with_id_and_from_file_object(bucket, io_loop):
    await bucket.upload_from_stream_with_id("my-id", "b.txt", io.BytesIO(b"hello"))
    out = await bucket.open_download_stream("my-id")
    assert await out.read() == b"hello"


async def test_read_in_pieces(bucket, io_loop):
    text = b"line one\nline two\nlast"
    file_id = await bucket.upload_from_stream("lines.txt", text)
    out = await bucket.open_download_stream(file_id)
    assert await out.readline() == b"line one\n"
    assert out.tell() == 9
    assert await out.read(4) == b"line"
    out.seek(0)
    assert await out.readchunk() == text  # one chunk
    assert await out.readchunk() == b""
    out.seek(0)
    assert [chunk async for chunk in out] == [text]


async def test_async_for_chunks(bucket, io_loop):
    file_id = await bucket.upload_from_stream("chunks", DATA)
    out = await bucket.open_download_stream(file_id)
    chunks = [chunk async for chunk in out]
    assert len(chunks) == 5 and b"".join(chunks) == DATA


async def test_open_upload_stream(bucket, sync_bucket, io_loop):
    grid_in = bucket.open_upload_stream("up.bin", metadata={"owner": "me"})
    assert isinstance(grid_in, MotorGridIn) and not grid_in.closed
    await grid_in.write(DATA[:3000])
    await grid_in.writelines([DATA[3000:4000], DATA[4000:]])
    await grid_in.set("contentType", "application/x-test")
    await grid_in.close()
    assert grid_in.closed and grid_in.length == len(DATA) and grid_in.filename == "up.bin"
    stored = sync_bucket.open_download_stream(grid_in._id)
    assert stored.read() == DATA and stored.metadata == {"owner": "me"}


async def test_async_with_upload_and_abort(bucket, sync_client, db, io_loop):
    async with bucket.open_upload_stream_with_id(5, "ctx.bin") as grid_in:
        await grid_in.write(b"abc")
    assert await (await bucket.open_download_stream(5)).read() == b"abc"

    with pytest.raises(RuntimeError):
        async with bucket.open_upload_stream("failed.bin") as grid_in:
            await grid_in.write(DATA)
            raise RuntimeError("stop")
    assert grid_in.closed
    assert sync_client[db.name].fs.files.count_documents({"filename": "failed.bin"}) == 0

    grid_in = bucket.open_upload_stream("aborted.bin")
    await grid_in.write(DATA)
    await grid_in.abort()
    assert grid_in.closed
    assert sync_client[db.name].fs.chunks.count_documents({"files_id": grid_in._id}) == 0


async def test_by_name_revisions_rename_delete(bucket, io_loop):
    for version in (b"v0", b"v1", b"v2"):
        await bucket.upload_from_stream("doc", version)
    assert await (await bucket.open_download_stream_by_name("doc")).read() == b"v2"
    assert await (await bucket.open_download_stream_by_name("doc", revision=0)).read() == b"v0"
    sink = io.BytesIO()
    await bucket.download_to_stream_by_name("doc", sink, revision=1)
    assert sink.getvalue() == b"v1"

    file_id = await bucket.upload_from_stream("old", b"x")
    await bucket.rename(file_id, "new")
    sink = io.BytesIO()
    await bucket.download_to_stream(file_id, sink)
    assert sink.getvalue() == b"x"
    assert (await bucket.open_download_stream(file_id)).filename == "new"
    await bucket.delete(file_id)
    with pytest.raises(NoFile):
        await bucket.open_download_stream(file_id)
    with pytest.raises(NoFile):
        await bucket.delete(file_id)
    with pytest.raises(NoFile):
        await bucket.open_download_stream_by_name("doc", revision=3)


def test_no_delete_or_rename_by_name_as_in_motor(bucket):
    """Motor 3's bucket has neither; code using them would not run on Motor."""
    assert not hasattr(bucket, "delete_by_name") and not hasattr(bucket, "rename_by_name")


async def test_find(bucket, io_loop):
    for name in ("f1", "f2", "f3"):
        await bucket.upload_from_stream(name, name.encode())
    cursor = bucket.find({"filename": {"$ne": "f2"}}).sort("filename")
    assert isinstance(cursor, MotorGridOutCursor)
    files = await cursor.to_list(None)
    assert all(isinstance(f, MotorGridOut) for f in files)
    assert [f.filename for f in files] == ["f1", "f3"]
    assert await files[1].read() == b"f3"
    names = [f.filename async for f in bucket.find().sort("filename", -1)]
    assert names == ["f3", "f2", "f1"]
    assert await bucket.find({"filename": "none"}).to_list(5) == []
    assert len(await bucket.find().to_list(2)) == 2


async def test_grid_out_constructor_and_open(bucket, db, io_loop):
    file_id = await bucket.upload_from_stream("direct", b"data")
    out = MotorGridOut(db.fs, file_id)
    assert await out.open() is out
    assert out.filename == "direct" and await out.read() == b"data"
    missing = MotorGridOut(db.fs, "nope")
    with pytest.raises(NoFile):
        await missing.open()
    with pytest.raises(TypeError, match="First argument to MotorGridOut must be MotorCollection"):
        MotorGridOut("fs", file_id)


async def test_callback_style(bucket, io_loop):
    done = asyncio.get_running_loop().create_future()
    bucket.upload_from_stream("cb", b"cb", callback=lambda r, e: done.set_result((r, e)))
    file_id, error = await done
    assert error is None and file_id is not None


def test_bucket_needs_a_motor_database():
    with pytest.raises(TypeError, match="must be  MotorDatabase, not 'db'"):  # Motor's two spaces
        MotorGridFSBucket("db")


# --- Both flavours -------------------------------------------------------------------------


def test_grid_in_takes_motors_constructor_arguments(flavour, server_uri):
    async def test(db):
        grid_in = flavour.MotorGridIn(
            db.fs, _id=5, filename="f.html", contentType="text/html", chunkSize=4, author="me"
        )
        assert type(grid_in) is flavour.MotorGridIn
        assert (grid_in._id, grid_in.filename, grid_in.chunk_size) == (5, "f.html", 4)
        with pytest.warns(DeprecationWarning, match="GridIn property 'contentType'"):
            assert grid_in.content_type == "text/html"  # Motor's name, deprecated by PyMongo
        assert grid_in.author == "me"  # other fields of the file document read as attributes
        with pytest.raises(AttributeError):
            _ = grid_in.length  # only known once closed
        with pytest.raises(AttributeError, match="GridIn object has no attribute 'nothing'"):
            _ = grid_in.nothing
        await grid_in.write(b"ten bytes!")
        await grid_in.close()
        assert grid_in.length == 10 and isinstance(grid_in.upload_date, datetime.datetime)

        grid_out = await flavour.MotorGridOut(db.fs, 5).open()
        assert type(grid_out) is flavour.MotorGridOut
        assert (grid_out.author, grid_out.length) == ("me", 10)
        with pytest.warns(DeprecationWarning, match="GridOut property 'contentType'"):
            assert grid_out.content_type == "text/html"
        assert await grid_out.read() == b"ten bytes!"

    flavour.run(lambda coll: test(coll.database))


def test_grid_in_and_out_need_a_collection_of_their_flavour(flavour, other_flavour, server_uri):
    other_client = other_flavour.MotorClient(server_uri)
    try:
        for name in ("MotorGridIn", "MotorGridOut"):
            cls = getattr(flavour, name)
            message = f"First argument to {name} must be MotorCollection, not"
            with pytest.raises(TypeError, match=f"{message} 'fs'"):
                cls("fs")
            with pytest.raises(TypeError, match=message):
                cls(other_client.db.fs)
    finally:
        other_client.close()


def test_grid_in_set_before_and_after_close(flavour, server_uri):
    async def test(db):
        grid_in = flavour.MotorGridIn(db.fs, _id="f", bar="baz")
        with pytest.raises(AttributeError):
            grid_in.filename = "x"  # a property: set() is the way, as in Motor
        await grid_in.set("filename", "named")
        with pytest.warns(DeprecationWarning, match="GridIn property 'contentType'"):
            await grid_in.set("content_type", "text/plain")  # the Python name stores contentType
        await grid_in.set("bar", "before")
        await grid_in.close()
        await grid_in.set("bar", "after")  # after close: updates the stored document
        assert grid_in.filename == "named"
        with pytest.warns(DeprecationWarning, match="GridIn property 'contentType'"):
            assert grid_in.content_type == "text/plain"

        grid_out = await flavour.MotorGridOut(db.fs, "f").open()
        assert (grid_out.filename, grid_out.bar) == ("named", "after")
        with pytest.warns(DeprecationWarning, match="GridOut property 'contentType'"):
            assert grid_out.content_type == "text/plain"
        assert "content_type" not in await db.fs.files.find_one({"_id": "f"})

    flavour.run(lambda coll: test(coll.database))


def test_failed_async_with_marks_closed_and_leaves_a_stored_file_alone(flavour, server_uri):
    """As PyMongo's GridIn (and Motor): an error in the block does not abort the upload.

    Aborting deletes every chunk and file document with the upload's _id, which would
    destroy a stored file when the upload reused its _id.
    """

    async def test(db):
        bucket = flavour.MotorGridFSBucket(db, chunk_size_bytes=4)
        await bucket.upload_from_stream_with_id("x", "original", b"original data")
        with pytest.raises(RuntimeError, match="stop"):
            async with bucket.open_upload_stream_with_id("x", "clash") as grid_in:
                raise RuntimeError("stop")
        assert type(grid_in) is flavour.MotorGridIn and grid_in.closed
        assert await (await bucket.open_download_stream("x")).read() == b"original data"

        with pytest.raises(ConnectionError):
            async with flavour.MotorGridIn(db.fs, _id="new", filename="new") as grid_in:
                await grid_in.write(b"abc")
                raise ConnectionError("lost")
        assert grid_in.closed
        assert await db.fs.files.count_documents({"_id": "new"}) == 0

    flavour.run(lambda coll: test(coll.database))


def test_grid_out_properties_need_open(flavour, server_uri):
    async def test(db):
        bucket = flavour.MotorGridFSBucket(db)
        file_id = await bucket.upload_from_stream("f.txt", b"data", metadata={"k": 1})
        grid_out = flavour.MotorGridOut(db.fs, file_id)
        for name in ("_id", "filename", "name", "content_type", "length", "chunk_size",
                     "upload_date", "aliases", "metadata", "anything"):  # fmt: skip
            message = rf"You must call MotorGridOut.open\(\) before accessing the {name} property"
            with pytest.raises(InvalidOperation, match=message):
                getattr(grid_out, name)
        assert await grid_out.open() is grid_out
        assert (grid_out.filename, grid_out.length, grid_out.metadata) == ("f.txt", 4, {"k": 1})
        with pytest.raises(AttributeError, match="GridOut object has no attribute 'anything'"):
            _ = grid_out.anything

        # From a file document, or around a PyMongo GridOut: no I/O needed to read them.
        document = await db.fs.files.find_one({"_id": file_id})
        from_document = flavour.MotorGridOut(db.fs, file_document=document)
        assert from_document.filename == "f.txt" and await from_document.read() == b"data"
        pymongo_out = gridfs.GridOut(db.fs.delegate, file_document=document)
        wrapped = flavour.MotorGridOut(db.fs, delegate=pymongo_out)
        assert wrapped.delegate is pymongo_out and await wrapped.read() == b"data"

        with pytest.raises(NoFile):
            await flavour.MotorGridOut(db.fs, file_document={}).open()

    flavour.run(lambda coll: test(coll.database))


def test_grid_out_reads_lines_and_closes(flavour, server_uri):
    async def test(db):
        bucket = flavour.MotorGridFSBucket(db, chunk_size_bytes=4)
        file_id = await bucket.upload_from_stream("lines", b"one\ntwo\nthree")
        grid_out = await bucket.open_download_stream(file_id)
        assert await grid_out.readline() == b"one\n"
        assert await grid_out.readline(2) == b"tw"
        assert grid_out.tell() == 6 and grid_out.seekable() and grid_out.readable()
        grid_out.seek(0)
        assert [chunk async for chunk in grid_out] == [b"one\n", b"two\n", b"thre", b"e"]
        assert await grid_out.close() is None

    flavour.run(lambda coll: test(coll.database))


class FlushReturnsNone:
    """Motor's test double for stream_to_handler: a plain flush()."""

    def __init__(self):
        self.data = b""
        self.flushes = 0

    def write(self, chunk):
        self.data += chunk

    def flush(self):
        self.flushes += 1


class FlushReturnsAwaitable(FlushReturnsNone):
    """Like Tornado's RequestHandler: flush() returns something to await."""

    def flush(self):
        async def flushed():
            self.flushes += 1  # counts only if awaited

        return flushed()


@pytest.mark.parametrize("handler_class", [FlushReturnsNone, FlushReturnsAwaitable])
def test_stream_to_handler(flavour, server_uri, handler_class):
    async def test(db):
        bucket = flavour.MotorGridFSBucket(db, chunk_size_bytes=4)
        results = []
        for data in (b"", b"a", b"ten bytes!"):
            file_id = await bucket.upload_from_stream("f", data)
            grid_out = await bucket.open_download_stream(file_id)
            handler = handler_class()
            assert await grid_out.stream_to_handler(handler) is None
            results.append((handler.data, handler.flushes))
        return results

    assert flavour.run(lambda coll: test(coll.database)) == [
        (b"", 0),
        (b"a", 1),
        (b"ten bytes!", 3),
    ]


def test_write_a_grid_out_into_a_grid_in(flavour, server_uri):
    async def test(db):
        bucket = flavour.MotorGridFSBucket(db)
        file_id = await bucket.upload_from_stream("a", b"copy me")
        source = await bucket.open_download_stream(file_id)
        copy = flavour.MotorGridIn(db.fs, filename="b")
        await copy.write(source)  # read through the MotorGridOut's PyMongo object
        await copy.close()
        return await (await bucket.open_download_stream(copy._id)).read()

    assert flavour.run(lambda coll: test(coll.database)) == b"copy me"


def test_bucket_options_and_collection(flavour, server_uri):
    async def test(db):
        write_concern = WriteConcern(w=1, wtimeout=1000)
        bucket = flavour.MotorGridFSBucket(
            db, "images", chunk_size_bytes=8, write_concern=write_concern,
            read_preference=ReadPreference.SECONDARY_PREFERRED,
        )  # fmt: skip
        assert type(bucket.collection) is flavour.MotorCollection
        assert bucket.collection.name == "images"
        assert bucket.collection.write_concern == write_concern
        assert bucket.collection.read_preference == ReadPreference.SECONDARY_PREFERRED
        assert bucket.delegate._chunk_size_bytes == 8
        file_id = await bucket.upload_from_stream("f", b"0123456789")
        assert await db["images.chunks"].count_documents({"files_id": file_id}) == 2

    flavour.run(lambda coll: test(coll.database))


def test_bucket_collection_parameter_is_deprecated(flavour, server_uri):
    client = flavour.MotorClient(server_uri)
    try:
        with pytest.warns(DeprecationWarning) as warned:
            bucket = flavour.MotorGridFSBucket(client.db, collection="alt")
        assert [str(w.message) for w in warned] == [
            'the "collection" parameter is deprecated, use "bucket_name" instead'
        ]
        assert warned[0].filename == __file__  # points at the caller
        assert bucket.collection.name == "alt" and bucket.delegate._bucket_name == "alt"
    finally:
        client.close()


def test_bucket_needs_a_database_of_its_flavour(flavour, other_flavour, server_uri):
    other_client = other_flavour.MotorClient(server_uri)
    try:
        with pytest.raises(TypeError, match="MotorGridFSBucket'> must be  MotorDatabase"):
            flavour.MotorGridFSBucket(other_client.db)
    finally:
        other_client.close()


def test_gridfs_classes_are_not_generic(flavour):
    """As in Motor: ``MotorGridIn[dict]`` is a TypeError (its cursor is generic)."""
    for name in ("MotorGridFSBucket", "MotorGridIn", "MotorGridOut"):
        with pytest.raises(TypeError, match="is not subscriptable"):
            getattr(flavour, name)[dict]
    assert flavour.MotorGridOutCursor[dict] is flavour.MotorGridOutCursor


def test_grid_out_cursor(flavour, server_uri):
    async def test(db):
        bucket = flavour.MotorGridFSBucket(db)
        for name in ("a", "b"):
            await bucket.upload_from_stream(name, name.encode())
        cursor = bucket.find().sort("filename")
        assert type(cursor) is flavour.MotorGridOutCursor
        assert type(cursor.collection) is flavour.MotorCollection
        assert cursor.collection.name == "fs"  # the root collection, as in Motor
        assert cursor.max_scan(10) is cursor
        with pytest.raises(NotImplementedError, match="Method does not exist for GridOutCursor"):
            cursor.add_option(2)
        files = await cursor.to_list(None)
        assert [type(f) for f in files] == [flavour.MotorGridOut] * 2

        made = flavour.MotorGridOutCursor(bucket.delegate.find({"filename": "b"}), db.fs)
        assert [await f.read() async for f in made] == [b"b"]

    flavour.run(lambda coll: test(coll.database))


def test_hash_gridout_is_motors_etag(flavour, server_uri):
    async def test(db):
        bucket = flavour.MotorGridFSBucket(db)
        file_id = await bucket.upload_from_stream("f", b"data")
        grid_out = await bucket.open_download_stream(file_id)
        expected = hashlib.sha256(
            f"{grid_out._id}{grid_out.length}{grid_out.upload_date}".encode()
        ).hexdigest()
        pymongo_out = gridfs.GridOut(db.fs.delegate, file_document=grid_out.delegate._file)
        return expected, _hash_gridout(grid_out), _hash_gridout(pymongo_out)

    expected, from_motor, from_pymongo = flavour.run(lambda coll: test(coll.database))
    assert from_motor == from_pymongo == expected and len(expected) == 64
