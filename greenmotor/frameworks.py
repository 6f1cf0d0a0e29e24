"""The two flavours of the public classes: Tornado's (``MotorClient``) and asyncio's
(``AsyncIOMotorClient``).

Both run on an asyncio event loop - Tornado's ``IOLoop`` wraps one - so they differ only in
what a user passes and gets back as ``io_loop`` and in the names of the classes. A
:class:`Framework` says those two things; :mod:`greenmotor.metaprogramming` builds each
flavour's classes from the same declarations::

    >>> from greenmotor.frameworks import ASYNCIO, TORNADO
    >>> ASYNCIO.class_prefix + "MotorClient"
    'AsyncIOMotorClient'
    >>> TORNADO
    <Framework tornado: io_loop is a tornado.ioloop.IOLoop>
"""

from __future__ import annotations

import asyncio
import warnings
from typing import Any

from tornado.ioloop import IOLoop

__all__ = ["ASYNCIO", "TORNADO", "Framework"]


class Framework:
    """How one flavour names its classes and finds, checks and runs on its ``io_loop``."""

    name: str
    class_prefix: str  # "AsyncIO" makes MotorClient's asyncio flavour AsyncIOMotorClient
    module: str  # the public module the flavour's classes are documented in
    loop_kind: str  # for messages: what io_loop must be
    loop_type: type[Any]  # what io_loop must be an instance of
    loop_type_name: str  # and how Motor's TypeError names it

    def __init__(self) -> None:
        #: Declared name ("MotorCursor") -> this flavour's class, filled as they are made.
        self.classes: dict[str, type] = {}

    def __repr__(self) -> str:
        return f"<Framework {self.name}: io_loop is {self.loop_kind}>"

    def check_io_loop(self, io_loop: Any) -> None:
        """Raise TypeError unless ``io_loop`` is this flavour's kind of loop (Motor's words)."""
        if not isinstance(io_loop, self.loop_type):
            raise TypeError(f"io_loop must be instance of {self.loop_type_name}, not {io_loop!r}")

    def current_io_loop(self) -> Any:
        """The loop a client given no ``io_loop`` runs an operation on when called here: the
        running loop, else this thread's current one (made and set if there is none)."""
        raise NotImplementedError

    def asyncio_loop(self, io_loop: Any) -> asyncio.AbstractEventLoop:
        """The asyncio loop that runs ``io_loop``'s callbacks (greenmotor's greenlets)."""
        raise NotImplementedError


class _Tornado(Framework):
    name = "tornado"
    class_prefix = ""
    module = "greenmotor.motor_tornado"
    loop_kind = "a tornado.ioloop.IOLoop"
    loop_type = IOLoop
    loop_type_name = "IOLoop"

    def current_io_loop(self) -> IOLoop:
        return IOLoop.current()

    def asyncio_loop(self, io_loop: Any) -> asyncio.AbstractEventLoop:
        loop: asyncio.AbstractEventLoop = io_loop.asyncio_loop  # Tornado's AsyncIOLoop's
        return loop


class _AsyncIO(Framework):
    name = "asyncio"
    class_prefix = "AsyncIO"
    module = "greenmotor.motor_asyncio"
    loop_kind = "an asyncio event loop"
    loop_type = asyncio.AbstractEventLoop
    loop_type_name = "asyncio-compatible event loop"

    def current_io_loop(self) -> asyncio.AbstractEventLoop:
        running = asyncio._get_running_loop()
        if running is not None:
            return running
        # Like Motor: the thread's current loop, made and set here if there is none yet.
        # (asyncio.get_event_loop() warns about that on newer Pythons and, in a thread
        # with no loop, raises; the outcome is the same either way.)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            try:
                return asyncio.get_event_loop()
            except RuntimeError:
                loop = asyncio.new_event_loop()
                asyncio.set_event_loop(loop)
                return loop

    def asyncio_loop(self, io_loop: Any) -> asyncio.AbstractEventLoop:
        loop: asyncio.AbstractEventLoop = io_loop  # the io_loop is the asyncio loop
        return loop


TORNADO: Framework = _Tornado()
ASYNCIO: Framework = _AsyncIO()
