"""Drop-in for ``motor.motor_asyncio``: ``import greenmotor.motor_asyncio as motor_asyncio``.

The same public names as Motor 3's asyncio module. Each class is the Tornado flavour's
class in the asyncio flavour (see :mod:`greenmotor.frameworks`): ``io_loop`` is an asyncio
event loop, and no Tornado IOLoop need ever run::

    import asyncio
    from greenmotor.motor_asyncio import AsyncIOMotorClient

    async def main():
        client = AsyncIOMotorClient("mongodb://localhost:27017")
        await client.test.pages.insert_one({"title": "hello"})
        print(await client.test.pages.find_one({"title": "hello"}))

    asyncio.run(main())
"""

from typing import TYPE_CHECKING

from greenmotor.change_stream import MotorChangeStream
from greenmotor.client import MotorClient, MotorCollection, MotorDatabase
from greenmotor.cursor import MotorCommandCursor, MotorCursor, MotorLatentCommandCursor
from greenmotor.encryption import MotorClientEncryption
from greenmotor.frameworks import ASYNCIO
from greenmotor.gridfs import MotorGridFSBucket, MotorGridIn, MotorGridOut, MotorGridOutCursor
from greenmotor.metaprogramming import for_framework
from greenmotor.session import MotorClientSession

__all__ = [
    "AsyncIOMotorChangeStream",
    "AsyncIOMotorClient",
    "AsyncIOMotorClientEncryption",
    "AsyncIOMotorClientSession",
    "AsyncIOMotorCollection",
    "AsyncIOMotorCommandCursor",
    "AsyncIOMotorCursor",
    "AsyncIOMotorDatabase",
    "AsyncIOMotorGridFSBucket",
    "AsyncIOMotorGridIn",
    "AsyncIOMotorGridOut",
    "AsyncIOMotorGridOutCursor",
    "AsyncIOMotorLatentCommandCursor",
]

if TYPE_CHECKING:
    # What type checkers see: each class is a subclass of its Tornado twin, as at run time.
    class AsyncIOMotorChangeStream(MotorChangeStream): ...
    class AsyncIOMotorClient(MotorClient):
        def __getattr__(self, name: str) -> AsyncIOMotorDatabase: ...
        def __getitem__(self, name: str) -> AsyncIOMotorDatabase: ...
    class AsyncIOMotorClientEncryption(MotorClientEncryption): ...
    class AsyncIOMotorClientSession(MotorClientSession): ...
    class AsyncIOMotorCollection(MotorCollection):
        def __getattr__(self, name: str) -> AsyncIOMotorCollection: ...
        def __getitem__(self, name: str) -> AsyncIOMotorCollection: ...
        @property
        def database(self) -> AsyncIOMotorDatabase: ...
    class AsyncIOMotorCommandCursor(MotorCommandCursor): ...
    class AsyncIOMotorCursor(MotorCursor): ...
    class AsyncIOMotorDatabase(MotorDatabase):
        def __getattr__(self, name: str) -> AsyncIOMotorCollection: ...
        def __getitem__(self, name: str) -> AsyncIOMotorCollection: ...
        @property
        def client(self) -> AsyncIOMotorClient: ...
    class AsyncIOMotorGridFSBucket(MotorGridFSBucket): ...
    class AsyncIOMotorGridIn(MotorGridIn): ...
    class AsyncIOMotorGridOut(MotorGridOut): ...
    class AsyncIOMotorGridOutCursor(MotorGridOutCursor): ...
    class AsyncIOMotorLatentCommandCursor(MotorLatentCommandCursor): ...
else:
    AsyncIOMotorChangeStream = for_framework(ASYNCIO, MotorChangeStream)
    AsyncIOMotorClient = for_framework(ASYNCIO, MotorClient)
    AsyncIOMotorClientEncryption = for_framework(ASYNCIO, MotorClientEncryption)
    AsyncIOMotorClientSession = for_framework(ASYNCIO, MotorClientSession)
    AsyncIOMotorCollection = for_framework(ASYNCIO, MotorCollection)
    AsyncIOMotorCommandCursor = for_framework(ASYNCIO, MotorCommandCursor)
    AsyncIOMotorCursor = for_framework(ASYNCIO, MotorCursor)
    AsyncIOMotorDatabase = for_framework(ASYNCIO, MotorDatabase)
    AsyncIOMotorGridFSBucket = for_framework(ASYNCIO, MotorGridFSBucket)
    AsyncIOMotorGridIn = for_framework(ASYNCIO, MotorGridIn)
    AsyncIOMotorGridOut = for_framework(ASYNCIO, MotorGridOut)
    AsyncIOMotorGridOutCursor = for_framework(ASYNCIO, MotorGridOutCursor)
    AsyncIOMotorLatentCommandCursor = for_framework(ASYNCIO, MotorLatentCommandCursor)
