"""MotorClient against the real server: construction, both call styles, misuse errors."""

from __future__ import annotations

import asyncio
import functools
import re
import subprocess
import sys
import threading

import pymongo
import pymongo.synchronous.pool
import pytest
import tornado
from bson import SON, CodecOptions
from conftest import Flavour
from mockupdb import MockupDB
from pymongo import ReadPreference, WriteConcern
from pymongo.driver_info import DriverInfo
from pymongo.errors import ConfigurationError, InvalidOperation, ServerSelectionTimeoutError
from support.scripted_servers import HELLO
from support.servers import free_port
from tornado import gen
from tornado.ioloop import IOLoop

import greenmotor
from greenmotor import GreenmotorUsageError, MotorClient, MotorDatabase, green_pool, pymongo_hooks

#: The platform Motor names in the handshake, per flavour.
PLATFORMS = {"tornado": f"Tornado {tornado.version}", "asyncio": "asyncio"}


def test_constructor_does_no_io_and_starts_no_threads(io_loop):
    # Compare thread sets, not counts: earlier tests' closed clients may still be winding down.
    threads = set(threading.enumerate())
    client = MotorClient("127.0.0.1", free_port(), io_loop=io_loop)  # nothing listens there
    assert set(threading.enumerate()) - threads == set()
    assert client.io_loop is io_loop
    client.close()


def test_constructor_rejects_bad_arguments(io_loop):
    with pytest.raises(TypeError, match=r"io_loop must be .*IOLoop, not 'loop'"):
        MotorClient(io_loop="loop")
    with pytest.raises(TypeError, match=r"io_loop must be .*IOLoop, not None"):
        MotorClient(io_loop=None)  # as Motor: an io_loop given must be a loop
    with pytest.raises(
        TypeError,
        match=re.escape(
            "Incorrect type for `driver` <class 'str'>; expected value of type "
            "pymongo.driver_info.DriverInfo"
        ),
    ):
        MotorClient(driver="Foo", io_loop=io_loop)
    with pytest.raises(TypeError, match="port must be an instance of int"):
        MotorClient("localhost", "27017", io_loop=io_loop)
    with pytest.raises(ConfigurationError, match="Must provide at least one hostname"):
        MotorClient("mongodb://", io_loop=io_loop)
    with pytest.raises(ConfigurationError, match="Unknown option: notAnOption"):
        MotorClient("localhost", notAnOption=1, io_loop=io_loop)
    with pytest.raises(ValueError, match="maxPoolSize must be a non negative integer"):
        MotorClient(maxPoolSize=-1, io_loop=io_loop)
    with pytest.raises(TypeError, match="subclass of greenmotor.pymongo_hooks.GreenPool"):
        MotorClient(_pool_class=pymongo.synchronous.pool.Pool, io_loop=io_loop)
    with pytest.raises(TypeError, match="greenmotor sets _condition_class"):
        MotorClient(_condition_class=object, io_loop=io_loop)


async def test_pool_class_hook_takes_a_green_pool(server_uri, io_loop):
    # PyMongo's _pool_class hook (its own suite's MockClient uses it) with a GreenPool
    # subclass mixed with a PyMongo Pool subclass: greenmotor's pool still waits green.
    checkouts: list[tuple[str, int]] = []

    class RecordingPool(pymongo.synchronous.pool.Pool):
        def __init__(self, owner: str, address: tuple[str, int], *args, **kwargs) -> None:
            self.owner = owner
            super().__init__(address, *args, **kwargs)

        def checkout(self, handler=None):
            checkouts.append((self.owner, len(checkouts)))
            return super().checkout(handler)

    class GreenRecordingPool(pymongo_hooks.GreenPool, RecordingPool):
        pass

    client = MotorClient(
        server_uri,
        maxPoolSize=1,
        _pool_class=functools.partial(GreenRecordingPool, "test"),
        io_loop=io_loop,
    )
    try:
        # 20 operations on one connection: 19 wait in the pool's queue, which only a green
        # wait survives on the loop's thread (a real wait would deadlock).
        await asyncio.gather(*(client.admin.command("ping") for _ in range(20)))
        pool = next(iter(client.delegate._topology._servers.values())).pool
        assert isinstance(pool, GreenRecordingPool)
        assert isinstance(pool.size_cond, green_pool.GreenCondition)
        assert len(checkouts) >= 20 and {owner for owner, _ in checkouts} == {"test"}
    finally:
        client.close()


async def test_future_style(client, io_loop):
    future = client.admin.command("ping")
    assert isinstance(future, asyncio.Future)
    assert (await future)["ok"] == 1.0


async def test_gen_coroutine_style(client, io_loop):
    @gen.coroutine
    def ping():
        result = yield client.admin.command("ping")
        return result

    assert (await ping())["ok"] == 1.0


async def test_callback_style_is_called_later_on_the_loop_thread(client, io_loop):
    done = asyncio.get_running_loop().create_future()
    calls = []

    def callback(result, error):
        calls.append((result, error, threading.get_ident()))
        done.set_result(None)

    assert client.admin.command("ping", callback=callback) is None
    assert calls == []  # never synchronously
    await done
    result, error, thread = calls[0]
    assert result["ok"] == 1.0 and error is None and thread == threading.get_ident()


async def test_callback_receives_pymongo_exception(client, io_loop):
    done = asyncio.get_running_loop().create_future()
    client.admin.command("noSuchCommand", callback=lambda r, e: done.set_result((r, e)))
    result, error = await done
    assert result is None
    assert isinstance(error, pymongo.errors.OperationFailure)


async def test_callback_error_even_before_io(client, io_loop):
    # Argument errors PyMongo raises before any I/O still reach the callback, later.
    calls = []
    done = asyncio.get_running_loop().create_future()

    def callback(result, error):
        calls.append(error)
        done.set_result(None)

    client.test.c.insert_one("not a document", callback=callback)
    assert calls == []
    await done
    assert isinstance(calls[0], TypeError)


async def test_non_callable_callback_raises_type_error_at_call_time(client, io_loop):
    with pytest.raises(TypeError, match="callback must be a callable"):
        client.admin.command("ping", callback="not callable")


async def test_server_info_and_database_names(client, db, io_loop):
    info = await client.server_info()
    assert "version" in info
    await db.things.insert_one({"a": 1})
    assert db.name in await client.list_database_names()
    cursor = await client.list_databases()
    names = [d["name"] async for d in cursor]
    assert db.name in names


async def test_drop_database_by_name_and_by_object(client, sync_client, io_loop):
    for target in ("greenmotor_drop_a", client.greenmotor_drop_b):
        name = target if isinstance(target, str) else target.name
        sync_client[name].c.insert_one({})
        await client.drop_database(target)
        assert name not in sync_client.list_database_names()


async def test_address_primary_topology(client, sync_client, server_uri, io_loop):
    await client.admin.command("ping")
    host, port = client.address
    assert port == pymongo.uri_parser.parse_uri(server_uri)["nodelist"][0][1]
    assert client.primary == (host, port)
    sync_client.admin.command("ping")
    expected = sync_client.topology_description.topology_type_name
    assert client.topology_description.topology_type_name == expected
    assert client.is_primary is True
    assert client.nodes == frozenset([(host, port)])


def test_databases_by_attribute_and_item(client):
    assert isinstance(client.mydb, MotorDatabase)
    assert client.mydb == client["mydb"] == client.get_database("mydb")
    assert client.mydb.name == "mydb"
    with pytest.raises(AttributeError, match=r"use client\['_private'\]"):
        client._private  # noqa: B018


def test_get_default_database(server_uri, io_loop):
    client = MotorClient(server_uri.rstrip("/") + "/defaultdb", io_loop=io_loop)
    assert client.get_default_database().name == "defaultdb"
    client.close()
    client = MotorClient(server_uri, io_loop=io_loop)
    with pytest.raises(ConfigurationError):
        client.get_default_database()
    assert client.get_default_database("fallback").name == "fallback"
    client.close()


def test_options_are_pymongo_options(server_uri, io_loop):
    client = MotorClient(
        server_uri,
        io_loop=io_loop,
        w=2,
        readPreference="secondaryPreferred",
        document_class=SON,
        maxPoolSize=7,
    )
    assert client.write_concern == WriteConcern(w=2)
    assert client.read_preference == ReadPreference.SECONDARY_PREFERRED
    assert client.codec_options.document_class is SON
    assert client.options.pool_options.max_pool_size == 7
    db = client.get_database("x", codec_options=CodecOptions(tz_aware=True))
    assert db.codec_options.tz_aware is True
    client.close()


async def test_use_after_close_raises_invalid_operation(server_uri, io_loop):
    client = MotorClient(server_uri, io_loop=io_loop)
    await client.admin.command("ping")
    client.close()
    with pytest.raises(InvalidOperation, match="Cannot use MotorClient after close"):
        await client.admin.command("ping")
    with pytest.raises(InvalidOperation, match="Cannot use MotorClient after close"):
        client.test.c.insert_one({}, callback=lambda r, e: None)


async def test_server_selection_timeout_is_pymongo_error(io_loop):
    client = MotorClient("127.0.0.1", free_port(), serverSelectionTimeoutMS=200, io_loop=io_loop)
    with pytest.raises(ServerSelectionTimeoutError):
        await client.admin.command("ping")
    client.close()


def test_call_from_another_thread_is_refused(client, io_loop):
    errors = []

    async def main():
        await client.admin.command("ping")

        def other_thread():
            try:
                client.admin.command("ping")
            except GreenmotorUsageError as exc:
                errors.append(exc)

        thread = threading.Thread(target=other_thread)
        thread.start()
        while thread.is_alive():
            await asyncio.sleep(0.01)

    io_loop.run_sync(main)
    assert len(errors) == 1
    assert "runs in another thread" in str(errors[0])
    assert "IOLoop.add_callback" in str(errors[0])


def test_call_from_another_running_loop_is_refused(client, io_loop):
    io_loop.run_sync(lambda: client.admin.command("ping"))
    other = IOLoop(make_current=False)

    async def use_on_other_loop():
        with pytest.raises(GreenmotorUsageError, match="one MotorClient per loop"):
            client.admin.command("ping")

    other.run_sync(use_on_other_loop)
    other.close()


async def test_call_from_inside_a_driver_greenlet_is_refused(client, io_loop):
    # A PyMongo command listener runs inside greenmotor's greenlet; calling back into
    # greenmotor there cannot work and must say so.
    from greenmotor.core import spawn

    def misuse():
        return client.admin.command("ping")

    with pytest.raises(GreenmotorUsageError, match="inside greenmotor's own greenlet"):
        await spawn(asyncio.get_running_loop(), misuse)


def test_motor_client_is_exported():
    assert greenmotor.MotorClient is MotorClient
    assert greenmotor.version


class HandshakeRecorder:
    """A wire peer that records the ``client`` document of every handshake it receives."""

    def __init__(self) -> None:
        self.metadata: list[dict] = []
        self._server = MockupDB(auto_ismaster=False, verbose=False)
        self._server.autoresponds(self._handle)

    def _handle(self, request) -> bool:
        if request.command_name.lower() in ("ismaster", "hello"):
            if "client" in request.doc:  # a connection's first hello; heartbeats have none
                self.metadata.append(request.doc["client"])
            return request.replies(HELLO)
        return request.replies({"ok": 1})

    def __enter__(self) -> HandshakeRecorder:
        self._server.run()
        return self

    def __exit__(self, *exc) -> None:
        self._server.stop()

    def handshakes_of(self, flavour: str, **kwargs) -> list[dict]:
        """The metadata a new client of ``flavour`` sends while it runs one command."""
        cls = Flavour(flavour).MotorClient

        async def ping():
            client = cls(self._server.uri, **kwargs)
            await client.admin.command("ping")
            client.close()

        Flavour(flavour).run_loop(ping)
        return self.metadata


@pytest.mark.parametrize("flavour", PLATFORMS)
def test_handshake_names_motor_and_its_framework(flavour):
    """Servers log, and tools (and Motor's tests) read, what Motor 3.7 sends."""
    platform = PLATFORMS[flavour]
    with HandshakeRecorder() as server:
        handshakes = server.handshakes_of(flavour)
    assert len(handshakes) >= 2  # the monitor's connection and the command's
    for meta in handshakes:
        assert meta["driver"]["name"].startswith("PyMongo|")
        assert meta["driver"]["name"].endswith("|Motor")
        assert meta["driver"]["version"].startswith(pymongo.version)
        assert meta["driver"]["version"].endswith(f"|3.7.1+greenmotor.{greenmotor.version}")
        assert meta["platform"].endswith(f"|{platform}")


@pytest.mark.parametrize("flavour", PLATFORMS)
def test_handshake_puts_an_applications_driver_info_after_motors(flavour):
    platform = PLATFORMS[flavour]
    ours = f"3.7.1+greenmotor.{greenmotor.version}"
    with HandshakeRecorder() as server:
        driver = DriverInfo("Foo", "1.1.1", "FooPlat")
        handshakes = server.handshakes_of(flavour, driver=driver)
    assert len(handshakes) >= 2  # monitors too: the option, not append_metadata
    for meta in handshakes:
        assert meta["driver"]["name"].endswith("|Motor|Foo")
        assert meta["driver"]["version"].endswith(f"|{ours}|1.1.1")
        assert meta["platform"].endswith(f"|{platform}|FooPlat")

    with HandshakeRecorder() as server:
        [meta, *_] = server.handshakes_of(flavour, driver=DriverInfo("Bar"))
    # No version given: an empty segment keeps names and versions paired, as PyMongo needs.
    assert meta["driver"]["name"].endswith("|Motor|Bar")
    assert meta["driver"]["version"].endswith(f"|{ours}|")
    assert meta["driver"]["name"].count("|") == meta["driver"]["version"].count("|")
    assert meta["platform"].endswith(f"|{platform}")


@pytest.mark.parametrize("flavour", PLATFORMS)
def test_private_names_are_refused_with_motors_message(flavour):
    cls = Flavour(flavour).MotorClient
    client = cls("127.0.0.1", free_port())
    expected = f"{cls.__name__} has no attribute '_x'. To access the _x database, use client['_x']."
    with pytest.raises(AttributeError, match=re.escape(expected)):
        client._x  # noqa: B018
    assert type(client["_x"]).__name__ == cls.__name__.replace("Client", "Database")
    client.close()


def test_with_block_closes_the_client(server_uri, io_loop):
    # Not in Motor; greenmotor's documented equivalent of PyMongo's `with MongoClient()`.
    with MotorClient(server_uri, io_loop=io_loop) as client:
        io_loop.run_sync(lambda: client.admin.command("ping"))
    with pytest.raises(InvalidOperation, match="Cannot use MotorClient after close"):
        io_loop.run_sync(lambda: client.admin.command("ping"))


def test_pymongo_mongo_client_is_loaded_as_with_motor():
    # Code written for Motor may say pymongo.mongo_client.MongoClient after `import pymongo`.
    code = "import greenmotor, pymongo; print(pymongo.mongo_client.MongoClient.__name__)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "MongoClient", result.stderr
