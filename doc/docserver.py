"""The MongoDB server that the documentation's examples run against.

``doc/conf.py``'s doctest set-up calls :func:`server_uri` at the start of every document:
the first call starts a SecantusDB server (``test/support/servers.py``) unless
``GREENMOTOR_TEST_URI`` names one, and later calls reuse it. The build stops it when it
finishes (and at exit, if the build dies first). Each document drops and uses its own
databases, so the order in which documents run does not matter::

    uri = server_uri()
    fresh_databases(uri, "tutorial")
"""

from __future__ import annotations

import atexit
import os

import pymongo

_server = None


def server_uri() -> str:
    """The server's connection string; starts SecantusDB on the first call if needed."""
    global _server
    uri = os.environ.get("GREENMOTOR_TEST_URI")
    if uri:
        return uri
    if _server is None:
        from support.servers import (
            SecantusServer,  # test/support/servers.py; test/ is on sys.path via conf.py
        )

        server = SecantusServer("--enable-test-commands")
        server.start()
        server.wait_ready()
        _server = server
        atexit.register(stop)
    return _server.uri


def stop() -> None:
    """Stop the server :func:`server_uri` started, if any."""
    global _server
    if _server is not None:
        _server.stop()
        _server = None


def fresh_databases(uri: str, *names: str) -> None:
    """Drop the named databases, so a document's examples start from nothing."""
    with pymongo.MongoClient(uri) as client:
        for name in names:
            client.drop_database(name)


def document_done(namespace: dict) -> None:
    """Close the MotorClients a document's examples left open (end of every document)."""
    from greenmotor import MotorClient

    for value in list(namespace.values()):
        if isinstance(value, MotorClient):
            value.close()
