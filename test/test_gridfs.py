"""GridFS through greenmotor against the real server."""

from __future__ import annotations

import asyncio
import io

import gridfs
import pytest
from gridfs.errors import NoFile

from greenmotor import MotorGridFSBucket, MotorGridIn, MotorGridOut, MotorGridOutCursor


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
        async with bucket.open_upload_stream("aborted.bin") as grid_in:
            await grid_in.write(DATA)
            raise RuntimeError("stop")
    assert sync_client[db.name].fs.files.count_documents({"filename": "aborted.bin"}) == 0
    assert sync_client[db.name].fs.chunks.count_documents({"files_id": grid_in._id}) == 0


async def test_by_name_revisions_rename_delete(bucket, sync_bucket, io_loop):
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
    await bucket.rename_by_name("doc", "renamed")
    await bucket.delete_by_name("renamed")
    with pytest.raises(NoFile):
        await bucket.open_download_stream_by_name("doc")


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
    with pytest.raises(TypeError, match="root_collection must be a MotorCollection"):
        MotorGridOut("fs", file_id)


async def test_callback_style(bucket, io_loop):
    done = asyncio.get_running_loop().create_future()
    bucket.upload_from_stream("cb", b"cb", callback=lambda r, e: done.set_result((r, e)))
    file_id, error = await done
    assert error is None and file_id is not None


def test_bucket_needs_a_motor_database():
    with pytest.raises(TypeError, match="database must be a MotorDatabase"):
        MotorGridFSBucket("db")
