"""MotorClientSession: causally consistent sessions and multi-document transactions.

::

    async with await client.start_session() as session:
        async with session.start_transaction():
            await orders.insert_one({"sku": "abc", "qty": 1}, session=session)
            await stock.update_one({"sku": "abc"}, {"$inc": {"qty": -1}}, session=session)
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

from pymongo.errors import PyMongoError
from pymongo.synchronous.client_session import ClientSession

from greenmotor.metaprogramming import Async, Delegate, MotorWrapper, ReadOnly

__all__ = ["MotorClientSession"]

# The convenient transaction API gives up retrying after this long (transactions spec);
# read at each check, so a test may lower it (Motor's is motor.core's private
# _WITH_TRANSACTION_RETRY_TIME_LIMIT).
WITH_TRANSACTION_TIME_LIMIT = 120.0
_MAX_TIME_EXPIRED = 50


class MotorClientSession(MotorWrapper):
    """A session; get one with ``await client.start_session()``."""

    __delegate_class__ = ClientSession

    abort_transaction = Async()
    commit_transaction = Async()
    end_session = Async()
    advance_cluster_time = Delegate()
    advance_operation_time = Delegate()
    cluster_time = ReadOnly()
    has_ended = ReadOnly()
    in_transaction = ReadOnly()
    options = ReadOnly()
    operation_time = ReadOnly()
    session_id = ReadOnly()

    @classmethod
    def __class_getitem__(cls, item: Any) -> Any:
        # Motor's session class is not generic (its client, database... are).
        raise TypeError(f"type '{cls.__name__}' is not subscriptable")

    def __init__(self, delegate: ClientSession, motor_client: Any) -> None:
        # Get sessions from ``await client.start_session()``; this is Motor's signature.
        self.delegate = delegate
        self._client = motor_client

    @property
    def client(self) -> Any:
        """The MotorClient this session belongs to."""
        return self._client

    def start_transaction(
        self,
        read_concern: Any = None,
        write_concern: Any = None,
        read_preference: Any = None,
        max_commit_time_ms: int | None = None,
    ) -> _TransactionContext:
        """Start a transaction (no I/O); use the result with ``async with``.

        Leaving the block commits, or aborts if it raised.
        """
        self.delegate.start_transaction(
            read_concern=read_concern,
            write_concern=write_concern,
            read_preference=read_preference,
            max_commit_time_ms=max_commit_time_ms,
        )
        return _TransactionContext(self)

    async def with_transaction(
        self,
        coro: Callable[[MotorClientSession], Awaitable[Any]],
        read_concern: Any = None,
        write_concern: Any = None,
        read_preference: Any = None,
        max_commit_time_ms: int | None = None,
    ) -> Any:
        """Run ``await coro(session)`` in a transaction and commit it, retrying as the spec says.

        A ``TransientTransactionError`` (from ``coro`` or the commit) re-runs the whole
        transaction; an ``UnknownTransactionCommitResult`` retries the commit. Retries stop
        after 120 seconds, when the last error is raised. So ``coro`` may run more than once;
        the transaction is committed at most once. Returns what ``coro`` returned.
        """
        started = time.monotonic()

        def time_left() -> bool:
            return time.monotonic() - started < WITH_TRANSACTION_TIME_LIMIT

        attempt = 0
        while True:
            if attempt:
                # Back off with jitter so conflicting transactions stop colliding.
                await asyncio.sleep(random.random() * min(0.005 * 1.5**attempt, 0.5))
            attempt += 1
            self.start_transaction(read_concern, write_concern, read_preference, max_commit_time_ms)
            try:
                result = await coro(self)
            except BaseException as exc:
                if self.in_transaction:
                    await self.abort_transaction()
                if _has_label(exc, "TransientTransactionError") and time_left():
                    continue
                raise
            if not self.in_transaction:
                return result  # coro committed or aborted on purpose
            if await self._commit_with_retries(time_left):
                return result

    async def _commit_with_retries(self, time_left: Callable[[], bool]) -> bool:
        """Commit; True when done, False when the whole transaction must be retried."""
        while True:
            try:
                await self.commit_transaction()
                return True
            except PyMongoError as exc:
                unknown = exc.has_error_label("UnknownTransactionCommitResult")
                if unknown and time_left() and not _is_max_time_expired(exc):
                    continue
                if exc.has_error_label("TransientTransactionError") and time_left():
                    return False
                raise

    def bind(self, end_session: bool = True) -> _BoundSession:
        """Pass this session implicitly to every operation inside ``async with``.

        ::

            async with await client.start_session() as session:
                async with session.bind():
                    await collection.insert_one({"x": 1})   # session=session implied

        Leaving the block ends the session unless ``end_session=False``.
        """
        return _BoundSession(self, end_session)

    async def __aenter__(self) -> MotorClientSession:
        return self

    async def __aexit__(self, exc_type: Any, exc_val: Any, exc_tb: Any) -> None:
        await self.end_session()

    def __enter__(self) -> None:
        raise AttributeError(
            "Use Motor sessions like 'async with await client.start_session()', not 'with'"
        )

    def __exit__(self, exc_type: Any, exc_val: Any, exc_tb: Any) -> None:
        pass


def _has_label(exc: BaseException, label: str) -> bool:
    return isinstance(exc, PyMongoError) and exc.has_error_label(label)


def _is_max_time_expired(exc: PyMongoError) -> bool:
    details = getattr(exc, "details", None) or {}
    code = getattr(exc, "code", None)
    wce = details.get("writeConcernError", {}) if isinstance(details, dict) else {}
    return code == _MAX_TIME_EXPIRED or wce.get("code") == _MAX_TIME_EXPIRED


class _BoundSession:
    """``async with session.bind():`` - PyMongo's bound-session context, made async.

    Binding sets PyMongo's session contextvar in the caller's context, which every
    operation's greenlet copies; ending the session on exit is I/O, so it is awaited.
    """

    def __init__(self, session: MotorClientSession, end_session: bool) -> None:
        self._session = session
        self._binding = session.delegate.bind(end_session=False)
        self._end_session = end_session

    def __repr__(self) -> str:
        return f"<bound {self._session!r}>"

    async def __aenter__(self) -> MotorClientSession:
        self._binding.__enter__()
        return self._session

    async def __aexit__(self, *exc: Any) -> None:
        self._binding.__exit__(*exc)
        if self._end_session:
            await self._session.end_session()


class _TransactionContext:
    """``async with session.start_transaction():`` commits on success, aborts on error."""

    def __init__(self, session: MotorClientSession) -> None:
        self._session = session

    def __repr__(self) -> str:
        return f"<transaction of {self._session!r}>"

    async def __aenter__(self) -> _TransactionContext:
        return self

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if not self._session.in_transaction:
            return
        if exc_type is None:
            await self._session.commit_transaction()
        else:
            await self._session.abort_transaction()
