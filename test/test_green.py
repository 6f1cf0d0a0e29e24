"""The green layer itself: socket semantics, conditions, context, and isolation from PyMongo."""

from __future__ import annotations

import asyncio
import contextvars
import socket
import threading
import time

import pymongo
import pytest
from pymongo import monitoring
from pymongo.synchronous import mongo_client
from pymongo.synchronous.pool import Pool

import greenmotor
from greenmotor.core import GreenmotorUsageError, Wakeup, in_flight, spawn
from greenmotor.green_pool import GreenCondition, sleep
from greenmotor.green_socket import GreenCancellation, GreenSocket
from greenmotor.pymongo_hooks import GreenConnection, GreenPool


def registered_fds(loop: asyncio.AbstractEventLoop) -> set[int]:
    return set(loop._selector.get_map())  # type: ignore[attr-defined]


@pytest.fixture
def pair():
    a, b = socket.socketpair()
    yield GreenSocket(a), b
    a.close()
    b.close()


def test_blocking_semantics_off_the_loop(pair):
    green, peer = pair
    buf = bytearray(10)
    green.settimeout(0.0)
    with pytest.raises(BlockingIOError):
        green.recv_into(buf)
    green.settimeout(0.1)
    start = time.monotonic()
    with pytest.raises(TimeoutError, match="timed out"):
        green.recv_into(buf)
    assert 0.09 < time.monotonic() - start < 1.0
    peer.sendall(b"hello")
    assert green.recv_into(buf) == 5 and bytes(buf[:5]) == b"hello"
    green.settimeout(None)
    threading.Timer(0.05, peer.sendall, (b"late",)).start()
    assert green.recv_into(buf) == 4  # None waits as long as it takes
    green.sendall(b"x" * 100_000)
    received = 0
    while received < 100_000:
        received += len(peer.recv(65536))


async def test_green_semantics_in_a_greenlet(pair, io_loop):
    green, peer = pair
    loop = asyncio.get_running_loop()
    green.settimeout(0.1)
    buf = bytearray(10)

    start = time.monotonic()
    with pytest.raises(TimeoutError, match="timed out"):
        await spawn(loop, green.recv_into, buf)
    assert 0.09 < time.monotonic() - start < 1.0
    # The descriptor stays registered between waits (one registration, not one per wait)...
    fd = green.fileno()
    assert fd in registered_fds(loop)

    green.settimeout(5)
    pending = spawn(loop, green.recv_into, buf)
    assert not pending.done()  # parked, the loop is free
    loop.call_later(0.02, peer.sendall, b"abc")
    assert await pending == 3
    assert fd in registered_fds(loop)

    # A large send parks until the peer reads.
    sending = spawn(loop, green.sendall, b"y" * 5_000_000)
    received = 0
    while received < 5_000_000:
        await asyncio.sleep(0)
        try:
            peer.setblocking(False)
            received += len(peer.recv(1 << 20))
        except BlockingIOError:
            pass
    await sending


async def test_receive_exactly_parks_light_and_reads_in_parts(pair, io_loop):
    """A read parked for its reply holds the empty buffer only: no exception, no view."""
    green, peer = pair
    loop = asyncio.get_running_loop()
    pending = spawn(loop, green.receive_exactly, 6, None, GreenCancellation())
    assert not pending.done()
    (glet,) = [g for g in in_flight if g.future is pending]
    frame = glet.gr_frame
    while frame.f_code.co_name != "receive_exactly":
        frame = frame.f_back
    assert "exc" not in frame.f_locals
    assert type(frame.f_locals["buf"]) is bytearray and frame.f_locals["view"] is None
    assert not vars(glet)  # DriverGreenlet's attributes are slots
    peer.sendall(b"ab")
    await asyncio.sleep(0.02)
    assert not pending.done()
    peer.sendall(b"cdef")
    data = await pending
    assert isinstance(data, memoryview) and bytes(data) == b"abcdef"


async def test_pooled_connections_keep_pymongos_fields_in_slots(client, io_loop):
    """PyMongo's Connection sets more attributes than a shared-key dict holds: slots instead."""
    await client.admin.command("ping")
    pool = client.delegate._topology.get_server_by_address(client.address).pool
    conn = pool.conns[0]
    assert type(conn) is GreenConnection
    assert not vars(conn), sorted(vars(conn))  # a field PyMongo added: list it in the slots


async def test_the_loop_stops_watching_a_socket_nobody_reads(pair, io_loop):
    """Readable with no green read waiting (the peer closed, or another thread reads it):
    the registration ends at once instead of firing on every loop iteration; closing the
    socket ends it too, before the descriptor's number can be reused."""
    green, peer = pair
    loop = asyncio.get_running_loop()
    green.settimeout(5)
    buf = bytearray(10)
    loop.call_later(0.01, peer.sendall, b"abc")
    assert await spawn(loop, green.recv_into, buf) == 3
    fd = green.fileno()
    assert fd in registered_fds(loop)
    peer.sendall(b"unread")
    await asyncio.sleep(0.02)
    assert fd not in registered_fds(loop)  # one wake-up with nobody waiting ended it
    assert await spawn(loop, green.recv_into, buf) == 6  # was there: no wait
    loop.call_later(0.01, peer.sendall, b"later")
    assert await spawn(loop, green.recv_into, buf) == 5  # waited: watched again
    assert fd in registered_fds(loop)
    green.close()
    assert fd not in registered_fds(loop) and green.fileno() == -1


async def test_a_watched_socket_closed_from_another_thread(pair, io_loop):
    """PyMongo's monitor and maintenance threads close pooled sockets too: the socket looks
    closed at once, and the loop ends its registration before the descriptor is closed."""
    green, peer = pair
    loop = asyncio.get_running_loop()
    green.settimeout(5)
    loop.call_later(0.01, peer.sendall, b"abc")
    assert await spawn(loop, green.recv_into, bytearray(10)) == 3
    fd = green.fileno()
    closer = threading.Thread(target=green.close)
    closer.start()
    closer.join()
    assert green.fileno() == -1
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert fd not in registered_fds(loop)
    assert green._sock.fileno() == -1  # really closed, by the loop


def test_fileno_is_minus_one_after_close():
    a, b = socket.socketpair()
    green = GreenSocket(a)
    assert green.fileno() >= 0
    green.close()
    assert green.fileno() == -1
    assert "closed" in repr(green)
    b.close()


async def test_green_condition_notified_from_a_thread(io_loop):
    loop = asyncio.get_running_loop()
    cond = GreenCondition(threading.Lock())

    def wait_for_it():
        with cond:
            return cond.wait(5)

    waiting = spawn(loop, wait_for_it)
    assert "waiters=1" in repr(cond)

    def notify():
        with cond:
            cond.notify_all()

    threading.Timer(0.05, notify).start()
    assert await waiting is True

    def time_out():
        with cond:
            return cond.wait(0.05)

    assert await spawn(loop, time_out) is False
    assert "waiters=0" in repr(cond)


def test_green_condition_still_works_for_threads():
    cond = GreenCondition(threading.Lock())
    got = []

    def waiter():
        with cond:
            got.append(cond.wait(5))

    thread = threading.Thread(target=waiter)
    thread.start()
    time.sleep(0.05)
    with cond:
        cond.notify()
    thread.join()
    assert got == [True]


async def test_sleep_parks_only_the_greenlet(io_loop):
    loop = asyncio.get_running_loop()
    ticks = []
    ticker = loop.call_later(0.02, ticks.append, 1)
    start = time.monotonic()
    await spawn(loop, sleep, 0.1)
    assert 0.09 < time.monotonic() - start < 1.0 and ticks == [1]
    ticker.cancel()


async def test_contextvars_are_copied_into_the_greenlet(io_loop):
    var = contextvars.ContextVar("var", default="unset")
    loop = asyncio.get_running_loop()

    def read_and_write():
        seen = var.get()
        var.set("changed in greenlet")
        return seen

    var.set("caller's value")
    assert await spawn(loop, read_and_write) == "caller's value"
    assert var.get() == "caller's value"  # a copy: the caller's context is untouched


async def test_command_listener_sees_callers_context(server_uri, io_loop):
    request_id = contextvars.ContextVar("request_id", default=None)
    seen = []

    class Listener(monitoring.CommandListener):
        def started(self, event):
            if event.command_name == "ping":
                seen.append(request_id.get())

        def succeeded(self, event):
            pass

        def failed(self, event):
            pass

    client = greenmotor.MotorClient(server_uri, event_listeners=[Listener()], io_loop=io_loop)

    async def request(n):
        request_id.set(n)
        await client.admin.command("ping")

    await asyncio.gather(*[asyncio.ensure_future(request(n)) for n in range(20)])
    assert sorted(seen) == list(range(20))
    client.close()


async def test_exceptions_and_no_greenlet_leak(io_loop):
    loop = asyncio.get_running_loop()
    before = len(in_flight)

    def boom():
        raise KeyError("boom")

    with pytest.raises(KeyError):
        await spawn(loop, boom)
    assert len(in_flight) == before


async def test_cancelling_the_future_ends_the_greenlet(io_loop):
    loop = asyncio.get_running_loop()
    cleaned_up = []

    def long_wait():
        try:
            Wakeup().wait(10)
        finally:
            cleaned_up.append(True)

    future = spawn(loop, long_wait)
    await asyncio.sleep(0.01)
    future.cancel()
    await asyncio.sleep(0.01)
    assert cleaned_up == [True]
    assert not any(g.loop is loop for g in in_flight)


def test_wakeup_outside_a_greenlet_says_what_is_wrong():
    with pytest.raises(GreenmotorUsageError, match="needs a DriverGreenlet"):
        Wakeup()


async def test_plain_pymongo_client_is_untouched(server_uri, io_loop):
    """A plain MongoClient in the same process, in another thread, behaves as before."""
    motor = greenmotor.MotorClient(server_uri, io_loop=io_loop)
    await motor.admin.command("ping")
    results = {}

    def use_plain_client():
        plain = pymongo.MongoClient(server_uri)
        plain.admin.command("ping")
        pool = plain._topology.get_server_by_address(plain.address).pool
        results["pool"] = type(pool)
        results["condition"] = type(plain._topology._condition)
        with pool.checkout() as conn:
            results["socket"] = type(conn.conn.sock)
        start = time.monotonic()
        mongo_client.time.sleep(0.05)  # PyMongo's back-off sleep: a real sleep here
        results["slept"] = time.monotonic() - start
        plain.close()

    thread = threading.Thread(target=use_plain_client)
    thread.start()
    while thread.is_alive():
        await motor.admin.command("ping")  # greenmotor keeps working alongside
    assert results["pool"] is Pool
    assert results["condition"] is threading.Condition
    assert results["socket"] is socket.socket
    assert results["slept"] >= 0.05

    green_pool = motor.delegate._topology.get_server_by_address(motor.address).pool
    assert type(green_pool) is GreenPool
    motor.close()


async def test_dns_resolution_runs_off_the_loop(server_uri, stall_monitor, monkeypatch, io_loop):
    """A slow resolver (0.3 s here) delays the connection, not the loop."""
    port = pymongo.uri_parser.parse_uri(server_uri)["nodelist"][0][1]
    real_getaddrinfo = socket.getaddrinfo
    resolved_in = []

    def slow_getaddrinfo(host, *args, **kwargs):
        if host == "localhost":
            resolved_in.append(threading.get_ident())
            time.sleep(0.3)
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", slow_getaddrinfo)
    with greenmotor.MotorClient("localhost", port, io_loop=io_loop) as client:
        async with stall_monitor() as stalls:
            assert (await client.admin.command("ping"))["ok"] == 1.0
    assert resolved_in and threading.get_ident() not in resolved_in  # all off the loop
    assert stalls.longest < 0.05, stalls


async def test_interrupted_connection_wakes_the_parked_read(client, sync_client, coll, io_loop):
    """PyMongo interrupts in-use connections from its monitor thread when a server goes away.

    Sync PyMongo notices within its 0.5 s read poll; a parked greenlet is woken at once.
    """
    from pymongo.errors import AutoReconnect
    from support.failpoints import fail_command

    await coll.insert_one({"_id": 1})
    pool = client.delegate._topology.get_server_by_address(client.address).pool
    with fail_command(sync_client, ["find"], blockConnection=True, blockTimeMS=3000):
        reading = asyncio.ensure_future(coll.with_options().find_one({"_id": 1}))
        await asyncio.sleep(0.2)
        start = time.monotonic()
        threading.Thread(target=pool.reset, kwargs={"interrupt_connections": True}).start()
        with pytest.raises(AutoReconnect):  # cancelled, then its retry finds the pool paused
            await asyncio.wait_for(reading, 2)
        assert time.monotonic() - start < 0.4
    assert await coll.find_one({"_id": 1}) == {"_id": 1}  # and the client goes on


async def test_srv_lookup_runs_off_the_loop(server_uri, stall_monitor, monkeypatch, io_loop):
    """``mongodb+srv://``: the SRV and TXT look-ups (dnspython, blocking) leave the loop.

    No DNS server here: dnspython's resolve() answers as a slow DNS server would.
    """
    import types

    import dns.resolver

    port = pymongo.uri_parser.parse_uri(server_uri)["nodelist"][0][1]
    looked_up_in = []

    def resolve(name, rdtype, **kwargs):
        looked_up_in.append(threading.get_ident())
        time.sleep(0.2)
        if rdtype == "TXT":
            raise dns.resolver.NoAnswer()
        target = types.SimpleNamespace(to_text=lambda omit_final_dot: "node1.cluster.test")
        return [types.SimpleNamespace(target=target, port=port)]

    real_getaddrinfo = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):
        return real_getaddrinfo(
            "127.0.0.1" if host == "node1.cluster.test" else host, *args, **kwargs
        )

    monkeypatch.setattr(dns.resolver, "resolve", resolve)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    uri = "mongodb+srv://db.cluster.test/?tls=false"
    with greenmotor.MotorClient(uri, io_loop=io_loop) as client:
        async with stall_monitor() as stalls:
            pings = await asyncio.gather(*[client.admin.command("ping") for _ in range(5)])
        assert client.address[1] == port
    assert all(p["ok"] == 1.0 for p in pings)
    assert len(looked_up_in) == 2  # one SRV and one TXT look-up, shared by the five pings
    assert threading.get_ident() not in looked_up_in
    assert stalls.longest < 0.05, stalls
