"""How an operation's outcome reaches the caller: a Future, or Motor's ``callback=``.

Every public method that does I/O runs PyMongo in a greenlet (:func:`greenmotor.core.spawn`)
and answers the same way: a Future to ``await``, or - given ``callback=fn`` - None now and
``fn(result, error)`` later on the loop's thread. The arguments are checked first, in the
caller's frame, so a misuse raises where it was made rather than inside a greenlet::

    future = deliver(spawn(loop, fn), callback=None)        # await future
    deliver(spawn(loop, fn), callback=lambda result, error: print(result, error))

The session check lives here too: a ``session=`` argument must be a session, which the
declared methods and the hand-written ones alike verify before any work starts.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from typing import Any

from pymongo.synchronous.client_session import ClientSession

__all__ = ["check_callback", "check_session", "consume_exception", "deliver"]

#: What a ``callback=`` receives: ``(result, None)`` or ``(None, error)``.
Callback = Callable[[Any, Any], Any]


def check_callback(callback: object) -> None:
    """Refuse a ``callback=`` that is given but cannot be called (None means "no callback").

    ``check_callback(None)`` and ``check_callback(print)`` pass; ``check_callback("print")``
    raises TypeError saying what a callback takes, and that the Future is the other way.
    """
    if callback is not None and not callable(callback):
        raise TypeError(
            f"callback must be a callable taking (result, error), not {callback!r}; "
            "or leave it out and await the returned Future"
        )


def check_session(session: object) -> None:
    """Refuse a ``session=`` that is not a session (given the PyMongo object it wraps).

    ``session`` is what PyMongo will receive: a MotorClientSession's ``delegate``, or, as
    Motor also accepts, PyMongo's own ``ClientSession``. None means "no session".
    """
    if session is not None and not isinstance(session, ClientSession):
        raise TypeError(
            f"session must be a MotorClientSession (from await client.start_session()), "
            f"not {session!r}"
        )


def _call_back(callback: Callback, future: asyncio.Future[Any]) -> None:
    """Future done-callback: call ``callback(result, error)``, always in a later iteration."""
    if future.cancelled():
        callback(None, asyncio.CancelledError())
    elif future.exception() is not None:
        callback(None, future.exception())
    else:
        callback(future.result(), None)


def deliver(future: asyncio.Future[Any], callback: Callback | None) -> asyncio.Future[Any] | None:
    """``future`` itself, or - with a callback - None, and the callback once it is done.

    The callback must have been checked with :func:`check_callback` before the work started.
    """
    if callback is None:
        return future
    future.add_done_callback(functools.partial(_call_back, callback))
    return None


def consume_exception(future: asyncio.Future[Any]) -> None:
    """Done-callback for a Future nobody awaits: its error must not be logged as lost."""
    if not future.cancelled():
        future.exception()
