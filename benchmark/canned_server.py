"""A canned-reply MongoDB wire-protocol server, for measuring drivers rather than a database.

::

    python benchmark/canned_server.py --port 0    # prints "ready PORT"; stops on SIGTERM

It answers like a standalone server whose every collection holds ``--docs`` documents of
``--doc-size`` bytes (``_id`` 0, 1, ...), from precomputed bytes wherever it can: ``hello``,
``ping``, ``find`` (one batch, no cursor kept: ``find_one`` and small finds), ``insert``,
``update``, ``delete``; any other command gets ``{ok: 1}``. A command with a ``delayMS`` field
is answered that many milliseconds later, by a timer on the server's loop, so thousands of
them can wait at once.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import itertools
import resource
import signal
import struct
import sys
from typing import Any

import bson

OP_QUERY, OP_MSG = 2004, 2013
CHECKSUM_PRESENT, MORE_TO_COME = 1 << 0, 1 << 1
_header = struct.Struct("<iiii")  # messageLength, requestID, responseTo, opCode
_int32 = struct.Struct("<i")
_MSG_HEAD = struct.pack("<iIB", OP_MSG, 0, 0)  # opCode, flagBits, section kind 0
_REPLY_HEAD = struct.pack("<iiqii", 1, 0, 0, 0, 1)  # OP_REPLY: flags, cursor, from, returned
_OK = bson.encode({"ok": 1.0})
_PING_TAIL = _MSG_HEAD + _OK  # a ping reply after responseTo


class Store:
    """The canned documents, and ``find`` replies already encoded per (namespace, count)."""

    def __init__(self, ndocs: int, doc_size: int) -> None:
        base = len(bson.encode({"_id": 0, "filler": ""}))
        self.docs = [
            bson.encode({"_id": i, "filler": "x" * max(0, doc_size - base)}) for i in range(ndocs)
        ]
        self.replies: dict[tuple[str, int, int], bytes] = {}

    def find(self, ns: str, skip: int, count: int) -> bytes:
        key = (ns, skip, count)
        reply = self.replies.get(key)
        if reply is None:
            docs = self.docs[skip : skip + count]
            items = b"".join(b"\x03" + str(i).encode() + b"\x00" + d for i, d in enumerate(docs))
            array = _int32.pack(len(items) + 5) + items + b"\x00"
            cursor = b"".join(
                (
                    b"\x04firstBatch\x00",
                    array,
                    b"\x12id\x00",
                    bytes(8),
                    b"\x02ns\x00",
                    _int32.pack(len(ns) + 1),
                    ns.encode(),
                    b"\x00",
                )
            )
            body = b"\x03cursor\x00" + _int32.pack(len(cursor) + 5) + cursor + b"\x00"
            body += b"\x01ok\x00" + struct.pack("<d", 1.0)
            reply = _int32.pack(len(body) + 5) + body + b"\x00"
            if len(self.replies) < 10000:
                self.replies[key] = reply
        return reply


def _hello(cmd: dict[str, Any], conn_id: int) -> bytes:
    # No topologyVersion: drivers poll instead of holding an awaitable hello open.
    return bson.encode(
        {
            "isWritablePrimary" if "hello" in cmd else "ismaster": True,
            "helloOk": True,
            "maxBsonObjectSize": 16777216,
            "maxMessageSizeBytes": 48000000,
            "maxWriteBatchSize": 100000,
            "localTime": datetime.datetime.now(datetime.UTC),
            "logicalSessionTimeoutMinutes": 30,
            "connectionId": conn_id,
            "minWireVersion": 0,
            "maxWireVersion": 25,
            "readOnly": False,
            "ok": 1.0,
        }
    )


def reply_body(store: Store, cmd: dict[str, Any], sequences: dict[str, int], conn_id: int) -> bytes:
    name = next(iter(cmd), "")
    if name in ("hello", "isMaster", "ismaster"):
        return _hello(cmd, conn_id)
    if name == "find":
        skip = min(int(cmd.get("skip") or 0), len(store.docs))
        count = min(abs(int(cmd.get("limit") or 0)) or 101, int(cmd.get("batchSize") or 101))
        return store.find(f"{cmd['$db']}.{cmd['find']}", skip, count)
    for command, field in (("insert", "documents"), ("update", "updates"), ("delete", "deletes")):
        if name == command:  # insert_many sends its documents as a kind-1 sequence
            n = len(cmd.get(field) or ()) + sequences.get(field, 0)
            return bson.encode({"n": n, "ok": 1.0})
    return _OK


class WireProtocol(asyncio.Protocol):
    """One client connection; only the command document itself is BSON-decoded."""

    ids = itertools.count(1)

    def __init__(self, store: Store) -> None:
        self.store = store
        self.loop = asyncio.get_running_loop()
        self.buffer = b""
        self.conn_id = next(self.ids)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        data = self.buffer + data if self.buffer else data
        pos = 0
        while len(data) - pos >= 4:
            (length,) = _int32.unpack_from(data, pos)
            if length < 16:
                self.transport.close()
                return
            if len(data) - pos < length:
                break
            self.message(data, pos, length)
            pos += length
        self.buffer = data[pos:]

    def message(self, data: bytes, pos: int, length: int) -> None:
        _, request_id, _, opcode = _header.unpack_from(data, pos)
        if opcode == OP_QUERY:  # the driver's first hello: fullCollectionName, skip, limit, query
            q = data.index(b"\x00", pos + 20) + 9
            cmd = bson.decode(data[q : q + _int32.unpack_from(data, q)[0]])
            body = reply_body(self.store, cmd.get("$query", cmd), {}, self.conn_id)
            head = struct.pack("<iii", 36 + len(body), 0, request_id)
            self.transport.write(head + _REPLY_HEAD + body)
            return
        (flags,) = struct.unpack_from("<I", data, pos + 16)
        if data.startswith(b"ping\x00", pos + 26) and b"delayMS" not in data[pos : pos + length]:
            self.transport.write(
                struct.pack("<iii", 12 + len(_PING_TAIL), 0, request_id) + _PING_TAIL
            )
            return
        end, p = pos + length - (4 if flags & CHECKSUM_PRESENT else 0), pos + 20
        cmd, sequences = None, {}
        while p < end:  # sections: kind 0 is the command; kind 1 a document sequence
            (size,) = _int32.unpack_from(data, p + 1)
            if data[p] == 0:
                cmd = bson.decode(data[p + 1 : p + 1 + size])
            else:
                name_end = data.index(b"\x00", p + 5)
                q, count = name_end + 1, 0
                while q < p + 1 + size:
                    q += _int32.unpack_from(data, q)[0]
                    count += 1
                sequences[data[p + 5 : name_end].decode()] = count
            p += 1 + size
        if cmd is None or flags & MORE_TO_COME:  # unacknowledged writes get no reply
            return
        body = reply_body(self.store, cmd, sequences, self.conn_id)
        reply = struct.pack("<iii", 21 + len(body), 0, request_id) + _MSG_HEAD + body
        delay = cmd.get("delayMS")
        if delay:
            self.loop.call_later(float(delay) / 1000, self.send_later, reply)
        else:
            self.transport.write(reply)

    def send_later(self, reply: bytes) -> None:
        if not self.transport.is_closing():  # the client may have given up
            self.transport.write(reply)


async def serve(port: int, store: Store) -> None:
    loop = asyncio.get_running_loop()
    listener = await loop.create_server(
        lambda: WireProtocol(store), "127.0.0.1", port, backlog=4096, reuse_address=True
    )
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    sys.stdout.write(f"ready {listener.sockets[0].getsockname()[1]}\n")
    sys.stdout.flush()
    await stop.wait()
    listener.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=27017, help="0 picks a free port")
    parser.add_argument("--docs", type=int, default=1000, help="documents in every collection")
    parser.add_argument("--doc-size", type=int, default=128, help="encoded size of each document")
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)  # 10,000 connections
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    asyncio.run(serve(args.port, Store(args.docs, args.doc_size)))


if __name__ == "__main__":
    main()
