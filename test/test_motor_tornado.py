"""greenmotor.motor_tornado is a drop-in for motor.motor_tornado (Motor 3.x)."""

from __future__ import annotations

import asyncio

import pytest
from tornado import gen

import greenmotor
import greenmotor.motor_tornado as motor_tornado

motor = pytest.importorskip("motor.motor_tornado", reason="motor is in the test extra")

# Motor names greenmotor deliberately lacks, each with its reason.
NOT_OFFERED = {
    # Client-side field level encryption: key-management I/O outside the green pools.
    "MotorClientEncryption": "*",
    # Removed from PyMongo 4's Cursor; Motor 3 declares it but it cannot work there.
    "MotorCursor": {"max_scan"},
    "MotorGridOutCursor": {"max_scan"},
}
MODULE_INTERNALS = {"core", "motor_gridfs", "tornado_framework", "create_class_with_framework",
                    "create_motor_class", "T"}  # fmt: skip


def public(obj):
    return {name for name in dir(obj) if not name.startswith("_")}


def test_module_exposes_motor_names():
    assert public(motor) - MODULE_INTERNALS <= set(motor_tornado.__all__)
    for name in motor_tornado.__all__:
        assert getattr(greenmotor, name) is getattr(motor_tornado, name)


@pytest.mark.parametrize("name", sorted(set(motor_tornado.__all__) - {"MotorClientEncryption"}))
def test_each_class_has_motors_public_attributes(name):
    missing = public(getattr(motor, name)) - public(getattr(motor_tornado, name))
    assert missing == NOT_OFFERED.get(name, set())


def test_client_encryption_says_it_is_not_supported():
    with pytest.raises(NotImplementedError, match="field level encryption"):
        motor_tornado.MotorClientEncryption({}, "keys.vault", None, None)


async def test_motor_1_era_callback_and_gen_coroutine_code(server_uri, io_loop):
    """The shape of a Motor 1.x application: callbacks, gen.coroutine, fetch_next."""
    client = motor_tornado.MotorClient(server_uri, io_loop=io_loop)
    collection = client.greenmotor_legacy.items
    done = asyncio.get_running_loop().create_future()

    def inserted(result, error):
        assert error is None
        collection.find_one({"_id": result.inserted_ids[0]}, callback=found)

    def found(doc, error):
        done.set_result(doc)

    collection.insert_many([{"_id": i} for i in range(5)], callback=inserted)
    assert await done == {"_id": 0}

    @gen.coroutine
    def total():
        count = 0
        cursor = collection.find()
        while (yield cursor.fetch_next):
            with pytest.warns(DeprecationWarning):
                count += cursor.next_object()["_id"]
        return count

    assert (yield_result := await total()) == 10, yield_result
    await client.drop_database("greenmotor_legacy")
    client.close()


async def test_wrap(client, io_loop):
    pymongo_collection = client.delegate.somedb.somecoll
    wrapped = client.wrap(pymongo_collection)
    assert isinstance(wrapped, motor_tornado.MotorCollection)
    assert wrapped.full_name == "somedb.somecoll"
    with pytest.raises(TypeError, match="no class wrapping"):
        client.wrap(42)


async def test_wrap_command_cursor(client, coll, io_loop):
    await coll.insert_one({"_id": 1})
    pymongo_cursor = coll.delegate.aggregate([])
    wrapped = client.wrap(pymongo_cursor)
    assert type(wrapped) is motor_tornado.MotorCommandCursor
    assert await wrapped.to_list(None) == [{"_id": 1}]
