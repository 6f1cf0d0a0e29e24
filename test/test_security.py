"""TLS and SCRAM-SHA-256 against real SecantusDB servers, with certificates made by trustme.

TLS: the handshake runs green (a peer that never completes it does not stall the loop),
the server's name is checked by default, and client certificates work. In the default
topology PyMongo's monitor threads connect with PyMongo's own TLS code while the operations'
connections use greenmotor's; ``loadBalanced=true`` (no monitor) isolates greenmotor's.

Authentication: good credentials work, bad ones raise OperationFailure like PyMongo, and
the password shows up in no log record, repr or error message.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid

import pymongo
import pytest
import trustme
from pymongo.errors import AutoReconnect, OperationFailure, ServerSelectionTimeoutError
from support.fault_helpers import (
    CommandRecorder,
    Stopwatch,
    app_pool,
    green_outcome,
    in_thread,
    sync_outcome,
)
from support.scripted_servers import SilentServer
from support.servers import SecantusServer

from greenmotor import MotorClient

pytestmark = pytest.mark.slow  # starts its own TLS and SCRAM servers (~20 s)

MAX_STALL = 0.050


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A CA and PEM files: a server cert for 127.0.0.1/localhost, one for another name, and
    a client cert."""
    directory = tmp_path_factory.mktemp("pki")
    ca = trustme.CA()
    files = {"ca": directory / "ca.pem"}
    ca.cert_pem.write_to_path(str(files["ca"]))
    for name, identities in {
        "good": ("127.0.0.1", "localhost"),
        "other": ("other.example",),
    }.items():
        cert = ca.issue_cert(*identities)
        files[f"{name}_cert"] = directory / f"{name}-cert.pem"
        files[f"{name}_key"] = directory / f"{name}-key.pem"
        for i, blob in enumerate(cert.cert_chain_pems):
            blob.write_to_path(str(files[f"{name}_cert"]), append=i > 0)
        cert.private_key_pem.write_to_path(str(files[f"{name}_key"]))
    client_cert = ca.issue_cert("client.example")
    files["client"] = directory / "client.pem"
    client_cert.private_key_and_cert_chain_pem.write_to_path(str(files["client"]))
    return {name: str(path) for name, path in files.items()}


@pytest.fixture(scope="module")
def tls_servers(pki):
    """Three TLS servers, started in parallel: a good certificate, a certificate for another
    host name, and one that demands a client certificate."""
    servers = {
        "good": SecantusServer("--tls-cert-file", pki["good_cert"], "--tls-key-file",
                               pki["good_key"]),
        "other": SecantusServer("--tls-cert-file", pki["other_cert"], "--tls-key-file",
                                pki["other_key"]),
        "mutual": SecantusServer("--tls-cert-file", pki["good_cert"], "--tls-key-file",
                                 pki["good_key"], "--tls-ca-file", pki["ca"],
                                 "--tls-require-client-cert"),
    }  # fmt: skip
    threads = [threading.Thread(target=s.start) for s in servers.values()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    servers["good"].wait_ready({"tls": True, "tlsCAFile": pki["ca"]})
    yield servers
    for server in servers.values():
        server.kill()


async def test_tls_operations_and_handshakes_keep_the_loop_live(
    pki, tls_servers, stall_monitor, io_loop
):
    client = MotorClient(
        tls_servers["good"].uri, tls=True, tlsCAFile=pki["ca"], maxPoolSize=20, io_loop=io_loop
    )
    coll = client.greenmotor_security.tls
    async with stall_monitor() as stalls:
        # Twenty operations at once: twenty TLS handshakes on greenmotor's own connections.
        await asyncio.gather(*[coll.insert_one({"i": i}) for i in range(20)])
        assert await coll.count_documents({}) == 20
    pool = app_pool(client)
    assert len(pool.conns) > 1
    for conn in pool.conns:
        assert conn.conn.sock.version() in ("TLSv1.2", "TLSv1.3")  # really encrypted
    assert stalls.longest < MAX_STALL, stalls
    await coll.drop()
    client.close()


async def test_a_tls_handshake_that_never_completes_times_out_green(pki, stall_monitor, io_loop):
    """The peer accepts TCP and never answers the ClientHello: the handshake parks its
    greenlet, fails after connectTimeoutMS, as PyMongo's own does."""
    with SilentServer() as port:
        uri = (
            f"mongodb://127.0.0.1:{port}/?loadBalanced=true&tls=true&connectTimeoutMS=400"
            f"&tlsCAFile={pki['ca']}"
        )

        def sync_run():
            with pymongo.MongoClient(uri) as client:
                return sync_outcome(lambda: client.admin.command("ping"))

        sync_result = await in_thread(sync_run)
        client = MotorClient(uri, io_loop=io_loop)
        async with stall_monitor() as stalls:
            with Stopwatch() as watch:
                result = await green_outcome(client.admin.command("ping"))
        client.close()
    assert result == sync_result
    assert result[:2] == ("error", "NetworkTimeout")
    assert watch.elapsed > 0.35  # at least one whole handshake timeout, spent parked
    assert stalls.ticks > 50 and stalls.longest < MAX_STALL, stalls


async def test_wrong_host_name_is_rejected_by_default(pki, tls_servers, io_loop):
    uri = tls_servers["other"].uri  # its certificate names other.example, not 127.0.0.1
    client = MotorClient(
        uri, tls=True, tlsCAFile=pki["ca"], serverSelectionTimeoutMS=1000, io_loop=io_loop
    )
    with pytest.raises(ServerSelectionTimeoutError, match="certificate verify failed"):
        await client.admin.command("ping")
    client.close()
    # greenmotor's own handshake code (no monitor in load-balanced mode) rejects it too,
    # with the error PyMongo's code gives.
    lb_uri = f"{uri}?loadBalanced=true&tls=true&tlsCAFile={pki['ca']}"

    def sync_run():
        with pymongo.MongoClient(lb_uri) as client:
            try:
                client.admin.command("ping")
            except AutoReconnect as exc:
                return type(exc), str(exc)

    sync_error = await in_thread(sync_run)
    client = MotorClient(lb_uri, io_loop=io_loop)
    with pytest.raises(AutoReconnect) as info:
        await client.admin.command("ping")
    client.close()
    assert (type(info.value), str(info.value)) == sync_error
    assert "IP address mismatch" in str(info.value)


async def test_host_name_check_can_be_switched_off_explicitly(pki, tls_servers, io_loop):
    client = MotorClient(
        tls_servers["other"].uri,
        tls=True,
        tlsCAFile=pki["ca"],
        tlsAllowInvalidHostnames=True,
        io_loop=io_loop,
    )
    assert (await client.admin.command("ping"))["ok"] == 1.0
    client.close()


async def test_untrusted_certificate_is_rejected(tls_servers, tmp_path, io_loop):
    stranger = tmp_path / "stranger-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(stranger))  # a CA that signed nothing here
    client = MotorClient(
        tls_servers["good"].uri,
        tls=True,
        tlsCAFile=str(stranger),
        serverSelectionTimeoutMS=1000,
        io_loop=io_loop,
    )
    with pytest.raises(ServerSelectionTimeoutError, match="certificate verify failed"):
        await client.admin.command("ping")
    client.close()


async def test_client_certificate(pki, tls_servers, io_loop):
    uri = tls_servers["mutual"].uri
    without = MotorClient(
        uri, tls=True, tlsCAFile=pki["ca"], serverSelectionTimeoutMS=1000, io_loop=io_loop
    )
    with pytest.raises(ServerSelectionTimeoutError):
        await without.admin.command("ping")
    without.close()
    client = MotorClient(
        uri, tls=True, tlsCAFile=pki["ca"], tlsCertificateKeyFile=pki["client"], io_loop=io_loop
    )
    # These operations run on greenmotor's connections, each presenting the certificate.
    await asyncio.gather(*[client.greenmotor_security.mutual.insert_one({}) for _ in range(5)])
    assert await client.greenmotor_security.mutual.count_documents({}) == 5
    await client.drop_database("greenmotor_security")
    client.close()


# --- SCRAM-SHA-256 -------------------------------------------------------------------------

PASSWORD = f"pw-{uuid.uuid4().hex}"  # distinctive, so any leak is found by a plain search
WRONG_PASSWORD = f"wrong-{uuid.uuid4().hex}"


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory):
    """SecantusDB with --auth and a user "alice". Users are created on the server started
    without --auth, then it restarts with --auth on the same (synced) storage."""
    storage = str(tmp_path_factory.mktemp("auth-data"))
    setup = SecantusServer("--storage-path", storage, "--sync-on-commit")
    setup.start()
    with pymongo.MongoClient(setup.uri, serverSelectionTimeoutMS=30_000) as plain:
        plain.admin.command(
            "createUser", "alice", pwd=PASSWORD, roles=["root"], mechanisms=["SCRAM-SHA-256"]
        )
    setup.kill()
    server = SecantusServer("--storage-path", storage, "--auth", port=setup.port)
    server.start()
    yield server
    server.kill()


class RecordEverything(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.text: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.text.append(f"{record.name} {record.getMessage()} {record.__dict__}")


@pytest.fixture
def all_logs():
    """Every log record of every logger, PyMongo's DEBUG-level structured logs included."""
    handler = RecordEverything()
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield handler
    root.removeHandler(handler)
    root.setLevel(old_level)


async def test_scram_sha_256_good_credentials(auth_server, stall_monitor, io_loop):
    recorder = CommandRecorder(ignore=())
    client = MotorClient(
        auth_server.uri,
        username="alice",
        password=PASSWORD,
        authMechanism="SCRAM-SHA-256",
        maxPoolSize=10,
        event_listeners=[recorder],
        io_loop=io_loop,
    )
    coll = client.greenmotor_security.auth
    async with stall_monitor() as stalls:
        # Ten connections, each authenticating in its own greenlet.
        await asyncio.gather(*[coll.insert_one({"i": i}) for i in range(10)])
    assert await coll.count_documents({}) == 10
    # The first SCRAM step rides in the handshake's hello (speculative authentication).
    assert recorder.attempts("saslContinue") == [("saslContinue", "succeeded")] * len(
        app_pool(client).conns
    )
    # PBKDF2 (15,000 rounds, ~10 ms here) runs on the loop's thread once per credential;
    # PyMongo caches the derived keys for the other connections.
    assert stalls.longest < MAX_STALL, stalls
    await coll.drop()
    client.close()


async def test_password_never_logged_with_debug_logging_on(auth_server, all_logs, io_loop):
    recorder = CommandRecorder(ignore=())
    client = MotorClient(
        auth_server.uri,
        username="alice",
        password=PASSWORD,
        authMechanism="SCRAM-SHA-256",
        event_listeners=[recorder],
        io_loop=io_loop,
    )
    coll = client.greenmotor_security.logged
    await asyncio.gather(*[coll.insert_one({"i": i}) for i in range(3)])
    assert await coll.count_documents({}) == 3
    await coll.drop()
    assert any("Connection ready" in text for text in all_logs.text)  # handshakes were logged...
    # ... and neither the logs, the reprs nor the command events hold the password.
    assert_no_secret(all_logs, client, coll, [repr(e) for e in recorder.events])
    client.close()


async def test_scram_sha_256_bad_credentials_fail_like_pymongo(auth_server, all_logs, io_loop):
    # A failed authentication marks the server Unknown; polling monitors find it again fast.
    options = dict(
        username="alice",
        password=WRONG_PASSWORD,
        authMechanism="SCRAM-SHA-256",
        serverMonitoringMode="poll",
    )

    def sync_run():
        with pymongo.MongoClient(auth_server.uri, **options) as plain:
            return sync_outcome(lambda: plain.greenmotor_security.auth.find_one())

    sync_result = await in_thread(sync_run)
    client = MotorClient(auth_server.uri, io_loop=io_loop, **options)
    with pytest.raises(OperationFailure) as info:
        await client.greenmotor_security.auth.find_one()
    assert ("error", "OperationFailure", info.value.code, ()) == sync_result
    assert info.value.code == 18  # AuthenticationFailed
    # The client stays usable for the next attempt (it fails the same way, it doesn't hang).
    with pytest.raises(OperationFailure):
        await asyncio.wait_for(client.greenmotor_security.auth.find_one(), 10)
    messages = [str(info.value), repr(info.value), repr(info.value.details)]
    assert_no_secret(
        all_logs, client, client.greenmotor_security, messages, secrets=(PASSWORD, WRONG_PASSWORD)
    )
    client.close()


async def test_credentials_in_the_uri_stay_out_of_reprs(auth_server, all_logs, io_loop):
    host = auth_server.uri.split("//", 1)[1].rstrip("/")
    client = MotorClient(
        f"mongodb://alice:{PASSWORD}@{host}/?authMechanism=SCRAM-SHA-256", io_loop=io_loop
    )
    assert (await client.admin.command("ping"))["ok"] == 1.0
    assert (await client.greenmotor_security.list_collection_names()) is not None
    assert_no_secret(
        all_logs,
        client,
        client.greenmotor_security,
        [repr(client.options), str(client.topology_description)],
    )
    client.close()


async def test_no_credentials_on_an_auth_server(auth_server, io_loop):
    client = MotorClient(auth_server.uri, io_loop=io_loop)
    with pytest.raises(OperationFailure) as info:
        await client.greenmotor_security.auth.find_one()
    assert info.value.code == 13  # Unauthorized
    client.close()


def assert_no_secret(logs, client, obj, extra_texts, secrets=(PASSWORD,)) -> None:
    texts = logs.text + [repr(client), repr(obj), str(client.delegate)] + list(extra_texts)
    assert logs.text, "the DEBUG log capture recorded nothing; it would prove nothing"
    for secret in secrets:
        leaks = [text for text in texts if secret in text]
        assert leaks == [], leaks[:3]
