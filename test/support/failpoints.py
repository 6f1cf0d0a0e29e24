"""Server-side faults on SecantusDB (started with --enable-test-commands)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pymongo


@contextlib.contextmanager
def fail_command(
    sync_client: pymongo.MongoClient,
    commands: list[str],
    times: int = 1,
    app_name: str | None = None,
    **data,
) -> Iterator[None]:
    """Configure ``failCommand`` for the block, then switch it off.

    ``data`` holds the fail point's options, e.g. ``blockConnection=True, blockTimeMS=800``
    or ``closeConnection=True`` or ``errorCode=91``.
    """
    data = {"failCommands": commands, **data}
    if app_name:
        data["appName"] = app_name
    sync_client.admin.command(
        {"configureFailPoint": "failCommand", "mode": {"times": times}, "data": data}
    )
    try:
        yield
    finally:
        sync_client.admin.command({"configureFailPoint": "failCommand", "mode": "off"})
