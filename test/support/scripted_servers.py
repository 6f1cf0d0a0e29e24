"""Peers that misbehave on purpose, all on loopback: for faults a real server won't produce.

* :class:`StalledListener` - a listening socket whose accept queue is full, so a TCP connect
  to it never completes (what a connectTimeoutMS is for).
* :class:`SilentServer` - accepts connections and never sends a byte (a hung TLS handshake).
* :class:`ScriptedServer` - a mockupdb server whose replies a test switches at will: normal,
  silent, garbage, a truncated message, a hang-up mid-reply, or replica-set hello documents
  from :func:`rs_hello`.

::

    with ScriptedServer() as server:
        server.mode = "garbage"          # every non-hello command gets junk bytes
        client = MotorClient(server.uri)
"""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Callable
from typing import Any

from bson import ObjectId
from mockupdb import MockupDB

OP_MSG = 2013
MAX_WIRE_VERSION = 21  # what MongoDB 7.0 reports; PyMongo 4.20 needs at least 9

HELLO = {
    "ismaster": True,
    "isWritablePrimary": True,
    "minWireVersion": 0,
    "maxWireVersion": MAX_WIRE_VERSION,
    "maxBsonObjectSize": 16 * 1024 * 1024,
    "maxMessageSizeBytes": 48_000_000,
    "maxWriteBatchSize": 100_000,
    "logicalSessionTimeoutMinutes": 30,
    "ok": 1,
}


class StalledListener:
    """A loopback port that accepts no connection: its backlog is full, SYNs are dropped.

    ::

        with StalledListener() as port:
            socket.create_connection(("127.0.0.1", port), timeout=0.2)  # TimeoutError
    """

    def __init__(self) -> None:
        self._listener = socket.socket()
        self._fillers: list[socket.socket] = []

    def __repr__(self) -> str:
        return f"<StalledListener port={self.port} fillers={len(self._fillers)}>"

    @property
    def port(self) -> int:
        return self._listener.getsockname()[1]

    def __enter__(self) -> int:
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(0)
        # Fill the accept queue until a connect no longer completes.
        for _ in range(16):
            filler = socket.socket()
            filler.settimeout(0.2)
            self._fillers.append(filler)
            try:
                filler.connect(("127.0.0.1", self.port))
            except TimeoutError:
                return self.port
        raise RuntimeError("could not fill the listen backlog; connects would not stall")

    def __exit__(self, *exc: Any) -> None:
        for filler in self._fillers:
            filler.close()
        self._listener.close()


class SilentServer:
    """A loopback port that accepts connections and then says nothing, ever (a peer that
    hangs a TLS or MongoDB handshake).

    ::

        with SilentServer() as port:
            ...  # connects succeed; every read waits
    """

    def __init__(self) -> None:
        self._listener = socket.socket()
        self._accepted: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, name="silent-server", daemon=True)

    def __repr__(self) -> str:
        return f"<SilentServer port={self.port} accepted={len(self._accepted)}>"

    @property
    def port(self) -> int:
        return self._listener.getsockname()[1]

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return  # closed
            self._accepted.append(conn)

    def __enter__(self) -> int:
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        self._thread.start()
        return self.port

    def __exit__(self, *exc: Any) -> None:
        self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        self._thread.join(5)
        for conn in self._accepted:
            conn.close()


def rs_hello(me: str, hosts: list[str], primary: str | None, election: int) -> dict:
    """A hello reply from a member of replica set "rs" (PyMongo needs electionId to trust a
    new primary over an old one)."""
    doc = dict(HELLO, setName="rs", hosts=hosts, me=me, setVersion=1)
    doc["ismaster"] = doc["isWritablePrimary"] = me == primary
    doc["secondary"] = me != primary
    if primary is not None:
        doc["primary"] = primary
    if me == primary:
        doc["electionId"] = ObjectId(f"{election:024x}")
    return doc


class ScriptedServer:
    """A mockupdb server with switchable behaviour for non-hello commands.

    Modes: ``"normal"`` (``{ok: 1}`` or ``normal_reply(request)``), ``"silent"`` (never
    answer), ``"garbage"`` (junk bytes), ``"truncated"`` (a header promising more than is
    sent, then close), ``"hangup"`` (close without a reply), ``"bad_bson"`` (a complete
    message whose document is corrupt). ``hello`` is a callable giving the hello document,
    or None to leave hellos unanswered. Every command received is in ``commands``.
    """

    def __init__(self, hello: Callable[[], dict] | None = lambda: HELLO) -> None:
        self.hello = hello
        self.mode = "normal"
        self.normal_reply: Callable[[Any], dict] = lambda request: {"ok": 1}
        self.commands: list[str] = []
        self._lock = threading.Lock()
        self._server = MockupDB(auto_ismaster=False, verbose=False, request_timeout=int(1e6))
        self._server.autoresponds(self._handle)

    def __repr__(self) -> str:
        return f"<ScriptedServer {self.address} mode={self.mode} commands={len(self.commands)}>"

    @property
    def port(self) -> int:
        return self._server.port

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def uri(self) -> str:
        return f"mongodb://{self.address}/?directConnection=true"

    def __enter__(self) -> ScriptedServer:
        self._server.run()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._server.stop()

    def count(self, name: str) -> int:
        with self._lock:
            return self.commands.count(name)

    def _handle(self, request: Any) -> bool:
        name = request.command_name
        if name.lower() in ("ismaster", "hello"):
            if self.hello is not None:
                request.replies(self.hello())
            return True  # hellos unanswered when hello is None
        with self._lock:
            self.commands.append(name)
        sock = request._client  # mockupdb's socket to this client connection
        mode = self.mode
        if mode == "normal":
            return request.replies(self.normal_reply(request))
        if mode == "silent":
            return True
        if mode == "garbage":
            sock.sendall(b"\x00\x01 not a MongoDB message at all \xff\xfe")
        elif mode == "truncated":
            sock.sendall(struct.pack("<iiii", 200, 1, request.request_id, OP_MSG) + b"\x00" * 10)
            sock.shutdown(socket.SHUT_RDWR)
        elif mode == "hangup":
            sock.shutdown(socket.SHUT_RDWR)
        elif mode == "bad_bson":
            body = struct.pack("<I", 0) + b"\x00" + struct.pack("<i", 32) + b"\xff" * 28
            header = struct.pack("<iiii", 16 + len(body), 1, request.request_id, OP_MSG)
            sock.sendall(header + body)
        else:
            raise ValueError(f"unknown mode {mode!r}")
        return True


__all__ = ["HELLO", "ScriptedServer", "SilentServer", "StalledListener", "rs_hello"]
