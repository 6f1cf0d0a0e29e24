"""Bad input and misuse: a clear error that names the problem, at once, and nothing hangs.

test_client.py covers the basics (io_loop type, a non-int port, an empty host list, an
unknown keyword option, a negative maxPoolSize, a non-callable callback on ``command``, use
after close, use from another thread or another running loop, and re-entering greenmotor
from its own greenlet). This file covers the rest of the surface.
"""

from __future__ import annotations

import asyncio
import threading

import pymongo
import pytest
from bson.errors import InvalidDocument
from pymongo import monitoring
from pymongo.errors import ConfigurationError, InvalidName, InvalidOperation
from support.fault_helpers import loop_greenlets
from tornado.ioloop import IOLoop

from greenmotor import GreenmotorUsageError, MotorClient, MotorDatabase

# Bad URIs and options: (arguments, keyword arguments, error type, words the message has).
BAD_CONFIGURATIONS = {
    "wrong scheme": (("http://localhost",), {}, pymongo.errors.InvalidURI, "mongodb://"),
    "port not a number": (("mongodb://localhost:notaport",), {}, ValueError, "Port"),
    "port out of range": (("mongodb://localhost:70000",), {}, ValueError, "Port"),
    "srv URI with a port": (
        ("mongodb+srv://cluster.example.com:27017",),
        {},
        pymongo.errors.InvalidURI,
        "port",
    ),
    "conflicting TLS options": (
        ("mongodb://localhost/?tlsInsecure=true&tlsAllowInvalidCertificates=true",),
        {},
        pymongo.errors.InvalidURI,
        "tlsInsecure",
    ),
    "load balancing with a replica set": (
        ("mongodb://localhost/?loadBalanced=true&replicaSet=rs",),
        {},
        ConfigurationError,
        "loadBalanced",
    ),
    "timeout of the wrong type": (
        ("localhost",),
        {"serverSelectionTimeoutMS": "soon"},
        ValueError,
        "serverSelectionTimeoutMS",
    ),
    "negative timeout": (("localhost",), {"connectTimeoutMS": -5}, ValueError, "connectTimeoutMS"),
    "unknown read preference": (
        ("localhost",),
        {"readPreference": "sometimes"},
        ValueError,
        "read preference",
    ),
    "document_class not a mapping": (
        ("localhost",),
        {"document_class": int},
        TypeError,
        "document_class",
    ),
    "listener of the wrong kind": (
        ("localhost",),
        {"event_listeners": [object()]},
        TypeError,
        "Listeners",
    ),
    "write concern w of the wrong type": (("localhost",), {"w": 1.5}, TypeError, "type for w"),
}


@pytest.mark.parametrize("name", list(BAD_CONFIGURATIONS))
def test_bad_configuration_fails_at_construction_like_pymongo(name, io_loop):
    args, kwargs, error, words = BAD_CONFIGURATIONS[name]
    with pytest.raises(error) as pymongo_error:
        pymongo.MongoClient(*args, connect=False, **kwargs)
    with pytest.raises(error) as green_error:
        MotorClient(*args, io_loop=io_loop, **kwargs)
    assert str(green_error.value) == str(pymongo_error.value)
    assert words.lower() in str(green_error.value).lower()


# PyMongo warns about a bad option inside a URI and ignores it; so must greenmotor.
BAD_URI_OPTIONS = {
    "maxPoolSize=-1": "maxpoolsize must be a non negative integer",
    "socketTimeoutMS=soon": "sockettimeoutms must be an integer or float",
    "authMechanism=BOGUS": "authmechanism must be in",
    "bogusOption=1": "Unknown option",
}


@pytest.mark.parametrize("option", list(BAD_URI_OPTIONS))
def test_bad_uri_option_warns_like_pymongo(option, io_loop):
    uri = f"mongodb://user:pw@localhost/?{option}"
    with pytest.warns(UserWarning) as pymongo_warnings:
        plain = pymongo.MongoClient(uri, connect=False)
    with pytest.warns(UserWarning) as green_warnings:
        client = MotorClient(uri, io_loop=io_loop)
    assert [str(w.message) for w in green_warnings] == [str(w.message) for w in pymongo_warnings]
    assert BAD_URI_OPTIONS[option] in str(green_warnings[0].message)
    assert client.options.pool_options.max_pool_size == plain.options.pool_options.max_pool_size
    client.close()
    plain.close()


async def test_wrong_argument_types_raise_pymongos_errors(client, io_loop):
    coll = client.greenmotor_bad_input.coll
    # Methods that do I/O raise through their Future...
    with pytest.raises(TypeError, match="document must be an instance of dict"):
        await coll.insert_one(5)
    with pytest.raises(ValueError, match=r"update only works with \$ operators"):
        await coll.update_one({}, {"x": 1})
    with pytest.raises(InvalidDocument, match="cannot encode object"):
        await coll.insert_one({"x": object()})
    with pytest.raises(TypeError, match="filter must be an instance of dict"):
        await coll.delete_one(5)
    # ... the ones that don't, at the call.
    with pytest.raises(TypeError, match="filter must be an instance of dict"):
        coll.find(5)
    with pytest.raises(TypeError, match="limit must be an integer"):
        coll.find().limit("ten")
    with pytest.raises(TypeError, match="length must be an int"):
        coll.find().to_list("ten")
    with pytest.raises(TypeError, match="name must be an instance of str"):
        client.greenmotor_bad_input[5]
    with pytest.raises(InvalidName, match="database name cannot be the empty string"):
        client[""]
    with pytest.raises(TypeError, match="client must be a MotorClient"):
        MotorDatabase("not a client", "db")
    assert loop_greenlets(asyncio.get_running_loop()) == []


async def test_session_of_another_client_is_refused(server_uri, client, io_loop):
    other = MotorClient(server_uri, io_loop=io_loop)
    session = await other.start_session()
    with pytest.raises(InvalidOperation, match="Can only use session with the MongoClient"):
        await client.greenmotor_bad_input.coll.find_one({}, session=session)
    await session.end_session()
    with pytest.raises(InvalidOperation, match="Cannot use ended session"):
        await other.greenmotor_bad_input.coll.find_one({}, session=session)
    other.close()


@pytest.mark.parametrize("method", ["insert_one", "to_list", "find_one", "command"])
async def test_non_callable_callback_is_refused_before_any_work(
    method, client, sync_client, io_loop
):
    coll = client.greenmotor_bad_input.callbacks
    calls = {
        "insert_one": lambda cb: coll.insert_one({"_id": "never"}, callback=cb),
        "to_list": lambda cb: coll.find().to_list(None, callback=cb),
        "find_one": lambda cb: coll.find_one({}, callback=cb),
        "command": lambda cb: client.admin.command("ping", callback=cb),
    }
    for bad in ("not callable", 42, {"a": "dict"}):
        with pytest.raises(TypeError, match="callback must be a callable taking"):
            calls[method](bad)
    assert loop_greenlets(asyncio.get_running_loop()) == []  # nothing was started
    assert sync_client.greenmotor_bad_input.callbacks.count_documents({"_id": "never"}) == 0


async def test_a_raising_callback_is_reported_and_the_client_goes_on(client, io_loop):
    loop = asyncio.get_running_loop()
    reported = loop.create_future()
    loop.set_exception_handler(lambda loop, context: reported.set_result(context))

    def bad_callback(result, error):
        raise KeyError("bug in the application's callback")

    client.admin.command("ping", callback=bad_callback)
    context = await asyncio.wait_for(reported, 5)
    assert isinstance(context["exception"], KeyError)
    assert (await client.admin.command("ping"))["ok"] == 1.0


def test_call_from_another_thread_while_the_loop_is_idle_is_refused(client, io_loop):
    """The loop is not running, so the 'runs in another thread' check can't fire; the greenlet
    would belong to the calling thread and never be resumed - it must be refused, not hang."""
    io_loop.run_sync(lambda: client.admin.command("ping"))
    errors = []

    def other_thread():
        try:
            client.admin.command("ping")
        except GreenmotorUsageError as exc:
            errors.append(str(exc))

    thread = threading.Thread(target=other_thread, name="worker-7")
    thread.start()
    thread.join(10)
    assert len(errors) == 1, errors
    assert "is not running and last ran in another thread" in errors[0]
    assert "'worker-7'" in errors[0]
    # The loop's own thread may still prepare work before starting the loop again.
    future = client.admin.command("ping")
    assert io_loop.run_sync(lambda: future)["ok"] == 1.0


def test_cursor_and_session_from_another_thread_are_refused(client, io_loop):
    async def prepare():
        await client.greenmotor_bad_input.threads.insert_one({"_id": 1})
        return client.greenmotor_bad_input.threads.find(), await client.start_session()

    errors = []

    async def main():
        cursor, session = await prepare()

        def other_thread():
            for call in (
                lambda: cursor.to_list(None),
                client.start_session,
                lambda: session.end_session(),
            ):
                try:
                    call()
                except GreenmotorUsageError as exc:
                    errors.append(str(exc))

        thread = threading.Thread(target=other_thread)
        thread.start()
        while thread.is_alive():
            await asyncio.sleep(0.01)
        assert await cursor.to_list(None) == [{"_id": 1}]
        await session.end_session()
        await client.greenmotor_bad_input.threads.drop()

    io_loop.run_sync(main)
    assert len(errors) == 3 and all("runs in another thread" in e for e in errors), errors


async def test_after_close_every_entry_point_says_so(server_uri, sync_client, io_loop):
    client = MotorClient(server_uri, io_loop=io_loop)
    coll = client.greenmotor_bad_input.after_close
    await coll.insert_many([{"_id": i} for i in range(5)])
    cursor = coll.find().batch_size(2)
    assert await cursor.next() == {"_id": 0}
    session = await client.start_session()
    stream = coll.watch()
    client.close()
    client.close()  # closing twice is harmless
    for call in (
        lambda: coll.find_one(),
        lambda: cursor.to_list(None),
        lambda: coll.find().to_list(None),
        lambda: coll.aggregate([]).to_list(None),
        lambda: client.start_session(),
        lambda: session.end_session(),
        lambda: stream.next(),
        lambda: client.list_database_names(),
    ):
        with pytest.raises(InvalidOperation, match="Cannot use MotorClient after close"):
            await asyncio.wait_for(call(), 5)
    sync_client.greenmotor_bad_input.after_close.drop()


async def test_close_with_operations_in_flight_ends_them_without_hanging(
    server_uri, sync_client, io_loop
):
    from support.failpoints import fail_command

    client = MotorClient(server_uri, appname="greenmotor-bad-input", io_loop=io_loop)
    coll = client.greenmotor_bad_input.in_flight
    await coll.insert_one({"_id": 1})
    with fail_command(
        sync_client,
        ["find"],
        times=5,
        blockConnection=True,
        blockTimeMS=300,
        app_name="greenmotor-bad-input",
    ):
        pending = [coll.find_one({"_id": 1}) for _ in range(5)]
        await asyncio.sleep(0.05)
        client.close()
        results = await asyncio.wait_for(asyncio.gather(*pending, return_exceptions=True), 10)
    # PyMongo lets operations already on the wire finish; none may hang.
    assert all(r == {"_id": 1} or isinstance(r, pymongo.errors.PyMongoError) for r in results)
    assert loop_greenlets(asyncio.get_running_loop()) == []
    sync_client.greenmotor_bad_input.in_flight.drop()


def test_cursor_made_on_one_loop_used_on_another_is_refused(client, io_loop):
    cursor = io_loop.run_sync(lambda: asyncio.sleep(0, client.greenmotor_bad_input.c.find()))
    other = IOLoop(make_current=False)

    async def on_other_loop():
        with pytest.raises(GreenmotorUsageError, match="create one MotorClient per loop"):
            await cursor.to_list(None)
        with pytest.raises(GreenmotorUsageError, match="create one MotorClient per loop"):
            client.greenmotor_bad_input.c.insert_one({})

    other.run_sync(on_other_loop)
    other.close()


async def test_greenmotor_called_from_a_command_listener_is_refused(server_uri, io_loop, capfd):
    """PyMongo runs listeners inside the operation's greenlet; calling greenmotor there
    cannot work. The listener's error says why (PyMongo prints listener errors to stderr)
    and the operation itself is unaffected."""
    holder = {}

    class Reentrant(monitoring.CommandListener):
        def started(self, event):
            if event.command_name == "ping":
                holder["client"].admin.command("hello")

        def succeeded(self, event):
            pass

        def failed(self, event):
            pass

    client = MotorClient(server_uri, event_listeners=[Reentrant()], io_loop=io_loop)
    holder["client"] = client
    assert (await client.admin.command("ping"))["ok"] == 1.0
    err = capfd.readouterr().err
    assert "GreenmotorUsageError" in err and "inside greenmotor's own greenlet" in err
    client.close()


async def test_running_the_loop_from_a_listener_is_refused(server_uri, io_loop, capfd):
    """A listener that tries to run the loop (run_until_complete, asyncio.run) gets
    asyncio's own error at once instead of deadlocking."""

    class Nested(monitoring.CommandListener):
        def started(self, event):
            if event.command_name != "ping":
                return
            loop = asyncio.get_running_loop()  # the greenlet is on the loop's thread
            pending = loop.create_future()
            coro = asyncio.sleep(0)
            try:
                loop.run_until_complete(pending)
            finally:
                pending.cancel()
                try:
                    asyncio.run(coro)
                finally:
                    coro.close()

        def succeeded(self, event):
            pass

        def failed(self, event):
            pass

    client = MotorClient(server_uri, event_listeners=[Nested()], io_loop=io_loop)
    assert (await asyncio.wait_for(client.admin.command("ping"), 5))["ok"] == 1.0
    err = capfd.readouterr().err
    assert "This event loop is already running" in err
    assert "asyncio.run() cannot be called from a running event loop" in err
    client.close()


async def test_callbacks_may_start_more_operations(client, io_loop):
    """Callbacks run on the loop, not inside a greenlet: chaining operations from them is
    fine (unlike listeners)."""
    done = asyncio.get_running_loop().create_future()
    coll = client.greenmotor_bad_input.chained

    def inserted(result, error):
        assert error is None
        coll.find_one({"_id": result.inserted_id}, callback=found)

    def found(doc, error):
        done.set_result((doc, error))

    coll.insert_one({"_id": "chained"}, callback=inserted)
    assert await asyncio.wait_for(done, 5) == ({"_id": "chained"}, None)
    await coll.drop()
