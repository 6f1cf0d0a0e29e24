#!/usr/bin/env python
"""A canned-reply MongoDB wire-protocol server for measuring driver overhead.

Usage::

    python benchmark/canned_server.py --port PORT [--docs N] [--doc-size BYTES]
                                      [--delay-ms MS]

Prints ``ready PORT`` on stdout once it listens (``--port 0`` picks a free
port, and the line tells which).  Stops on SIGTERM or SIGINT.

The server pretends to be a standalone MongoDB holding one collection of N
identical-looking documents in every namespace.  It does no real work: every
answer is either precomputed bytes or a tiny document, so that what a
benchmark measures is the driver, not the server.  ``benchmark/ceiling.py``
measures how fast the server itself is.

Slow operations: any command whose document has a ``delayMS`` field is
answered after that many milliseconds, and the command ``slow`` without
``delayMS`` waits ``--delay-ms``.  Waiting is a timer on the event loop, so
thousands of connections can wait at once without holding anything up.

Warm pools: ``{"barrier": NAME, "parties": N, "timeoutMS": T}`` is held
until N commands with the same NAME are held (then all N are answered at
once) or T ms (default 60000) have passed for that one command.  A client
that sends N of them concurrently therefore ends up with N open
connections, however long it took to open them.  The reply says how many
arrived: ``{"arrived": K, "ok": 1}``.
"""

import argparse
import asyncio
import datetime
import itertools
import resource
import signal
import struct
import sys

import bson

# --- Wire protocol constants --------------------------------------------

OP_REPLY = 1
OP_QUERY = 2004
OP_COMPRESSED = 2012
OP_MSG = 2013

# OP_MSG flag bits.
CHECKSUM_PRESENT = 1 << 0
MORE_TO_COME = 1 << 1

# The largest batch a real server returns is bounded by the 16 MiB BSON
# limit, so a getMore without batchSize must not try to send a million docs
# in one reply.
MAX_BSON_SIZE = 16 * 1024 * 1024
# A real server's default first batch for find and aggregate.
DEFAULT_FIRST_BATCH = 101

_header = struct.Struct("<iiii")  # messageLength, requestID, responseTo, opCode
_reply_head = struct.Struct("<iii")  # messageLength, requestID, responseTo
_int32 = struct.Struct("<i")
_uint32 = struct.Struct("<I")
_int64 = struct.Struct("<q")
_double = struct.Struct("<d")

# Everything between responseTo and a section-0 body of a reply OP_MSG:
# opCode, flagBits 0, section kind 0.
_MSG_OPCODE_FLAGS_KIND = struct.pack("<iIB", OP_MSG, 0, 0)
# OP_REPLY after the header: responseFlags 0 (AwaitCapable is irrelevant
# for commands), cursorID 0, startingFrom 0, numberReturned 1.
_REPLY_OPCODE_FIELDS = struct.pack("<iiqii", OP_REPLY, 0, 0, 0, 1)

_OK_BODY = bson.encode({"ok": 1.0})
# The whole ping reply after responseTo, and its length.
_PING_REPLY_TAIL = _MSG_OPCODE_FLAGS_KIND + _OK_BODY
_PING_REPLY_LEN = 12 + len(_PING_REPLY_TAIL)


# --- Hand-built BSON ------------------------------------------------------
# Cursor replies are assembled from pre-encoded documents rather than going
# through bson.encode, so that no document is ever encoded twice.


def _cstring(text):
    return text.encode() + b"\x00"


def _bson_array(encoded_docs):
    """BSON array body (length-prefixed) of already-encoded documents."""
    parts = [b"\x03" + _cstring(str(i)) + doc for i, doc in enumerate(encoded_docs)]
    inner = b"".join(parts)
    return _int32.pack(4 + len(inner) + 1) + inner + b"\x00"


def _cursor_template(batch_name, encoded_docs, ns):
    """Split the reply body {cursor: {<batch>: [...], id, ns}, ok: 1} around
    the cursor id, so a reply is prefix + packed id + suffix."""
    ns_bytes = ns.encode()
    array = b"\x04" + _cstring(batch_name) + _bson_array(encoded_docs)
    id_key = b"\x12id\x00"
    ns_elem = b"\x02ns\x00" + _int32.pack(len(ns_bytes) + 1) + ns_bytes + b"\x00"
    cursor_len = 4 + len(array) + len(id_key) + 8 + len(ns_elem) + 1
    cursor_key = b"\x03cursor\x00"
    ok_elem = b"\x01ok\x00" + _double.pack(1.0)
    body_len = 4 + len(cursor_key) + cursor_len + len(ok_elem) + 1
    prefix = b"".join((_int32.pack(body_len), cursor_key, _int32.pack(cursor_len), array, id_key))
    suffix = ns_elem + b"\x00" + ok_elem + b"\x00"
    return prefix, suffix


# --- The fake collection and its cursors ---------------------------------


class Store:
    """The canned documents, the cursor-reply cache and the open cursors."""

    # Bounds the template cache; a benchmark uses a handful of shapes, but
    # odd batch sizes over many docs could otherwise grow it without limit.
    MAX_TEMPLATES = 4096
    # Clients that drop a cursor without killCursors leave it here; forget
    # the oldest beyond this many.
    MAX_CURSORS = 100000

    def __init__(self, ndocs, doc_size):
        self.docs = [self._make_doc(i, doc_size) for i in range(ndocs)]
        doc_len = len(self.docs[0]) if self.docs else 16
        self.max_batch = max(1, (MAX_BSON_SIZE - 4096) // (doc_len + 16))
        self.templates = {}
        # cursor id -> [next offset, end offset, namespace]
        self.cursors = {}
        # Large, recognisable ids; zero means "exhausted" on the wire.
        self._cursor_ids = itertools.count(0x10000001)

    @staticmethod
    def _make_doc(i, doc_size):
        # Size the filler so the encoded document is doc_size bytes (or as
        # close as the fixed fields allow).
        base = len(bson.encode({"_id": i, "filler": ""}))
        return bson.encode({"_id": i, "filler": "x" * max(0, doc_size - base)})

    def _template(self, batch_name, ns, start, count):
        key = (batch_name, ns, start, count)
        tmpl = self.templates.get(key)
        if tmpl is None:
            if len(self.templates) >= self.MAX_TEMPLATES:
                self.templates.clear()
            tmpl = _cursor_template(batch_name, self.docs[start : start + count], ns)
            self.templates[key] = tmpl
        return tmpl

    def open_cursor(self, ns, start, end, batch_size, single_batch):
        """Reply body parts for a find/aggregate over docs[start:end]."""
        first = batch_size if batch_size else DEFAULT_FIRST_BATCH
        count = max(0, min(first, end - start, self.max_batch))
        cursor_id = 0
        if start + count < end and not single_batch:
            cursor_id = next(self._cursor_ids)
            self.cursors[cursor_id] = [start + count, end, ns]
            if len(self.cursors) > self.MAX_CURSORS:
                del self.cursors[next(iter(self.cursors))]
        prefix, suffix = self._template("firstBatch", ns, start, count)
        return prefix, _int64.pack(cursor_id), suffix

    def get_more(self, cursor_id, batch_size):
        state = self.cursors.get(cursor_id)
        if state is None:
            return None
        start, end, ns = state
        count = min(batch_size or end - start, end - start, self.max_batch)
        if start + count >= end:
            del self.cursors[cursor_id]
            reply_id = 0
        else:
            state[0] = start + count
            reply_id = cursor_id
        prefix, suffix = self._template("nextBatch", ns, start, count)
        return prefix, _int64.pack(reply_id), suffix


# --- Command handlers ------------------------------------------------------
# Each handler takes (conn, cmd, db, sequences) and returns the reply body
# as a tuple of byte strings (concatenated on the wire).  ``conn`` is the
# WireProtocol of the connection; ``sequences`` maps an OP_MSG kind-1
# section identifier to its document count.


def _encoded(doc):
    return (bson.encode(doc),)


def _hello(conn, cmd, db, sequences):
    reply = {}
    # A legacy isMaster is answered with the legacy field name, as a real
    # server does; hello gets the modern one.
    if "hello" in cmd:
        reply["isWritablePrimary"] = True
    else:
        reply["ismaster"] = True
    if cmd.get("helloOk"):
        reply["helloOk"] = True
    # No topologyVersion on purpose: without it PyMongo (and Motor) fall back
    # to polling monitoring instead of holding an awaitable hello open.
    reply.update(
        maxBsonObjectSize=16777216,
        maxMessageSizeBytes=48000000,
        maxWriteBatchSize=100000,
        localTime=datetime.datetime.now(datetime.UTC),
        logicalSessionTimeoutMinutes=30,
        connectionId=conn.connection_id,
        minWireVersion=0,
        maxWireVersion=25,
        readOnly=False,
        ok=1.0,
    )
    return _encoded(reply)


def _ok(conn, cmd, db, sequences):
    return (_OK_BODY,)


_BUILD_INFO_BODY = bson.encode(
    {
        "version": "8.0.0",
        "gitVersion": "canned",
        "versionArray": [8, 0, 0, 0],
        "bits": 64,
        "maxBsonObjectSize": 16777216,
        "ok": 1.0,
    }
)


def _build_info(conn, cmd, db, sequences):
    return (_BUILD_INFO_BODY,)


def _int_arg(cmd, name):
    value = cmd.get(name)
    return int(value) if value else 0


def _find(conn, cmd, db, sequences):
    store = conn.server.store
    ns = "%s.%s" % (db, cmd["find"])
    start = min(_int_arg(cmd, "skip"), len(store.docs))
    end = len(store.docs)
    limit = abs(_int_arg(cmd, "limit"))
    if limit:
        end = min(end, start + limit)
    single = bool(cmd.get("singleBatch"))
    return store.open_cursor(ns, start, end, _int_arg(cmd, "batchSize"), single)


def _aggregate(conn, cmd, db, sequences):
    store = conn.server.store
    coll = cmd["aggregate"]
    ns = "%s.%s" % (db, coll) if isinstance(coll, str) else "%s.$cmd.aggregate" % db
    pipeline = cmd.get("pipeline") or []
    batch_size = _int_arg(cmd.get("cursor") or {}, "batchSize")
    if pipeline and "$group" in pipeline[-1]:
        # count_documents is an aggregate ending in $group with n: {$sum: 1};
        # answer it with the collection size so the driver gets a number.
        doc = {"_id": 1, "n": len(store.docs)}
        body = {"cursor": {"firstBatch": [doc], "id": 0, "ns": ns}, "ok": 1.0}
        return _encoded(body)
    return store.open_cursor(ns, 0, len(store.docs), batch_size, False)


def _get_more(conn, cmd, db, sequences):
    parts = conn.server.store.get_more(int(cmd["getMore"]), _int_arg(cmd, "batchSize"))
    if parts is None:
        return _encoded(
            {
                "ok": 0.0,
                "errmsg": "cursor id %s not found" % cmd["getMore"],
                "code": 43,
                "codeName": "CursorNotFound",
            }
        )
    return parts


def _kill_cursors(conn, cmd, db, sequences):
    killed, not_found = [], []
    for cursor_id in cmd.get("cursors") or []:
        if conn.server.store.cursors.pop(int(cursor_id), None) is None:
            not_found.append(cursor_id)
        else:
            killed.append(cursor_id)
    return _encoded(
        {
            "cursorsKilled": killed,
            "cursorsNotFound": not_found,
            "cursorsAlive": [],
            "cursorsUnknown": [],
            "ok": 1.0,
        }
    )


# Small replies like {n: 1, ok: 1} recur endlessly; encode each once.
_write_bodies = {}


def _write_reply(n, with_modified):
    key = (n, with_modified)
    body = _write_bodies.get(key)
    if body is None:
        doc = {"n": n, "nModified": n, "ok": 1.0} if with_modified else {"n": n, "ok": 1.0}
        body = bson.encode(doc)
        if len(_write_bodies) < 100000:
            _write_bodies[key] = body
    return (body,)


def _count_items(cmd, sequences, field):
    # insert_many sends its documents as a kind-1 document sequence rather
    # than inside the command document; count both.
    return len(cmd.get(field) or ()) + sequences.get(field, 0)


def _insert(conn, cmd, db, sequences):
    return _write_reply(_count_items(cmd, sequences, "documents"), False)


def _update(conn, cmd, db, sequences):
    return _write_reply(_count_items(cmd, sequences, "updates"), True)


def _delete(conn, cmd, db, sequences):
    return _write_reply(_count_items(cmd, sequences, "deletes"), False)


def _count(conn, cmd, db, sequences):
    return _write_reply(len(conn.server.store.docs), False)


def _distinct(conn, cmd, db, sequences):
    return _encoded({"values": [], "ok": 1.0})


def _find_and_modify(conn, cmd, db, sequences):
    store = conn.server.store
    value = bson.decode(store.docs[0]) if store.docs else None
    return _encoded(
        {
            "lastErrorObject": {"n": 1 if value else 0, "updatedExisting": bool(value)},
            "value": value,
            "ok": 1.0,
        }
    )


def _empty_cursor(conn, cmd, db, sequences):
    # listCollections / listIndexes: drivers require a cursor in the reply.
    name = next(iter(cmd))
    ns = "%s.$cmd.%s" % (db, name)
    return _encoded({"cursor": {"firstBatch": [], "id": 0, "ns": ns}, "ok": 1.0})


def _list_databases(conn, cmd, db, sequences):
    return _encoded({"databases": [], "totalSize": 0, "ok": 1.0})


def _barrier(conn, cmd, db, sequences):
    # The reply is built when the barrier opens (Server.barrier_wait).
    return ()


HANDLERS = {
    "barrier": _barrier,
    "hello": _hello,
    "isMaster": _hello,
    "ismaster": _hello,
    "ping": _ok,
    "buildInfo": _build_info,
    "buildinfo": _build_info,
    "endSessions": _ok,
    "find": _find,
    "getMore": _get_more,
    "killCursors": _kill_cursors,
    "insert": _insert,
    "update": _update,
    "delete": _delete,
    "aggregate": _aggregate,
    "count": _count,
    "distinct": _distinct,
    "findAndModify": _find_and_modify,
    "findandmodify": _find_and_modify,
    "listCollections": _empty_cursor,
    "listIndexes": _empty_cursor,
    "listDatabases": _list_databases,
}


# --- Framing ---------------------------------------------------------------


def _frame_op_msg(request_id, response_to, parts):
    length = 21 + sum(map(len, parts))
    return b"".join(
        (_reply_head.pack(length, request_id, response_to), _MSG_OPCODE_FLAGS_KIND) + parts
    )


def _frame_op_reply(request_id, response_to, parts):
    length = 36 + sum(map(len, parts))
    return b"".join(
        (_reply_head.pack(length, request_id, response_to), _REPLY_OPCODE_FIELDS) + parts
    )


def _error_body(message):
    return (bson.encode({"ok": 0.0, "errmsg": message, "code": 2, "codeName": "BadValue"}),)


class Server:
    """State shared by all connections: the store and the id counters."""

    def __init__(self, store, default_delay_ms):
        self.store = store
        self.default_delay = default_delay_ms / 1000.0
        self._request_ids = itertools.count(1)
        self.connection_ids = itertools.count(1)
        # barrier name -> list of (future, timer) of the commands held there
        self.barriers = {}

    def run_command(self, conn, cmd, db, sequences):
        """Returns (reply body parts, delay in seconds)."""
        name = next(iter(cmd), None)
        handler = HANDLERS.get(name, _ok)
        try:
            parts = handler(conn, cmd, db, sequences)
            if name == "barrier":
                return parts, self.barrier_wait(cmd)
        except Exception as exc:  # a malformed command must not kill the server
            parts = _error_body("%s: %s" % (type(exc).__name__, exc))
        delay = cmd.get("delayMS")
        if delay is not None:
            return parts, float(delay) / 1000.0
        if name == "slow":
            return parts, self.default_delay
        return parts, 0.0

    def next_request_id(self):
        return next(self._request_ids)

    def barrier_wait(self, cmd):
        """A Future of the reply body parts for one ``barrier`` command."""
        loop = asyncio.get_running_loop()
        name = str(cmd["barrier"])
        parties = int(cmd["parties"])
        timeout = float(cmd.get("timeoutMS", 60000)) / 1000.0
        future = loop.create_future()
        held = self.barriers.setdefault(name, [])
        timer = loop.call_later(timeout, self._barrier_timeout, name, future)
        held.append((future, timer))
        if len(held) >= parties:
            del self.barriers[name]
            body = _encoded({"arrived": len(held), "ok": 1.0})
            for waiting, waiting_timer in held:
                waiting_timer.cancel()
                if not waiting.done():
                    waiting.set_result(body)
        return future

    def _barrier_timeout(self, name, future):
        held = self.barriers.get(name, [])
        arrived = len(held)
        self.barriers[name] = [entry for entry in held if entry[0] is not future]
        if not self.barriers[name]:
            del self.barriers[name]
        if not future.done():
            future.set_result(_encoded({"arrived": arrived, "timedOut": True, "ok": 1.0}))


class WireProtocol(asyncio.Protocol):
    """One client connection.  Messages are parsed straight out of the bytes
    that arrive; only the command document itself is BSON-decoded."""

    def __init__(self, server):
        self.server = server
        self.loop = asyncio.get_running_loop()
        self.transport = None
        # A message split across reads is gathered in a list and joined once
        # complete, so a 48 MB insert is not re-copied on every read.
        self.pending = []
        self.pending_len = 0
        self.needed = 0

    def connection_made(self, transport):
        self.transport = transport
        self.connection_id = next(self.server.connection_ids)

    def connection_lost(self, exc):
        self.pending = []

    def data_received(self, data):
        if self.pending:
            self.pending.append(data)
            self.pending_len += len(data)
            if self.pending_len < self.needed:
                return
            data = b"".join(self.pending)
            self.pending = []
            self.pending_len = 0
        end = len(data)
        pos = 0
        while end - pos >= 4:
            (length,) = _int32.unpack_from(data, pos)
            if length < 16:
                self.transport.close()
                return
            if end - pos < length:
                break
            self.handle_message(data, pos, length)
            pos += length
            if self.transport.is_closing():  # a malformed message closed it
                return
        if pos < end:
            rest = data[pos:]
            self.pending = [rest]
            self.pending_len = len(rest)
            self.needed = _int32.unpack_from(rest)[0] if len(rest) >= 4 else 4

    def handle_message(self, data, pos, length):
        _, request_id, _, opcode = _header.unpack_from(data, pos)
        if opcode == OP_MSG:
            self.handle_op_msg(data, pos, length, request_id)
        elif opcode == OP_QUERY:
            self.handle_op_query(data, pos, length, request_id)
        else:
            # We never advertise compression, so OP_COMPRESSED should not
            # arrive; anything else is not something a driver should send.
            self.transport.close()

    def handle_op_msg(self, data, pos, length, request_id):
        (flags,) = _uint32.unpack_from(data, pos + 16)
        # Fast path for ping, the command round-trip benchmarks hammer: a
        # single kind-0 section whose first key is "ping" (at a fixed offset:
        # 16 header + 4 flags + 1 kind + 4 BSON length + 1 element type) and
        # no delayMS anywhere gets the precomputed reply without any decoding.
        if (
            flags == 0
            and data.startswith(b"\x00", pos + 20)
            and data.startswith(b"ping\x00", pos + 26)
            and _int32.unpack_from(data, pos + 21)[0] == length - 21
            and data.find(b"delayMS\x00", pos + 21, pos + length) < 0
        ):
            self.transport.write(
                _reply_head.pack(_PING_REPLY_LEN, self.server.next_request_id(), request_id)
                + _PING_REPLY_TAIL
            )
            return
        end = pos + length - (4 if flags & CHECKSUM_PRESENT else 0)
        p = pos + 20
        cmd = None
        sequences = {}
        while p < end:
            kind = data[p]
            (size,) = _int32.unpack_from(data, p + 1)
            if kind == 0:
                cmd = bson.decode(data[p + 1 : p + 1 + size])
                p += 1 + size
            elif kind == 1:
                # Document sequence: int32 size, cstring identifier, then
                # documents.  Count them by hopping length prefixes; no need
                # to decode documents we throw away.
                section_end = p + 1 + size
                name_end = data.index(b"\x00", p + 5)
                identifier = data[p + 5 : name_end].decode()
                q = name_end + 1
                count = 0
                while q < section_end:
                    q += _int32.unpack_from(data, q)[0]
                    count += 1
                sequences[identifier] = sequences.get(identifier, 0) + count
                p = section_end
            else:
                self.transport.close()
                return
        if cmd is None:
            self.transport.close()
            return
        db = cmd.get("$db", "admin")
        parts, delay = self.server.run_command(self, cmd, db, sequences)
        if flags & MORE_TO_COME:
            # Unacknowledged write (w=0): the client expects no reply.
            return
        if isinstance(delay, asyncio.Future):  # a barrier: the body comes later
            delay.add_done_callback(
                lambda f: self._send_later(
                    _frame_op_msg(self.server.next_request_id(), request_id, f.result())
                )
            )
            return
        reply = _frame_op_msg(self.server.next_request_id(), request_id, parts)
        self.send(reply, delay)

    def handle_op_query(self, data, pos, length, request_id):
        # OP_QUERY: header, flags, fullCollectionName, skip, limit, query.
        name_end = data.index(b"\x00", pos + 20)
        full_name = data[pos + 20 : name_end].decode()
        q = name_end + 1 + 8
        (size,) = _int32.unpack_from(data, q)
        query = bson.decode(data[q : q + size])
        # Some drivers wrap the command as {$query: cmd, $readPreference: ...}.
        if "$query" in query:
            query = query["$query"]
        db = full_name.split(".", 1)[0]
        if full_name.endswith(".$cmd"):
            parts, delay = self.server.run_command(self, query, db, {})
            if isinstance(delay, asyncio.Future):  # barriers are OP_MSG only
                delay.cancel()
                parts, delay = _error_body("barrier needs OP_MSG"), 0.0
        else:
            parts, delay = _error_body("OP_QUERY is only supported for commands"), 0.0
        # An OP_REPLY carries documents, not a split body: join it.
        reply = _frame_op_reply(self.server.next_request_id(), request_id, parts)
        self.send(reply, delay)

    def send(self, reply, delay):
        # A delayed reply may overtake a later, undelayed one on the same
        # connection; drivers never pipeline commands, so that cannot happen.
        if delay > 0:
            self.loop.call_later(delay, self._send_later, reply)
        else:
            self.transport.write(reply)

    def _send_later(self, reply):
        # The client may have given up (timeout) while we slept.
        if not self.transport.is_closing():
            self.transport.write(reply)


# --- Process setup -------------------------------------------------------


def raise_fd_limit():
    """Benchmarks open 10,000 connections; the default soft limit is often 1024."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = max(soft, 1048576)
    if soft == resource.RLIM_INFINITY or soft >= hard:
        return
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError):
        pass


async def serve(args):
    loop = asyncio.get_running_loop()
    store = Store(args.docs, args.doc_size)
    server = Server(store, args.delay_ms)
    listener = await loop.create_server(
        lambda: WireProtocol(server),
        host="127.0.0.1",
        port=args.port,
        backlog=args.backlog,
        reuse_address=True,
    )
    port = listener.sockets[0].getsockname()[1]
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    sys.stdout.write("ready %d\n" % port)
    sys.stdout.flush()
    await stop.wait()
    listener.close()


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=27017, help="0 picks a free port")
    parser.add_argument("--docs", type=int, default=1000, help="documents in every collection")
    parser.add_argument("--doc-size", type=int, default=128, help="encoded size of each document")
    parser.add_argument(
        "--delay-ms", type=float, default=1000.0, help="how long the 'slow' command waits"
    )
    parser.add_argument("--backlog", type=int, default=4096)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    raise_fd_limit()
    try:
        asyncio.run(serve(args))
    except KeyboardInterrupt:  # a SIGINT before the handler is installed
        pass


if __name__ == "__main__":
    main()
