"""The class factory (greenmotor.metaprogramming): what the declarations build.

The calls run against the real server (the suite's SecantusDB): a declaration is only as
good as the method it becomes.
"""

from __future__ import annotations

import asyncio
import inspect
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pymongo
import pytest
from pymongo.collection import Collection
from pymongo.errors import DuplicateKeyError
from pymongo.synchronous.cursor import Cursor

import greenmotor
from greenmotor import metaprogramming
from greenmotor.client import MotorClient, MotorCollection, MotorDatabase
from greenmotor.cursor import MotorCursor
from greenmotor.frameworks import ASYNCIO, TORNADO
from greenmotor.gridfs import MotorGridIn
from greenmotor.metaprogramming import (
    Async,
    Chain,
    Delegate,
    MotorWrapper,
    ReadOnly,
    check_wrap_names,
    for_framework,
)
from greenmotor.motor_asyncio import AsyncIOMotorCollection, AsyncIOMotorCursor

PACKAGE = Path(greenmotor.__file__).resolve().parent


class ProbeCollection(MotorWrapper):
    """Declared here only: attribute renaming and a docstring of its own."""

    __delegate_class__ = Collection

    count = Async(attr_name="count_documents")
    same_collection = Delegate(attr_name="with_options", wrap="MotorCollection")
    full = ReadOnly(attr_name="full_name", doc="The namespace, database.collection.")


class ProbeCursor(MotorWrapper):
    __delegate_class__ = Cursor

    ordered_by = Chain(attr_name="sort")


# --- Async: runs in a greenlet, answers with a Future or a callback -----------------------


async def test_async_returns_a_future_of_pymongos_result(coll: MotorCollection, sync_coll, io_loop):
    future = coll.insert_one({"_id": 1, "x": 1})
    assert isinstance(future, asyncio.Future)
    result = await future
    assert isinstance(result, pymongo.results.InsertOneResult) and result.inserted_id == 1
    assert sync_coll.find_one() == {"_id": 1, "x": 1}


async def test_async_with_callback_returns_none_and_calls_back_later(coll, io_loop):
    outcomes: list[tuple[Any, Any]] = []
    done = asyncio.get_running_loop().create_future()

    def callback(result: Any, error: Any) -> None:
        outcomes.append((result, error))
        if len(outcomes) == 2:
            done.set_result(None)

    assert coll.insert_one({"_id": 1}, callback=callback) is None
    assert outcomes == []  # never inside the call, always in a later loop iteration
    await asyncio.sleep(0.2)
    assert coll.insert_one({"_id": 1}, callback=callback) is None
    await done
    assert outcomes[0][0].inserted_id == 1 and outcomes[0][1] is None
    assert outcomes[1][0] is None and isinstance(outcomes[1][1], DuplicateKeyError)


async def test_async_refuses_a_callback_that_is_not_callable_before_any_io(
    coll, sync_coll, io_loop
):
    with pytest.raises(TypeError, match="callback must be a callable taking .result, error."):
        coll.insert_one({"_id": 1}, callback="print")
    assert sync_coll.count_documents({}) == 0


async def test_async_renamed_and_wrapped(client: MotorClient, coll, io_loop):
    await coll.insert_many([{"_id": i} for i in range(3)])
    probe = ProbeCollection._from_delegate(client, coll.delegate)
    assert await probe.count({}) == 3  # attr_name: PyMongo's count_documents
    session = await client.start_session()  # wrap="MotorClientSession"
    try:
        assert type(session) is greenmotor.MotorClientSession
        assert isinstance(session.delegate, pymongo.client_session.ClientSession)
    finally:
        await session.end_session()


async def test_motor_objects_given_as_arguments_reach_pymongo_unwrapped(
    client, coll, sync_coll, io_loop
):
    async with await client.start_session() as session:
        await coll.insert_one({"_id": 1}, session=session)  # PyMongo gets the ClientSession
        await coll.insert_one({"_id": 2}, session=session.delegate)  # as Motor, PyMongo's too
    assert sync_coll.count_documents({}) == 2
    with pytest.raises(TypeError, match=r"session must be a MotorClientSession \(from await"):
        coll.insert_one({"_id": 3}, session=client)


# --- Delegate, Chain, ReadOnly: no I/O ------------------------------------------------------


async def test_delegate_wraps_its_result_without_io(client, coll, io_loop):
    cursor = coll.find({"x": 1})
    assert type(cursor) is MotorCursor and isinstance(cursor.delegate, Cursor)
    assert not cursor.started
    other = coll.with_options(read_preference=pymongo.ReadPreference.SECONDARY_PREFERRED)
    assert type(other) is MotorCollection and other is not coll
    assert other.read_preference == pymongo.ReadPreference.SECONDARY_PREFERRED
    probe = ProbeCollection._from_delegate(client, coll.delegate)
    assert type(probe.same_collection()) is MotorCollection  # renamed, and wrapped


async def test_chain_returns_the_same_cursor_and_configures_pymongos(coll, io_loop):
    await coll.insert_many([{"_id": i} for i in range(5)])
    cursor = coll.find()
    assert cursor.sort("_id", -1).skip(1).limit(2) is cursor
    assert await cursor.to_list(None) == [{"_id": 3}, {"_id": 2}]
    plain = coll.find().delegate
    probe = ProbeCursor._from_delegate(coll, plain)
    assert probe.ordered_by("_id", -1) is probe  # attr_name: PyMongo's sort
    docs = await MotorCursor._from_delegate(coll, plain).to_list(None)
    assert [doc["_id"] for doc in docs] == [4, 3, 2, 1, 0]


async def test_readonly_reads_through_and_wraps(client, coll, io_loop):
    assert coll.name == "test_collection" and coll.full_name.endswith(".test_collection")
    with pytest.raises(AttributeError):
        coll.name = "other"  # type: ignore[misc]  # a property without a setter
    cursor = coll.find()
    assert type(cursor.collection) is MotorCollection  # ReadOnly(wrap="MotorCollection")
    assert cursor.collection == coll
    probe = ProbeCollection._from_delegate(client, coll.delegate)
    assert probe.full == coll.full_name
    assert ProbeCollection.full.__doc__ == "The namespace, database.collection."


# --- What the built methods look like -----------------------------------------------------


def test_built_methods_carry_pymongos_name_doc_and_signature() -> None:
    method = MotorCollection.insert_one
    assert method.__name__ == "insert_one"
    assert method.__qualname__ == "MotorCollection.insert_one"
    assert method.__module__ == "greenmotor.client"
    assert method.__wrapped__ is Collection.insert_one
    assert method.__doc__.startswith(inspect.cleandoc(Collection.insert_one.__doc__))
    assert "returns a Future" in method.__doc__
    pymongo_params = list(inspect.signature(Collection.insert_one).parameters)
    params = inspect.signature(method).parameters
    # PyMongo's parameters, then callback (keyword-only), before PyMongo's **kwargs if any.
    assert [name for name in params if name != "callback"] == pymongo_params
    assert params["callback"].kind is inspect.Parameter.KEYWORD_ONLY
    assert params["callback"].default is None
    find = inspect.signature(MotorCollection.find)
    assert "callback" not in find.parameters  # Delegate: no I/O, no callback
    assert MotorCursor.sort.__wrapped__ is Cursor.sort
    assert ProbeCollection.count.__wrapped__ is Collection.count_documents
    assert MotorCollection.name.__doc__ == inspect.cleandoc(Collection.name.__doc__)


def test_declarations_are_replaced_when_the_class_is_made() -> None:
    for cls in (MotorClient, MotorDatabase, MotorCollection, MotorCursor, ProbeCollection):
        left = [n for n, v in vars(cls).items() if isinstance(v, metaprogramming.MotorAttribute)]
        assert left == [], (cls, left)
    assert isinstance(vars(MotorCursor)["sort"], type(lambda: None))
    assert isinstance(vars(MotorCollection)["name"], property)


# --- Flavours --------------------------------------------------------------------------------


def test_for_framework_makes_each_flavours_class_once() -> None:
    assert for_framework(TORNADO, MotorCursor) is MotorCursor
    made = for_framework(ASYNCIO, MotorCursor)
    assert made is AsyncIOMotorCursor and for_framework(ASYNCIO, MotorCursor) is made
    assert issubclass(made, MotorCursor) and made._framework is ASYNCIO
    assert made.__module__ == "greenmotor.motor_asyncio"
    assert made.__qualname__ == "AsyncIOMotorCursor" and made.__doc__ == MotorCursor.__doc__
    assert for_framework(TORNADO, made) is MotorCursor  # back to the declared class
    assert for_framework(ASYNCIO, ProbeCollection).__name__ == "AsyncIOProbeCollection"


def test_objects_handed_out_are_of_their_owners_flavour(flavour) -> None:
    async def body(coll):
        await coll.insert_one({"_id": 1})
        cursor = coll.find()
        assert type(cursor) is flavour.MotorCursor
        assert type(cursor.collection) is flavour.MotorCollection
        assert type(coll.database) is flavour.MotorDatabase
        assert type(coll.with_options()) is flavour.MotorCollection
        assert type(coll.wrap(coll.delegate)) is flavour.MotorCollection
        assert await cursor.to_list(None) == [{"_id": 1}]

    flavour.run(body)


def test_wrap_names_a_class_for_known_pymongo_objects_only(client) -> None:
    assert type(client.wrap(client.delegate.db.things)) is MotorCollection
    with pytest.raises(TypeError, match="greenmotor has no class wrapping int"):
        client.wrap(3)


def test_class_getitem_as_motor() -> None:
    assert MotorCollection[dict] is MotorCollection  # generics at run time, as Motor
    assert AsyncIOMotorCollection[dict] is AsyncIOMotorCollection
    assert MotorCursor[Any] is MotorCursor
    with pytest.raises(TypeError, match="'MotorGridIn' is not subscriptable"):
        MotorGridIn[dict]  # Motor's GridFS classes take no type parameter


# --- wrap= names are checked when the class is made ---------------------------------------


def test_a_misspelt_wrap_name_fails_when_the_class_is_created() -> None:
    with pytest.raises(TypeError, match=r"wrap='MotorCurser' .* did you mean 'MotorCursor'\?"):

        class Misspelt(MotorWrapper):
            find = Delegate(wrap="MotorCurser")

    assert "Misspelt" not in metaprogramming.TORNADO.classes


def test_an_unknown_wrap_name_lists_the_declared_classes() -> None:
    with pytest.raises(TypeError, match="declared: MotorChangeStream, MotorClient,"):

        class Unknown(MotorWrapper):
            thing = ReadOnly(wrap="Zebra")


def test_while_the_package_imports_a_later_class_may_be_named(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # As MotorClient.get_database names MotorDatabase, declared below it.
    monkeypatch.setattr(metaprogramming, "_all_declared", False)
    try:

        class Early(MotorWrapper):
            later = Delegate(wrap="LaterForTest")

        where = f"{__name__}.{Early.__qualname__}.later"
        assert metaprogramming._unresolved_wraps == {"LaterForTest": [where]}

        class LaterForTest(MotorWrapper):
            pass

        assert metaprogramming._unresolved_wraps == {}
        check_wrap_names()  # nothing left: no error
    finally:
        for name in ("Early", "LaterForTest"):
            metaprogramming.TORNADO.classes.pop(name, None)


def test_a_name_still_unknown_at_the_end_of_the_import_raises(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(metaprogramming, "_all_declared", False)

    class Dangling(MotorWrapper):
        find = Delegate(wrap="MotorCursr")

    metaprogramming.TORNADO.classes.pop("Dangling")
    with pytest.raises(TypeError, match=r"wrap='MotorCursr' in .*Dangling.find"):
        check_wrap_names()
    assert metaprogramming._unresolved_wraps == {}


def test_a_typo_in_the_package_fails_import_greenmotor(tmp_path: Path) -> None:
    copy = tmp_path / "greenmotor"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    client = copy / "client.py"
    source = client.read_text()
    assert 'find = Delegate(wrap="MotorCursor")' in source
    client.write_text(source.replace('Delegate(wrap="MotorCursor")', 'Delegate(wrap="MotorCusor")'))
    proc = subprocess.run(
        [sys.executable, "-c", "import greenmotor"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode != 0
    assert (
        "TypeError: wrap='MotorCusor' in greenmotor.client.MotorCollection.find names no "
        "greenmotor class; did you mean 'MotorCursor'?"
    ) in proc.stderr
