"""Correct code that Motor's stubs reject and greenmotor's accept, each line marked with
why: what Motor and greenmotor do at run time, which greenmotor's stubs say."""

from __future__ import annotations

import asyncio
from typing import Any

from motor.motor_asyncio import AsyncIOMotorClient, AsyncIOMotorGridFSBucket

client: AsyncIOMotorClient[dict[str, Any]] = AsyncIOMotorClient()
# only-motor[var-annotated]: greenmotor's document type defaults to Any
unannotated = AsyncIOMotorClient()


def properties() -> None:
    # only-motor[misc, truthy-function, unreachable]: a property, not a method
    host, port = client.address or ("", 0)
    print(host, port, client.is_primary + 1)  # only-motor[has-type, operator]: is_primary is a bool
    print(len(client.nodes))  # only-motor[arg-type]: nodes is a frozenset


async def sessions() -> None:
    async with await client.start_session() as session:
        if session.in_transaction:  # only-motor[truthy-function]: a bool property
            print(session.session_id["id"])  # only-motor[index]: a mapping property


async def files() -> bytes:
    bucket = AsyncIOMotorGridFSBucket(client.test)
    grid_out = await bucket.open_download_stream(1)
    data = await grid_out.read()  # only-motor[var-annotated]: bytes (Motor's stub: NoReturn)
    return data  # only-motor[unreachable]: the line above returns


async def futures() -> None:
    # only-motor[type-var]: a Future, as at run time (asyncio.wait takes no coroutine)
    done, _ = await asyncio.wait([client.test.coll.insert_one({})])
    future = client.test.coll.find_one({})
    future.add_done_callback(print)  # only-motor[attr-defined]: Futures have done callbacks
    await future
