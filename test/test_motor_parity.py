"""greenmotor is a drop-in for Motor 3: its two flavours against Motor 3.7's, name by name.

``greenmotor.motor_tornado`` stands for ``motor.motor_tornado`` and ``greenmotor.motor_asyncio``
for ``motor.motor_asyncio``. For every public class of both, these tests compare with the
installed Motor (the test extra pins 3.7): the public attribute names, which of them are
properties, the ``inspect.signature`` of every public callable (constructors included), and
subscripting at run time (``MotorCollection[dict]`` in annotations evaluated at import).
The only difference allowed in a signature is greenmotor's optional ``callback`` on
methods that answer with a Future (Motor 1/2 style). Behaviour is checked by Motor's own
test suites, run through greenmotor by ``test/motor_conformance/run.py``.
"""

from __future__ import annotations

import asyncio
import inspect

import pytest
from tornado import gen

import greenmotor
import greenmotor.motor_asyncio as green_asyncio
import greenmotor.motor_tornado as motor_tornado

motor = pytest.importorskip("motor.motor_tornado", reason="motor is in the test extra")
motor_asyncio = pytest.importorskip("motor.motor_asyncio", reason="motor is in the test extra")

FLAVOURS = {"tornado": (motor, motor_tornado), "asyncio": (motor_asyncio, green_asyncio)}

# Motor names greenmotor deliberately lacks, each with its reason (none today).
NOT_OFFERED: dict[str, str] = {}
# Motor module attributes that are Motor's machinery, not its API.
MODULE_INTERNALS = {"core", "motor_gridfs", "tornado_framework", "asyncio_framework",
                    "create_class_with_framework", "create_motor_class",
                    "create_asyncio_class", "T"}  # fmt: skip


def public(obj):
    return {name for name in dir(obj) if not name.startswith("_")}


def class_pairs():
    return [
        pytest.param(getattr(theirs, name), getattr(ours, name), id=f"{flavour}-{name}")
        for flavour, (theirs, ours) in FLAVOURS.items()
        for name in sorted(theirs.__all__)
    ]


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_module_exposes_motor_names(flavour):
    theirs, ours = FLAVOURS[flavour]
    assert public(theirs) - MODULE_INTERNALS <= set(ours.__all__)
    assert set(theirs.__all__) <= set(ours.__all__)


def test_package_exposes_the_tornado_flavour():
    for name in motor_tornado.__all__:
        assert getattr(greenmotor, name) is getattr(motor_tornado, name)


@pytest.mark.parametrize(("theirs", "ours"), class_pairs())
def test_class_names_match(theirs, ours):
    assert ours.__name__ == theirs.__name__


@pytest.mark.parametrize(("theirs", "ours"), class_pairs())
def test_each_class_has_motors_public_attributes(theirs, ours):
    missing = public(theirs) - public(ours) - set(NOT_OFFERED)
    assert not missing


def _is_property(cls, name):
    return isinstance(inspect.getattr_static(cls, name, None), property)


def _shape(signature):
    """What a caller sees of a signature: names, kinds and defaults (not annotations)."""
    return [
        (p.name, p.kind.name, "-" if p.default is inspect.Parameter.empty else repr(p.default))
        for p in signature.parameters.values()
    ]


def _without_callback(ours, theirs):
    """greenmotor's optional ``callback`` is the one addition allowed."""
    if "callback" in ours.parameters and "callback" not in theirs.parameters:
        callback = ours.parameters["callback"]
        assert callback.default is None
        ours = ours.replace(parameters=[p for p in ours.parameters.values() if p is not callback])
    return ours


def _motor_callable(theirs, name):
    """Motor's callable for ``name``, or None for a data attribute.

    Motor exposes a synchronous PyMongo method (``client.close``, ``grid_out.seek``) as a
    property that returns the PyMongo object's bound method: what a caller sees is that
    method, so it is what greenmotor's must match.
    """
    if not _is_property(theirs, name):
        return getattr(theirs, name)
    delegate_attr = inspect.getattr_static(theirs.__delegate_class__, name, None)
    return delegate_attr if inspect.isfunction(delegate_attr) else None


def signature_mismatches(theirs, ours):
    mismatches = []
    for name in sorted((public(theirs) | {"__init__"}) - set(NOT_OFFERED)):
        if not hasattr(ours, name):
            continue  # test_each_class_has_motors_public_attributes reports it
        their_attr = _motor_callable(theirs, name)
        if their_attr is None:  # a data attribute: greenmotor's must be one too
            if not _is_property(ours, name):
                mismatches.append(f"{name}: a property in Motor, not in greenmotor")
            continue
        if not callable(their_attr) or isinstance(their_attr, type):
            continue
        if _is_property(ours, name):
            mismatches.append(f"{name}: a method in Motor, a property in greenmotor")
            continue
        try:
            their_sig = inspect.signature(their_attr)
        except (TypeError, ValueError):
            continue  # Motor's own attribute has no signature to compare
        our_sig = _without_callback(inspect.signature(getattr(ours, name)), their_sig)
        if _shape(our_sig) != _shape(their_sig):
            mismatches.append(f"{name}{our_sig} != Motor's {name}{their_sig}")
    return mismatches


@pytest.mark.parametrize(("theirs", "ours"), class_pairs())
def test_signatures_match_motors(theirs, ours):
    assert signature_mismatches(theirs, ours) == []


@pytest.mark.parametrize(("theirs", "ours"), class_pairs())
def test_generic_at_run_time_like_motor(theirs, ours):
    try:
        expected = theirs[dict]
    except TypeError:
        with pytest.raises(TypeError):
            ours[dict]
    else:
        assert ours[dict] is ours and expected is theirs


def test_annotations_evaluated_at_import():
    namespace: dict = {}
    source = (
        "from greenmotor.motor_tornado import MotorCollection, MotorDatabase\n"
        "from greenmotor.motor_asyncio import AsyncIOMotorCollection\n"
        "class Handler:\n"
        "    db: MotorDatabase[dict]\n"
        "    def get(self, c: MotorCollection[dict]) -> AsyncIOMotorCollection[dict]: ...\n"
    )
    # Not this file's "from __future__ import annotations": evaluated at definition.
    exec(compile(source, "<app>", "exec", dont_inherit=True), namespace)
    hints = namespace["Handler"].get.__annotations__
    assert hints["c"] is motor_tornado.MotorCollection


def test_asyncio_classes_belong_to_the_asyncio_flavour():
    for name in green_asyncio.__all__:
        cls = getattr(green_asyncio, name)
        assert cls.__module__ == "greenmotor.motor_asyncio"
        assert cls._framework.name == "asyncio"
        tornado_cls = getattr(motor_tornado, name.removeprefix("AsyncIO"))
        assert issubclass(cls, tornado_cls) and cls is not tornado_cls


@pytest.mark.filterwarnings("ignore:The fetch_next property is deprecated:DeprecationWarning")
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
        while (yield cursor.fetch_next):  # warns: the test's filterwarnings mark allows it
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
