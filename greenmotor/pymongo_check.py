"""Fail at import, with a clear message, on a PyMongo greenmotor has not been tested with.

greenmotor reaches into a few private places of PyMongo: its socket factory, its read loop,
its pool's wait queues, its client's opening, its KMS requests for client-side encryption.
Private names move between minor releases, so :data:`SUPPORTED` says, for each PyMongo minor
greenmotor is tested with, which places it relies on there and what it relies on in each
(a :class:`Hook`). At import,
:func:`check_pymongo` checks that the installed PyMongo is one of those minors and that every
one of its hooks still holds.

Supporting a new minor is a day's work: ``tools/try-pymongo X.Y.Z`` installs it in a scratch
environment, checks these hooks against it, runs the test suite and a conformance subset, and
reports which hooks moved since the newest supported minor. Then add its line to
:data:`SUPPORTED` (and the range in ``setup.cfg``: a test keeps the two in step).

``GREENMOTOR_UNTESTED_PYMONGO=1`` lets greenmotor import on a minor missing from the table if
the newest minor's hooks all hold there; the playbook uses it to run the suites on a new
release. Hooks that do not hold still fail the import.
"""

from __future__ import annotations

import importlib
import inspect
import os
from dataclasses import dataclass

import pymongo


@dataclass(frozen=True)
class Hook:
    """One place in PyMongo greenmotor relies on, and what it relies on there.

    ``place`` is ``"module:qualified.name"``. The checks are on what the code *does*, read
    from its code object, so that a refactoring that keeps them passes and one that drops
    them fails:

    * ``looks_up``: names its code must look up - globals greenmotor swaps in a copy of the
      function (``pymongo_hooks.with_globals``), or attributes it must set, which greenmotor
      replaces or reads afterwards;
    * ``strings``: constants its code must contain (keyword arguments or keys it reads);
    * ``params``: its parameter names, where greenmotor's replacement takes the same
      arguments.
    """

    place: str
    why: str
    looks_up: frozenset[str] = frozenset()
    strings: frozenset[str] = frozenset()
    params: tuple[str, ...] | None = None

    @property
    def module(self) -> str:
        return self.place.partition(":")[0]

    @property
    def qualname(self) -> str:
        return self.place.partition(":")[2]

    def problem(self) -> str | None:
        """What no longer holds in the installed PyMongo, or None."""
        try:
            obj: object = importlib.import_module(self.module)
        except ImportError:
            return f"{self.module} is missing"
        for part in self.qualname.split("."):
            try:
                obj = inspect.getattr_static(obj, part)
            except AttributeError:
                return f"{self.place} is missing"
        if self.looks_up or self.strings:
            code = getattr(obj, "__code__", None)
            if code is None:
                return f"{self.place} is no longer a function"
            missing = sorted(self.looks_up - set(code.co_names))
            if missing:
                return f"{self.place} no longer looks up {', '.join(missing)}"
            missing = sorted(self.strings - {c for c in code.co_consts if isinstance(c, str)})
            if missing:
                return f"{self.place} no longer uses {', '.join(map(repr, missing))}"
        if self.params is not None:
            if not callable(obj):
                return f"{self.place} is no longer callable"
            params = tuple(inspect.signature(obj).parameters)
            if params != self.params:
                return (
                    f"{self.place} now takes ({', '.join(params)}), not ({', '.join(self.params)})"
                )
        return None


def _hook(
    place: str, why: str, looks_up: str = "", strings: str = "", params: str | None = None
) -> Hook:
    return Hook(
        place,
        why,
        frozenset(looks_up.split()),
        frozenset(strings.split()),
        None if params is None else tuple(params.split()),
    )


# Hooks every supported minor offers alike.
_COMMON = (
    _hook(
        "pymongo.synchronous.pool:Pool.connect",
        "GreenPool.connect runs a copy of it with greenmotor's socket factory and Connection",
        looks_up="_configured_socket_interface Connection",
        params="self handler",
    ),
    _hook(
        "pymongo.synchronous.pool:Pool.__init__",
        "GreenPool replaces the two wait-queue conditions it creates on its lock",
        looks_up="lock size_cond _max_connecting_cond",
    ),
    _hook(
        "pymongo.synchronous.pool:Connection.receive_message",
        "GreenConnection reads through a copy of it that calls green_socket.receive_data",
        looks_up="receive_message",
    ),
    _hook(
        "pymongo.network_layer:receive_message",
        "GreenConnection copies it to read with green_socket.receive_data",
        looks_up="receive_data",
    ),
    _hook(
        "pymongo.network_layer:receive_data",
        "green_socket.receive_data takes its place, with the same contract",
        params="conn length deadline",
    ),
    _hook(
        "pymongo.network_layer:NetworkingInterface.sock",
        "green_socket.receive_data finds the GreenSocket as conn.conn.sock",
    ),
    _hook(
        "pymongo.pool_shared:_configured_socket_interface",
        "green_socket.green_socket_interface re-implements it for greenmotor's pools",
        params="address options ssl_session_cache",
    ),
    _hook(
        "pymongo.pool_shared:_create_connection",
        "green_socket._connect_tcp re-implements it (DNS, connect, socket options)",
    ),
    _hook(
        "pymongo.pool_shared:_configured_socket",
        "green_socket.green_socket_interface re-implements its TLS handshake; green_kms "
        "replaces it in its copy of _connect_kms",
        params="address options",
    ),
    _hook(
        "pymongo.pool_shared:_CancellationContext.cancel",
        "GreenCancellation extends it to wake a parked greenlet",
    ),
    _hook(
        "pymongo.pool_shared:_get_ssl_session",
        "green_socket caches TLS sessions with it",
        params="ssl_sock",
    ),
    _hook(
        "pymongo.pool_shared:_get_timeout_details",
        "green_socket's TLS errors name the timeouts",
        params="options",
    ),
    _hook(
        "pymongo.pool_shared:_raise_connection_failure",
        "green_socket raises TLS handshake failures through it",
        params="address error msg_prefix timeout_details",
    ),
    _hook(
        "pymongo.pool_shared:_set_keepalive_times",
        "green_socket sets keepalive with it",
        params="sock",
    ),
    _hook(
        "pymongo.errors:_OperationCancelled",
        "green_socket.receive_data raises it when the connection is cancelled",
    ),
    _hook(
        "pymongo._csot:remaining", "green_socket bounds connects by the CSOT deadline", params=""
    ),
    _hook(
        "pymongo.synchronous.mongo_client:MongoClient._get_topology",
        "GreenMongoClient opens mongodb+srv clients off the loop, keyed on these",
        looks_up="_opened _resolve_srv_info",
        strings="is_srv",
    ),
    _hook(
        "pymongo.synchronous.mongo_client:MongoClient.__init__",
        "green_mongo_client() passes these keyword arguments",
        strings="_pool_class _condition_class",
    ),
    _hook(
        "pymongo.synchronous.mongo_client:time",
        "install_green_sleeps swaps the module its retry back-off sleeps with",
    ),
    _hook(
        "pymongo.synchronous.client_session:time",
        "install_green_sleeps swaps the module with_transaction sleeps with",
    ),
    # Client-side field level encryption (greenmotor/green_kms.py).
    _hook(
        "pymongo.synchronous._kms_connect:_connect_kms",
        "green_kms runs a copy of it with green connect and TLS wrapping",
        looks_up="_configured_socket _wrap_socket_tls",
        params="address opts kms_connect_callback timeout",
    ),
    _hook(
        "pymongo.pool_shared:_wrap_socket_tls",
        "green_kms replaces it in its copy of _connect_kms",
        params="sock address options",
    ),
    _hook(
        "pymongo.synchronous.encryption:_EncryptionIO.kms_request",
        "GreenEncryptionIO runs a copy of it with green connect, TLS context and sleep",
        looks_up="_connect_kms get_ssl_context time",
    ),
    _hook(
        "pymongo.synchronous.encryption:_EncryptionIO.spawn",
        "GreenEncryptionIO spawns mongocryptd off the loop",
        looks_up="_spawn_daemon",
    ),
    _hook(
        "pymongo.synchronous.encryption:ClientEncryption.__init__",
        "GreenClientEncryption builds a GreenEncryptionIO in a copy of it",
        looks_up="_EncryptionIO",
    ),
    _hook(
        "pymongo.synchronous.encryption:_Encrypter.__init__",
        "GreenEncrypter builds a GreenEncryptionIO and a green mongocryptd client in a copy",
        looks_up="_EncryptionIO MongoClient",
    ),
    _hook(
        "pymongo.daemon:_spawn_daemon", "green_kms runs it in the loop's executor", params="args"
    ),
    _hook(
        "pymongo.synchronous.mongo_client:MongoClient._init_based_on_options",
        "MotorClient replaces the _Encrypter it builds for auto_encryption_opts",
        looks_up="_encrypter",
    ),
)

#: PyMongo minor -> the hooks greenmotor relies on in it. The newest minor comes last.
SUPPORTED: dict[tuple[int, int], tuple[Hook, ...]] = {
    (4, 19): _COMMON
    + (
        _hook(
            "pymongo.synchronous.pool:Pool.__init__",
            "GreenPool keeps monitor pools plain by is_sdam",
            looks_up="is_sdam",
        ),
        _hook(
            "pymongo.synchronous.pool:Connection.__init__",
            "GreenConnection replaces the cancel flag it creates",
            looks_up="cancel_context",
        ),
    ),
    # 4.20 moved the bodies of Pool.__init__ and Connection.__init__ to shared base classes.
    (4, 20): _COMMON
    + (
        _hook(
            "pymongo.pool_shared:_AgnosticBasePool.__init__",
            "GreenPool keeps monitor pools plain by is_sdam",
            looks_up="is_sdam",
        ),
        _hook(
            "pymongo.pool_shared:_AgnosticBaseConnection.__init__",
            "GreenConnection replaces the cancel flag it creates",
            looks_up="cancel_context",
        ),
    ),
}

_OLDEST, _NEWEST = min(SUPPORTED), max(SUPPORTED)
SUPPORTED_RANGE = f"pymongo>={_OLDEST[0]}.{_OLDEST[1]},<{_NEWEST[0]}.{_NEWEST[1] + 1}"
UNTESTED_ENV = "GREENMOTOR_UNTESTED_PYMONGO"


def installed_minor() -> tuple[int, int]:
    return (int(pymongo.version_tuple[0]), int(pymongo.version_tuple[1]))


def hooks_for(minor: tuple[int, int]) -> tuple[Hook, ...]:
    """The hooks of a supported minor; for any other, the newest minor's (what we hope holds)."""
    return SUPPORTED.get(minor, SUPPORTED[_NEWEST])


def hook_problems(hooks: tuple[Hook, ...] | None = None) -> list[str]:
    """What no longer holds, of ``hooks`` (default: the installed minor's)."""
    hooks = hooks_for(installed_minor()) if hooks is None else hooks
    return [p for p in (hook.problem() for hook in hooks) if p is not None]


def check_pymongo() -> None:
    problems = hook_problems()
    if installed_minor() not in SUPPORTED and os.environ.get(UNTESTED_ENV) != "1":
        problems.insert(0, f"PyMongo {pymongo.version} is installed")
    if problems:
        raise ImportError(
            f"greenmotor supports {SUPPORTED_RANGE}, but: {'; '.join(problems)}. "
            f"Install a supported PyMongo: pip install '{SUPPORTED_RANGE}'"
        )
