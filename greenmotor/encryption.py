"""Client-side field level encryption is not offered by greenmotor yet.

PyMongo's ``ClientEncryption`` talks to key management services over its own blocking
sockets and HTTP, outside the connection pools greenmotor makes green; running it on the
loop's thread would block the loop. The name exists so ``motor_tornado`` imports keep
working, and using it says so.
"""

from __future__ import annotations

from typing import Any

from greenmotor.metaprogramming import MotorWrapper

__all__ = ["MotorClientEncryption"]


class MotorClientEncryption(MotorWrapper):
    """Not supported: raises ``NotImplementedError`` naming the alternative."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise NotImplementedError(
            "greenmotor does not support client-side field level encryption; its key "
            "management I/O would block the IOLoop. Use motor (thread pool) or PyMongo's "
            "AsyncMongoClient for encrypted collections."
        )
