"""Both socket layers pass the same socket, fault, cancellation and timeout tests.

greenmotor's connections use :class:`~greenmotor.green_socket.GreenSocket` (the "raw"
layer) unless :func:`~greenmotor.green_socket.use_socket_layer` selects "iostream"
(:class:`~greenmotor.iostream_socket.IOStreamSocket`, over Tornado's IOStream). The tests
imported below are collected again in this module, once per layer: the ``socket_layer``
fixture (autouse) selects the layer for every connection the test opens.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time

import pytest
from test_cancellation import (  # noqa: F401 - fixtures the imported tests use
    events,
    motor,
    test_cancel_after_a_notify_passes_the_connection_on,
    test_task_cancel_during_a_write,
    test_task_cancel_during_get_more,
    test_wait_for_closes_the_connection_with_a_request_in_flight,
)
from test_cursor import (  # noqa: F401
    filled,
    test_dropped_cursor_is_killed_on_the_server,
    test_find_raw_batches,
)
from test_green import test_blocking_semantics_off_the_loop, test_fileno_is_minus_one_after_close
from test_loop_stalls import (
    test_blocked_operation_does_not_stall_others,
    test_socket_timeout_raises_network_timeout,
    test_timer_runs_on_time_while_coroutines_loop_on_quick_operations,
)
from test_protocol_faults import (  # noqa: F401
    scripted,
    test_fault_raises_what_pymongo_raises_and_both_recover,
    test_many_operations_on_a_silent_server_all_time_out_together,
)
from test_server_faults import (  # noqa: F401
    own_server,
    test_kill_fails_in_flight_operations_and_the_client_recovers,
    test_pinned_outcomes,
)
from test_timeouts import (
    test_csot_while_waiting_for_a_pooled_connection,
    test_many_deadlines_run_in_parallel,
    test_socket_timeout_on_get_more_is_not_retried,
    test_timeout_ms_client_option,
)

import greenmotor
from greenmotor import green_socket
from greenmotor.core import spawn
from greenmotor.green_socket import GreenSocket
from greenmotor.iostream_socket import IOStreamSocket

LAYER_CLASSES = {"raw": GreenSocket, "iostream": IOStreamSocket}

__all__ = [  # what this module runs, besides its own tests
    "test_blocked_operation_does_not_stall_others",
    "test_blocking_semantics_off_the_loop",
    "test_cancel_after_a_notify_passes_the_connection_on",
    "test_csot_while_waiting_for_a_pooled_connection",
    "test_dropped_cursor_is_killed_on_the_server",
    "test_fault_raises_what_pymongo_raises_and_both_recover",
    "test_fileno_is_minus_one_after_close",
    "test_find_raw_batches",
    "test_kill_fails_in_flight_operations_and_the_client_recovers",
    "test_many_deadlines_run_in_parallel",
    "test_many_operations_on_a_silent_server_all_time_out_together",
    "test_pinned_outcomes",
    "test_socket_timeout_on_get_more_is_not_retried",
    "test_socket_timeout_raises_network_timeout",
    "test_task_cancel_during_a_write",
    "test_task_cancel_during_get_more",
    "test_timeout_ms_client_option",
    "test_timer_runs_on_time_while_coroutines_loop_on_quick_operations",
    "test_wait_for_closes_the_connection_with_a_request_in_flight",
]


@pytest.fixture(autouse=True, params=sorted(LAYER_CLASSES))
def socket_layer(request):
    saved = green_socket.socket_layer
    green_socket.use_socket_layer(request.param)
    yield request.param
    green_socket.socket_layer = saved


@pytest.fixture
def pair(socket_layer):
    """A socket of the layer under test, and its peer (test_green's tests use it)."""
    a, b = socket.socketpair()
    yield LAYER_CLASSES[socket_layer](a), b
    a.close()
    b.close()


def pooled_sockets(client) -> list:
    pools = [server.pool for server in client.delegate._topology._servers.values()]
    return [conn.conn.sock for pool in pools for conn in pool.conns]


async def test_connections_use_the_selected_layer(server_uri, socket_layer, io_loop):
    client = greenmotor.MotorClient(server_uri, io_loop=io_loop)
    await asyncio.gather(*(client.admin.command("ping") for _ in range(5)))
    sockets = pooled_sockets(client)
    assert sockets and {type(s) for s in sockets} == {LAYER_CLASSES[socket_layer]}
    client.close()


def test_an_unknown_layer_names_the_choices():
    with pytest.raises(ValueError, match="'raw', 'iostream'|raw, iostream"):
        green_socket.use_socket_layer("uvloop")


async def test_socket_semantics_in_a_greenlet(pair, io_loop):
    """What PyMongo relies on, in a greenlet, for either layer: a timeout raises
    TimeoutError("timed out") after about the timeout; a read parks until data comes; a
    large send parks until the peer reads; the peer closing reads as 0 bytes."""
    green, peer = pair
    loop = asyncio.get_running_loop()
    buf = bytearray(10)
    green.settimeout(5)
    pending = spawn(loop, green.recv_into, buf)
    assert not pending.done()  # parked, the loop is free
    loop.call_later(0.02, peer.sendall, b"abc")
    assert await pending == 3 and bytes(buf[:3]) == b"abc"

    sending = spawn(loop, green.sendall, b"y" * 5_000_000)
    assert not sending.done()
    peer.setblocking(False)
    received = 0
    while received < 5_000_000:
        await asyncio.sleep(0)
        try:
            received += len(peer.recv(1 << 20))
        except BlockingIOError:
            pass
    await sending

    green.settimeout(0.1)
    start = time.monotonic()
    with pytest.raises(TimeoutError, match="timed out"):
        await spawn(loop, green.recv_into, buf)
    assert 0.09 < time.monotonic() - start < 1.0


async def test_peer_close_reads_as_end_of_stream(pair, io_loop):
    green, peer = pair
    loop = asyncio.get_running_loop()
    green.settimeout(5)
    pending = spawn(loop, green.recv_into, bytearray(10))
    loop.call_later(0.02, peer.close)
    assert await pending == 0


async def test_close_from_another_thread_while_idle(pair, io_loop):
    """PyMongo's monitor threads close pooled sockets: fileno() is -1 at once and the
    descriptor really closes (on the loop's thread where the layer needs it)."""
    green, peer = pair
    loop = asyncio.get_running_loop()
    green.settimeout(5)
    loop.call_later(0.01, peer.sendall, b"abc")
    assert await spawn(loop, green.recv_into, bytearray(10)) == 3
    closer = threading.Thread(target=green.close)
    closer.start()
    closer.join()
    assert green.fileno() == -1
    for _ in range(3):
        await asyncio.sleep(0)
    assert green._sock.fileno() == -1


def test_close_from_another_thread_while_the_loop_is_stopped(socket_layer, io_loop):
    """A connection closed by another thread between two runs of its loop (PyMongo's
    monitor resetting a pool, or MotorClient.close's closing thread after run_sync's last
    line) closes at once without touching the stopped loop's tables from that thread; when
    the loop runs again, a new socket that gets the same descriptor number works."""
    a, b = socket.socketpair()
    green = LAYER_CLASSES[socket_layer](a)
    green.settimeout(5)

    async def read_once() -> int:
        loop = asyncio.get_running_loop()
        loop.call_later(0.01, b.sendall, b"abc")
        return await spawn(loop, green.recv_into, bytearray(10))

    assert io_loop.run_sync(read_once) == 3  # the loop watches the descriptor, then stops
    number = a.fileno()
    closer = threading.Thread(target=green.close)
    closer.start()
    closer.join()
    assert green.fileno() == -1 and a.fileno() == -1  # closed at once
    b.close()

    c, d = socket.socketpair()
    reused = c if c.fileno() == number else d  # the lowest free numbers come back
    other = d if reused is c else c
    assert reused.fileno() == number
    green = LAYER_CLASSES[socket_layer](reused)
    green.settimeout(5)
    b = other
    assert io_loop.run_sync(read_once) == 3  # no "fd added twice", no stale wake-up
    green.close()
    io_loop.run_sync(lambda: asyncio.sleep(0))
    c.close()
    d.close()
