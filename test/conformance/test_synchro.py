"""Fast checks of the conformance machinery itself: the synchro facade and the import redirect.

The conformance run (``run.py``) is slow and needs PyMongo's sdist; these run with the
project's own suite, against its SecantusDB server.
"""

from __future__ import annotations

import functools
import sys
import threading
import time
from pathlib import Path
from unittest.mock import patch

import pymongo
import pymongo.errors
import pymongo.monitoring
import pytest
from pymongo.synchronous.pool import Pool

import greenmotor

sys.path.insert(0, str(Path(__file__).resolve().parent))

import synchro
import synchro_plugin
from support.failpoints import fail_command

from greenmotor.green_pool import GreenCondition
from greenmotor.pymongo_hooks import GreenMongoClient, GreenPool


@pytest.fixture
def facade(server_uri):
    client = synchro.MongoClient(server_uri)
    yield client
    client.close()


@pytest.fixture
def things(facade, sync_client):
    name = f"synchro_{time.monotonic_ns()}"
    yield facade[name].things
    sync_client.drop_database(name)


def test_calls_are_synchronous_and_return_facade_objects(facade, things):
    assert isinstance(things, synchro.Collection)
    assert isinstance(things.database, synchro.Database)
    assert things.database.client is facade
    things.insert_many([{"_id": i} for i in range(5)])
    cursor = things.find().sort("_id", -1).batch_size(2)
    assert isinstance(cursor, synchro.Cursor)
    assert [doc["_id"] for doc in cursor] == [4, 3, 2, 1, 0]
    with pytest.raises(StopIteration):
        next(cursor)
    assert things.aggregate([{"$count": "n"}]).to_list() == [{"n": 5}]
    with pytest.raises(pymongo.errors.DuplicateKeyError):
        things.insert_one({"_id": 1})


def test_aggregate_and_watch_start_at_once_as_in_pymongo(things):
    # greenmotor sends these commands on first use; PyMongo (and so the facade) at once.
    with pytest.raises(pymongo.errors.OperationFailure):
        things.aggregate([{"$notAStage": {}}])
    with pytest.raises(pymongo.errors.OperationFailure):
        things.watch([{"$notAStage": {}}])


def test_transaction_commits_and_session_identity(facade, things):
    things.insert_one({"_id": "setup"})  # a transaction cannot create the collection
    with facade.start_session() as session:
        assert isinstance(session, synchro.ClientSession)
        assert session.client is facade
        with session.start_transaction():
            things.insert_one({"_id": "in-txn"}, session=session)
            assert things.count_documents({"_id": "in-txn"}) == 0  # not visible outside
        assert things.count_documents({"_id": "in-txn"}) == 1


def test_with_transaction_runs_sync_callback(facade, things):
    things.insert_one({"_id": "setup"})
    with facade.start_session() as session:
        result = session.with_transaction(
            lambda s: things.insert_one({"_id": "cb"}, session=s).inserted_id
        )
    assert result == "cb"
    assert things.find_one({"_id": "cb"}) == {"_id": "cb"}


def test_pymongo_timeout_crosses_to_the_loop_thread(facade, things, sync_client):
    things.insert_one({"_id": 1})
    with fail_command(sync_client, ["find"], blockConnection=True, blockTimeMS=1000):
        started = time.monotonic()
        with pytest.raises(pymongo.errors.PyMongoError) as caught:
            with pymongo.timeout(0.2):
                things.find_one({"_id": 1})
    assert caught.value.timeout
    assert time.monotonic() - started < 0.9


def test_threads_call_concurrently(things):
    # A thread waits in a change stream while the main thread writes: with one thread
    # driving the loop at a time this would deadlock.
    stream = things.watch()
    got = []
    reader = threading.Thread(target=lambda: got.append(next(stream)))
    reader.start()
    time.sleep(0.2)
    things.insert_one({"_id": "seen"})
    reader.join(10)
    stream.close()
    assert not reader.is_alive()
    assert got[0]["fullDocument"] == {"_id": "seen"}


def test_private_names_are_pymongos_and_missing_public_methods_refused(facade, things):
    assert facade._topology is facade.delegate._topology
    cursor = things.find()
    assert cursor.collection == things  # a data attribute: PyMongo's, wrapped back
    bucket = synchro.GridFSBucket(things.database)
    with pytest.raises(AttributeError, match="greenmotor's MotorGridFSBucket has no 'delete_by_n"):
        bucket.delete_by_name("x")  # a PyMongo method greenmotor (as Motor) lacks: not run
    with pytest.raises(TypeError, match="'Collection' object is not iterable"):
        iter(things)


def test_facade_refuses_calls_on_its_own_loop_thread(things):
    def from_loop_thread():
        return things.find_one()  # would wait for the loop it is blocking

    with pytest.raises(synchro.SynchroUsageError):
        synchro.loop_thread.call(from_loop_thread)


def test_listener_may_call_the_facade(server_uri, things):
    # The listener runs inside greenmotor's greenlet on the loop thread; its facade call
    # parks that greenlet while the loop runs it.
    counts = []

    class Counting(pymongo.monitoring.CommandListener):
        def started(self, event):
            pass

        def succeeded(self, event):
            if event.command_name == "insert":
                counts.append(things.count_documents({}))

        def failed(self, event):
            pass

    client = synchro.MongoClient(server_uri, event_listeners=[Counting()])
    try:
        client[things.database.name].things.insert_one({"_id": 1})
    finally:
        client.close()
    assert counts == [1]


def test_redirected_imports_see_the_facade():
    imp = synchro_plugin.redirecting_import
    module = imp("pymongo.synchronous.collection", None, None, ("Collection",), 0)
    assert module.Collection is synchro.Collection
    assert module.ReturnDocument is pymongo.ReturnDocument  # everything else is real
    top = imp("pymongo.synchronous.mongo_client", None, None, None, 0)
    assert top.synchronous.mongo_client.MongoClient is synchro.MongoClient
    assert top.MongoClient is synchro.MongoClient
    assert top.ASCENDING == pymongo.ASCENDING
    assert imp("pymongo.errors", None, None, ("OperationFailure",), 0) is pymongo.errors
    assert imp("gridfs", None, None, ("GridFSBucket",), 0).GridFSBucket is synchro.GridFSBucket
    facade_pymongo = imp("pymongo", None, None, ("MongoClient",), 0)
    assert dir(facade_pymongo) == dir(pymongo)  # test_default_exports compares with __all__
    assert facade_pymongo.__all__ == pymongo.__all__


def test_facade_methods_show_greenmotors_signatures(things):
    import inspect

    assert "comment" in inspect.signature(things.count_documents).parameters
    assert inspect.signature(things.watch) == inspect.signature(
        greenmotor.MotorCollection.watch
    ).replace(
        parameters=list(inspect.signature(greenmotor.MotorCollection.watch).parameters.values())[1:]
    )


def test_only_the_test_package_is_redirected():
    assert synchro_plugin.in_test_package("test.test_client")
    assert synchro_plugin.in_test_package("test")
    assert not synchro_plugin.in_test_package("testing")
    assert not synchro_plugin.in_test_package("pymongo.synchronous.collection")


def test_patching_a_private_method_on_the_client_class_reaches_greenmotor(facade, things):
    # PyMongo's tests patch internals on type(client); the facade class forwards them to
    # greenmotor's PyMongo client class, and removes them again afterwards.
    calls = []
    original = pymongo.MongoClient._should_pin_cursor
    with patch.object(type(facade), "_should_pin_cursor", side_effect=lambda *a: calls.append(a)):
        assert "_should_pin_cursor" in GreenMongoClient.__dict__
        things.insert_many([{"_id": i} for i in range(3)])
        assert len(list(things.find(batch_size=1))) == 3
    assert calls  # greenmotor's client consulted the patched method
    assert "_should_pin_cursor" not in GreenMongoClient.__dict__
    assert pymongo.MongoClient._should_pin_cursor is original  # plain PyMongo untouched


def test_mock_pool_class_is_made_green(server_uri):
    # PyMongo's MockClient passes partial(MockPool, client): the facade mixes GreenPool in
    # first, so greenmotor's own pool runs with the mock's checkout routing.
    checkouts = []

    class RoutingPool(Pool):
        def __init__(self, tag, address, *args, **kwargs):
            self.tag = tag
            Pool.__init__(self, address, *args, **kwargs)  # as MockPool does: GreenPool's
            # __init__ must still run, so GreenPool comes first in the green class

        def checkout(self, handler=None):
            checkouts.append(self.tag)
            return Pool.checkout(self, handler)

    green = synchro.green_pool_class(functools.partial(RoutingPool, "mock"))
    assert issubclass(green.func, GreenPool) and green.args == ("mock",)
    client = synchro.MongoClient(server_uri, _pool_class=functools.partial(RoutingPool, "mock"))
    try:
        client.admin.command("ping")
        pool = next(iter(client._topology._servers.values())).pool
        assert isinstance(pool, RoutingPool) and isinstance(pool, GreenPool)
        assert isinstance(pool.size_cond, GreenCondition)
        assert "mock" in checkouts
    finally:
        client.close()


def test_session_bind_reaches_greenmotor_from_the_callers_context(facade, things):
    seen = []

    class Sessions(pymongo.monitoring.CommandListener):
        def started(self, event):
            if event.command_name == "insert":
                seen.append(event.command.get("lsid"))

        def succeeded(self, event):
            pass

        def failed(self, event):
            pass

    host, port = facade.address
    client = synchro.MongoClient(host, port, event_listeners=[Sessions()])
    try:
        coll = client[things.database.name].things
        with client.start_session() as session, session.bind():
            coll.insert_one({"_id": "bound"})
            assert seen[-1] == session.session_id
        assert session.has_ended  # bind() ends it by default, as PyMongo's
    finally:
        client.close()


def test_grid_in_attributes_and_lazy_grid_out(things):
    grid_in = synchro.GridIn(things.database.fs, filename="f.txt")
    grid_in.write(b"data")
    grid_in.colour = "blue"  # a field of the file document, as in PyMongo
    grid_in.close()
    grid_out = synchro.GridOut(things.database.fs, grid_in._id)  # no I/O yet
    assert grid_out.filename == "f.txt"  # opened on first use, as PyMongo's
    assert grid_out.colour == "blue"
    assert grid_out.read() == b"data"
