#!/usr/bin/env python
"""Measure the canned server's own ceiling with raw sockets, no driver.

Usage::

    python benchmark/ceiling.py [--port PORT] [--seconds S] [--procs N]

Without --port it starts ``benchmark/canned_server.py`` on a free port and
stops it at the end.  Each measurement sends prebuilt OP_MSG messages and
reads the replies with bare sockets, so the only Python work per round trip
on the client side is one sendall and one or two recv_into calls.  The figures
say how many operations per second the server can answer at most; a driver
benchmark that comes near them is measuring the server, not the driver.

Measurements:
  * sequential ping round trips on one connection;
  * the same from N client processes in parallel (one connection each);
  * pings pipelined on one connection (--depth at a time), which removes
    the kernel's wake-up latency and leaves the server's processing rate;
  * sequential find round trips (first batch of --batch documents) on one
    connection, to show the cost of shipping document bytes.

Sequential round trips between two processes are bounded by how fast the
kernel wakes the waiting one.  On a virtual machine that wake-up can cost
100-400 us when the two processes sit on different CPUs, far more than
either side's work; pinning server and client to one CPU (``taskset -c 0``
on both) removes it.  Compare drivers under the same placement.
"""

import argparse
import multiprocessing
import os
import socket
import struct
import subprocess
import sys
import time

import bson

_int32 = struct.Struct("<i")
OP_MSG = 2013


def op_msg(command, request_id=1):
    """A complete OP_MSG with one kind-0 section holding ``command``."""
    body = bson.encode(command)
    return struct.pack("<iiiiIB", 21 + len(body), request_id, 0, OP_MSG, 0, 0) + body


class RawConnection:
    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # One reusable receive buffer; big enough for a 16 MB batch.
        self.buf = bytearray(17 * 1024 * 1024)
        self.view = memoryview(self.buf)

    def round_trip(self, message):
        """Send a prebuilt message and read one whole reply; returns its size."""
        sock, view = self.sock, self.view
        sock.sendall(message)
        got = sock.recv_into(view)
        if got == 0:
            raise ConnectionError("server closed the connection")
        while got < 4:
            got += sock.recv_into(view[got:])
        (length,) = _int32.unpack_from(self.buf)
        while got < length:
            n = sock.recv_into(view[got:length])
            if n == 0:
                raise ConnectionError("server closed the connection")
            got += n
        return length

    def pipelined(self, message, count):
        """Send ``count`` copies of a message at once and read every reply.

        Round trips on this kind of machine are bound by how fast the kernel
        wakes the other process, not by either side's work; pipelining takes
        the wake-ups out and shows what the server can process per second.
        """
        sock, view = self.sock, self.view
        sock.sendall(message * count)
        replies = 0
        got = 0  # bytes in buf not yet consumed
        pos = 0
        while replies < count:
            # Consume every complete reply in the buffer.
            while got - pos >= 4:
                (length,) = _int32.unpack_from(self.buf, pos)
                if got - pos < length:
                    break
                pos += length
                replies += 1
            if replies == count:
                break
            if pos:  # move the partial reply to the front
                self.buf[: got - pos] = self.buf[pos:got]
                got -= pos
                pos = 0
            n = sock.recv_into(view[got:])
            if n == 0:
                raise ConnectionError("server closed the connection")
            got += n

    def close(self):
        self.sock.close()


def run_loop(port, message, seconds):
    """Round trips of ``message`` for ``seconds``; returns (ops, elapsed)."""
    conn = RawConnection(port)
    try:
        for _ in range(100):  # warm up
            conn.round_trip(message)
        ops = 0
        start = time.perf_counter()
        deadline = start + seconds
        # Check the clock every 100 operations so timing costs stay out of it.
        while True:
            for _ in range(100):
                conn.round_trip(message)
            ops += 100
            now = time.perf_counter()
            if now >= deadline:
                return ops, now - start
    finally:
        conn.close()


def run_pipelined(port, message, seconds, depth):
    """Like run_loop, with ``depth`` messages in flight per send."""
    conn = RawConnection(port)
    try:
        conn.pipelined(message, depth)
        ops = 0
        start = time.perf_counter()
        deadline = start + seconds
        while True:
            conn.pipelined(message, depth)
            ops += depth
            now = time.perf_counter()
            if now >= deadline:
                return ops, now - start
    finally:
        conn.close()


def _worker(port, message, seconds, barrier, results):
    barrier.wait()
    results.put(run_loop(port, message, seconds))


def run_parallel(port, message, seconds, procs):
    """``procs`` client processes at once; returns total ops per second."""
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(procs)
    results = ctx.Queue()
    workers = [
        ctx.Process(target=_worker, args=(port, message, seconds, barrier, results))
        for _ in range(procs)
    ]
    for w in workers:
        w.start()
    outcomes = [results.get() for _ in workers]
    for w in workers:
        w.join()
    # Each worker ran for about the same wall time, so rates add up.
    return sum(ops / elapsed for ops, elapsed in outcomes)


def start_server(extra_args):
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "canned_server.py")
    proc = subprocess.Popen(
        [sys.executable, path, "--port", "0"] + extra_args,
        stdout=subprocess.PIPE,
        text=True,
    )
    line = proc.stdout.readline().split()
    if len(line) != 2 or line[0] != "ready":
        proc.kill()
        raise RuntimeError("canned server did not start: %r" % line)
    return proc, int(line[1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, help="an already running server")
    parser.add_argument("--seconds", type=float, default=3.0, help="per measurement")
    parser.add_argument(
        "--procs", type=int, default=os.cpu_count() or 2, help="parallel client processes"
    )
    parser.add_argument("--depth", type=int, default=100, help="messages per pipelined send")
    parser.add_argument("--batch", type=int, default=100, help="find batch size")
    parser.add_argument("--doc-size", type=int, default=128, help="when starting the server")
    args = parser.parse_args()

    proc = None
    port = args.port
    if port is None:
        proc, port = start_server(["--docs", str(args.batch), "--doc-size", str(args.doc_size)])
    try:
        ping = op_msg({"ping": 1, "$db": "admin"})
        # singleBatch so the server keeps no cursor per round trip.
        find = op_msg({"find": "c", "batchSize": args.batch, "singleBatch": True, "$db": "test"})

        ops, elapsed = run_loop(port, ping, args.seconds)
        print(
            "ping, 1 connection, sequential: %9.0f ops/s  (%.1f us per round trip)"
            % (ops / elapsed, 1e6 * elapsed / ops)
        )
        rate = run_parallel(port, ping, args.seconds, args.procs)
        print("ping, %d processes in parallel: %9.0f ops/s" % (args.procs, rate))
        ops, elapsed = run_pipelined(port, ping, args.seconds, args.depth)
        print(
            "ping, 1 connection, %d pipelined: %9.0f ops/s  (%.1f us each)"
            % (args.depth, ops / elapsed, 1e6 * elapsed / ops)
        )
        conn = RawConnection(port)
        size = conn.round_trip(find)
        conn.close()
        ops, elapsed = run_loop(port, find, args.seconds)
        print(
            "find %d docs (%d-byte reply), 1 connection: %9.0f ops/s  (%.1f us)"
            % (args.batch, size, ops / elapsed, 1e6 * elapsed / ops)
        )
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait()


if __name__ == "__main__":
    main()
