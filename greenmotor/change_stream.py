"""MotorChangeStream: ``watch()`` on a client, database or collection.

The stream is opened (an ``aggregate`` with ``$changeStream``) on first use, in a
greenlet; waiting for changes parks that greenlet, never a thread::

    async with collection.watch([{"$match": {"operationType": "insert"}}]) as stream:
        async for change in stream:
            print(change["fullDocument"])
"""

from __future__ import annotations

from typing import Any

from pymongo.synchronous.change_stream import ChangeStream

from greenmotor.cursor import NeverStarted
from greenmotor.metaprogramming import MotorWrapper

__all__ = ["MotorChangeStream"]


class MotorChangeStream(MotorWrapper):
    """A change stream; created by ``watch()``, opened on first ``next``/``try_next``."""

    __delegate_class__ = ChangeStream

    def __init__(
        self,
        target: MotorWrapper,
        pipeline: Any,
        full_document: Any,
        resume_after: Any,
        max_await_time_ms: Any,
        batch_size: Any,
        collation: Any,
        start_at_operation_time: Any,
        session: Any,
        start_after: Any,
        comment: Any,
        full_document_before_change: Any,
        show_expanded_events: Any,
    ) -> None:
        """Motor's constructor: every argument of ``watch()`` on ``target`` (the client,
        database or collection watched), all given, as ``watch`` does."""
        self.delegate = None
        self._client = target._client
        self._target = target.delegate
        if isinstance(session, MotorWrapper):  # a MotorClientSession; PyMongo's passes as is
            session = session.delegate
        self._kwargs = {
            "pipeline": pipeline,
            "full_document": full_document,
            "resume_after": resume_after,
            "max_await_time_ms": max_await_time_ms,
            "batch_size": batch_size,
            "collation": collation,
            "start_at_operation_time": start_at_operation_time,
            "session": session,
            "start_after": start_after,
            "comment": comment,
            "full_document_before_change": full_document_before_change,
            "show_expanded_events": show_expanded_events,
        }
        self._closed = False

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("not started" if self.delegate is None else "open")
        return f"<{type(self).__name__} {state} on {self._target!r}>"

    def _open(self) -> ChangeStream[Any]:
        # In a greenlet: opening the stream is an aggregate command.
        if self.delegate is None:
            self.delegate = self._target.watch(**self._kwargs)
        stream: ChangeStream[Any] = self.delegate
        return stream

    def _run(self, method: str, callback: Any) -> Any:
        return self._async_call(lambda: getattr(self._open(), method)(), callback)

    @property
    def alive(self) -> bool:
        """False once closed; a stream not yet opened is alive."""
        if self._closed:
            return False
        return True if self.delegate is None else self.delegate.alive

    @property
    def resume_token(self) -> Any:
        return None if self.delegate is None else self.delegate.resume_token

    def next(self, *, callback: Any = None) -> Any:
        """The next change; waits (without blocking the loop) until there is one.

        Raises ``StopAsyncIteration`` once the stream is closed.
        """
        return self._run("next", callback)

    def try_next(self, *, callback: Any = None) -> Any:
        """The next change, or None if none arrived during one getMore."""
        return self._run("try_next", callback)

    def close(self, *, callback: Any = None) -> Any:
        """Close the stream and kill its server cursor."""
        self._closed = True
        if self.delegate is None:
            self.delegate = NeverStarted()
        return self._run("close", callback)

    def __aiter__(self) -> MotorChangeStream:
        return self

    async def __anext__(self) -> Any:
        if not self.alive:
            raise StopAsyncIteration
        return await self.next()

    async def __aenter__(self) -> MotorChangeStream:
        """Open the stream now, as Motor does: changes made inside the block are seen."""
        if self.delegate is None:
            await self._async_call(self._open)
        return self

    async def __aexit__(self, exc_type: Any, exc_val: Any, exc_tb: Any) -> None:
        await self.close()

    # Opening and closing a stream are I/O: refuse "with", with Motor's exception.
    def __enter__(self) -> None:
        raise RuntimeError('Use a change stream in "async with", not "with"')

    def __exit__(self, exc_type: Any, exc_val: Any, exc_tb: Any) -> None:
        pass
