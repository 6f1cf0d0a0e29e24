"""Client-side field level encryption: MotorClientEncryption, and KMS I/O that never blocks.

Functional tests use the ``local`` KMS provider (a 96-byte master key, no network) against
the suite's SecantusDB. The KMS tests use a fake AWS KMS: a TLS server on 127.0.0.1 (certificate
from ``trustme``) that answers ``Encrypt``/``Decrypt`` after a delay, so a blocking KMS
request would show as a loop stall. Errors are compared with what plain PyMongo raises
against the same server.
"""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
import threading
import time
import uuid
import warnings

import pymongo
import pytest
from bson.binary import STANDARD, UUID_SUBTYPE, Binary
from bson.codec_options import CodecOptions
from pymongo.errors import (
    ConfigurationError,
    EncryptedCollectionError,
    EncryptionError,
    InvalidOperation,
    NetworkTimeout,
    ServerSelectionTimeoutError,
)

pytest.importorskip("pymongocrypt", reason="client-side encryption needs pymongocrypt")
trustme = pytest.importorskip("trustme", reason="the fake KMS needs trustme certificates")

from pymongo.encryption import Algorithm, ClientEncryption  # noqa: E402
from pymongo.encryption_options import AutoEncryptionOpts  # noqa: E402
from pymongo.synchronous.encryption import _EncryptionIO  # noqa: E402
from support.servers import free_port  # noqa: E402

import greenmotor  # noqa: E402
from greenmotor.core import spawn  # noqa: E402
from greenmotor.green_kms import (  # noqa: E402
    GreenClientEncryption,
    GreenEncrypter,
    GreenEncryptionIO,
)
from greenmotor.motor_asyncio import (  # noqa: E402
    AsyncIOMotorClient,
    AsyncIOMotorClientEncryption,
    AsyncIOMotorCursor,
)

MAX_STALL = 0.050
LOCAL = {"local": {"key": b"\x01" * 96}}
OPTS = CodecOptions(uuid_representation=STANDARD)
DETERMINISTIC = Algorithm.AEAD_AES_256_CBC_HMAC_SHA_512_Deterministic
RANDOM = Algorithm.AEAD_AES_256_CBC_HMAC_SHA_512_Random
AWS_CREDENTIALS = {"aws": {"accessKeyId": "AKIAEXAMPLE", "secretAccessKey": "not-a-secret"}}
AWS_KEY_ARN = "arn:aws:kms:us-east-1:123456789012:key/greenmotor-test"


# A fake AWS KMS ----------------------------------------------------------------------------


class FakeAwsKms:
    """AWS KMS's Encrypt/Decrypt over HTTPS on 127.0.0.1, answering after ``delay`` seconds.

    The "encryption" is the identity: what a data key's master key does to it doesn't
    matter here, only that libmongocrypt gets a well-formed answer. ``mode``:
    ``"answer"``, ``"close"`` (read the request, close without answering) or ``"hang"``
    (read the request, then wait for the client to close; ``closed_by_client`` is set).
    """

    def __init__(self, ca: trustme.CA, delay: float = 0.0, mode: str = "answer") -> None:
        self.delay = delay
        self.mode = mode
        self.requests: list[str] = []  # X-Amz-Target of each request read
        self.closed_by_client = threading.Event()
        self._tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("127.0.0.1").configure_cert(self._tls)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._closing = False
        threading.Thread(target=self._accept, daemon=True, name="fake-kms").start()

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    def master_key(self) -> dict:
        return {"region": "us-east-1", "key": AWS_KEY_ARN, "endpoint": self.endpoint}

    def close(self) -> None:
        self._closing = True
        self._listener.close()

    def _accept(self) -> None:
        while not self._closing:
            try:
                raw, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(raw,), daemon=True).start()

    def _serve(self, raw: socket.socket) -> None:
        try:
            with self._tls.wrap_socket(raw, server_side=True) as conn:
                target, body = self._read_request(conn)
                self.requests.append(target)
                if self.mode == "close":
                    return
                if self.mode == "hang":
                    while conn.recv(1024):
                        pass
                    self.closed_by_client.set()
                    return
                time.sleep(self.delay)
                conn.sendall(self._answer(target, body))
        except (OSError, ValueError):
            pass  # a client that gave up, or failed the TLS handshake on purpose

    @staticmethod
    def _read_request(conn: ssl.SSLSocket) -> tuple[str, dict]:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                raise OSError("client closed before a full request")
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        headers = {}
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip()
        while len(body) < int(headers[b"content-length"]):
            body += conn.recv(65536)
        return headers[b"x-amz-target"].decode(), json.loads(body)

    @staticmethod
    def _answer(target: str, request: dict) -> bytes:
        if target == "TrentService.Encrypt":
            reply = {"CiphertextBlob": request["Plaintext"], "KeyId": AWS_KEY_ARN}
        else:
            reply = {"Plaintext": request["CiphertextBlob"], "KeyId": AWS_KEY_ARN}
        body = json.dumps(reply).encode()
        return (
            b"HTTP/1.1 200 OK\r\nContent-Type: application/x-amz-json-1.1\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
        )


@pytest.fixture(scope="module")
def kms_ca(tmp_path_factory):
    ca = trustme.CA()
    path = tmp_path_factory.mktemp("kms") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return ca, str(path)


@pytest.fixture
def fake_kms(kms_ca):
    servers = []

    def make(delay: float = 0.0, mode: str = "answer") -> FakeAwsKms:
        servers.append(FakeAwsKms(kms_ca[0], delay, mode))
        return servers[-1]

    yield make
    for server in servers:
        server.close()


@pytest.fixture
def kms_tls(kms_ca):
    return {"aws": {"tlsCAFile": kms_ca[1]}}


@pytest.fixture
def key_vault(sync_client):
    """A fresh key vault namespace, dropped afterwards."""
    db_name = f"greenmotor_keyvault_{uuid.uuid4().hex[:8]}"
    yield f"{db_name}.datakeys"
    sync_client.drop_database(db_name)


@pytest.fixture
def client_encryption(client, key_vault):
    ce = greenmotor.MotorClientEncryption(LOCAL, key_vault, client, OPTS)
    yield ce
    ce.delegate.close()  # no I/O: the local provider and an explicit ClientEncryption


def in_thread(fn, *args, **kwargs):
    """fn's result or exception, run in a plain thread (sync PyMongo, the reference)."""
    outcome = {}

    def run():
        try:
            outcome["result"] = fn(*args, **kwargs)
        except Exception as exc:  # the exception is the outcome
            outcome["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(60)
    return outcome


# Data keys, encryption and decryption ------------------------------------------------------


async def test_create_data_key_stores_it_in_the_key_vault(
    client_encryption, key_vault, sync_client, io_loop
):
    key_id = await client_encryption.create_data_key("local", key_alt_names=["greenmotor"])
    assert isinstance(key_id, Binary) and key_id.subtype == UUID_SUBTYPE
    db_name, coll_name = key_vault.split(".")
    stored = sync_client[db_name][coll_name].find_one()  # UUIDs stay Binary here
    assert stored["_id"] == key_id
    assert stored["keyAltNames"] == ["greenmotor"]
    assert stored["masterKey"] == {"provider": "local"}


@pytest.mark.parametrize("value", ["457-55-5462", 42, 2**40, b"\x00bytes", uuid.uuid4()])
async def test_deterministic_round_trip(client_encryption, value, io_loop):
    key_id = await client_encryption.create_data_key("local", key_alt_names=["det"])
    encrypted = await client_encryption.encrypt(value, DETERMINISTIC, key_id=key_id)
    assert isinstance(encrypted, Binary) and encrypted.subtype == 6
    assert encrypted != value
    # Deterministic: the same value and key give the same ciphertext, by id or by name.
    assert await client_encryption.encrypt(value, DETERMINISTIC, key_id=key_id) == encrypted
    assert await client_encryption.encrypt(value, DETERMINISTIC, key_alt_name="det") == encrypted
    assert await client_encryption.decrypt(encrypted) == value


async def test_random_round_trip(client_encryption, coll, sync_coll, io_loop):
    key_id = await client_encryption.create_data_key("local")
    first = await client_encryption.encrypt("secret", RANDOM, key_id=key_id)
    second = await client_encryption.encrypt("secret", RANDOM, key_id=key_id)
    assert first != second  # random: a new ciphertext each time
    # Random encryption takes any BSON value, documents and floats included.
    for value in ({"nested": [1, "two", {"three": 3.0}]}, 1.5, [1, 2]):
        encrypted = await client_encryption.encrypt(value, RANDOM, key_id=key_id)
        assert await client_encryption.decrypt(encrypted) == value
    # Stored and read back, the value stays encrypted until decrypted.
    await coll.insert_one({"_id": 1, "ssn": first})
    stored = sync_coll.find_one({"_id": 1})["ssn"]
    assert isinstance(stored, Binary) and stored.subtype == 6
    assert await client_encryption.decrypt(stored) == "secret"
    assert await client_encryption.decrypt(second) == "secret"


async def test_encrypt_with_unknown_key_fails(client_encryption, io_loop):
    missing = Binary(uuid.uuid4().bytes, UUID_SUBTYPE)
    with pytest.raises(EncryptionError, match="not all keys requested were satisfied"):
        await client_encryption.encrypt("x", DETERMINISTIC, key_id=missing)
    with pytest.raises(EncryptionError, match="not all keys requested were satisfied"):
        await client_encryption.encrypt("x", DETERMINISTIC, key_alt_name="nobody")


async def test_callback_style(client_encryption, io_loop):
    done = asyncio.get_running_loop().create_future()
    assert (
        client_encryption.create_data_key(
            "local", callback=lambda result, error: done.set_result((result, error))
        )
        is None
    )
    key_id, error = await done
    assert error is None and key_id.subtype == UUID_SUBTYPE


# Key management ----------------------------------------------------------------------------


async def test_key_management(client_encryption, io_loop):
    key_id = await client_encryption.create_data_key("local", key_alt_names=["first"])
    other_id = await client_encryption.create_data_key("local")

    assert (await client_encryption.get_key(key_id))["_id"] == key_id
    assert (await client_encryption.get_key_by_alt_name("first"))["_id"] == key_id
    assert await client_encryption.get_key_by_alt_name("nobody") is None

    previous = await client_encryption.add_key_alt_name(key_id, "second")
    assert previous["keyAltNames"] == ["first"]  # the document before the change
    assert (await client_encryption.get_key(key_id))["keyAltNames"] == ["first", "second"]
    assert (await client_encryption.get_key_by_alt_name("second"))["_id"] == key_id

    previous = await client_encryption.remove_key_alt_name(key_id, "first")
    assert previous["keyAltNames"] == ["first", "second"]
    await client_encryption.remove_key_alt_name(key_id, "second")
    assert "keyAltNames" not in await client_encryption.get_key(key_id)  # removed when empty

    result = await client_encryption.delete_key(key_id)
    assert result.deleted_count == 1
    assert await client_encryption.get_key(key_id) is None
    assert [key["_id"] for key in await (await client_encryption.get_keys()).to_list(None)] == [
        other_id
    ]


async def test_get_keys_is_a_cursor(client_encryption, io_loop):
    ids = {await client_encryption.create_data_key("local") for _ in range(3)}
    cursor = await client_encryption.get_keys()
    assert type(cursor) is greenmotor.MotorCursor
    assert {key["_id"] async for key in cursor} == ids
    cursor = (await client_encryption.get_keys()).sort("_id", -1).limit(2)
    assert [key["_id"] for key in await cursor.to_list(None)] == sorted(ids, reverse=True)[:2]


async def test_rewrap_many_data_key(client, key_vault, io_loop):
    providers = {"local:old": {"key": b"\x02" * 96}, "local:new": {"key": b"\x03" * 96}}
    async with greenmotor.MotorClientEncryption(providers, key_vault, client, OPTS) as ce:
        key_id = await ce.create_data_key("local:old", key_alt_names=["rewrap"])
        encrypted = await ce.encrypt("kept", DETERMINISTIC, key_id=key_id)
        result = await ce.rewrap_many_data_key({"keyAltNames": "rewrap"}, provider="local:new")
        assert result.bulk_write_result.modified_count == 1
        assert dict((await ce.get_key(key_id))["masterKey"]) == {"provider": "local:new"}
        nothing = await ce.rewrap_many_data_key({"keyAltNames": "nobody"})
        assert nothing.bulk_write_result is None
        with pytest.raises(ConfigurationError, match="A provider must be given if a master_key"):
            await ce.rewrap_many_data_key({}, master_key={"key": "x"})
    # The rewrapped key decrypts with only the new master key.
    only_new = {"local:new": providers["local:new"]}
    async with greenmotor.MotorClientEncryption(only_new, key_vault, client, OPTS) as ce:
        assert await ce.decrypt(encrypted) == "kept"


async def test_create_encrypted_collection_makes_the_data_keys(client_encryption, db, io_loop):
    # SecantusDB has no Queryable Encryption: creating the collection fails, after the data
    # key was made, and PyMongo's error carries the fields with the new key id.
    fields = {"fields": [{"path": "ssn", "bsonType": "string", "keyId": None}]}
    with pytest.raises(EncryptedCollectionError) as caught:
        await client_encryption.create_encrypted_collection(db, "qe", fields, "local")
    key_id = caught.value.encrypted_fields["fields"][0]["keyId"]
    assert (await client_encryption.get_key(key_id))["_id"] == key_id
    assert fields["fields"][0]["keyId"] is None  # the caller's document is left as it was
    with pytest.raises(TypeError, match="database must be a MotorDatabase"):
        await client_encryption.create_encrypted_collection(db.delegate, "qe", fields, "local")


# Misuse --------------------------------------------------------------------------------------


def test_key_vault_client_must_be_a_motor_client_of_the_same_flavour(server_uri):
    pymongo_client = pymongo.MongoClient(server_uri, connect=False)
    asyncio_client = AsyncIOMotorClient(server_uri)
    tornado_client = greenmotor.MotorClient(server_uri)
    for cls, wrong in (
        (greenmotor.MotorClientEncryption, pymongo_client),
        (greenmotor.MotorClientEncryption, None),
        (greenmotor.MotorClientEncryption, asyncio_client),
        (AsyncIOMotorClientEncryption, tornado_client),
    ):
        expected = (
            f"key_vault_client must be an instance of {cls.__name__.removesuffix('Encryption')} "
            f"(the client {cls.__name__} reads and writes data keys with), not "
            f"{type(wrong).__name__}"
        )
        with pytest.raises(TypeError) as caught:
            cls(LOCAL, "kv.keys", wrong, OPTS)
        assert str(caught.value) == expected
    for c in (pymongo_client, asyncio_client, tornado_client):
        c.close()


def test_pymongo_checks_the_other_arguments(client):
    with pytest.raises(
        TypeError, match="codec_options must be an instance of bson.codec_options.CodecOptions"
    ):
        greenmotor.MotorClientEncryption(LOCAL, "kv.keys", client, None)
    with pytest.raises(TypeError, match="io_loop must be instance of IOLoop"):
        greenmotor.MotorClientEncryption(LOCAL, "kv.keys", client, OPTS, io_loop=object())
    with pytest.raises(ConfigurationError, match="Insecure TLS options prohibited"):
        greenmotor.MotorClientEncryption(
            LOCAL, "kv.keys", client, OPTS, kms_tls_options={"aws": {"tlsInsecure": True}}
        )


async def test_argument_errors_come_from_pymongo(client_encryption, io_loop):
    with pytest.raises(
        TypeError, match="value to decrypt must be a bson.binary.Binary with subtype 6"
    ):
        await client_encryption.decrypt("not encrypted")
    with pytest.raises(TypeError, match="key_id must be a bson.binary.Binary with subtype 4"):
        await client_encryption.encrypt("x", DETERMINISTIC, key_id="not a key id")
    with pytest.raises(EncryptionError):
        await client_encryption.encrypt("x", "no such algorithm", key_alt_name="x")


async def test_async_with_closes_and_closed_refuses(client, key_vault, io_loop):
    async with greenmotor.MotorClientEncryption(LOCAL, key_vault, client, OPTS) as ce:
        await ce.create_data_key("local")
    for call in (
        lambda: ce.create_data_key("local"),
        lambda: ce.encrypt("x", DETERMINISTIC, key_alt_name="x"),
        lambda: ce.decrypt(Binary(b"", 6)),
        lambda: ce.get_keys(),
    ):
        with pytest.raises(InvalidOperation, match="Cannot use closed ClientEncryption"):
            await call()
    await ce.close()  # again: nothing to do
    with pytest.raises(RuntimeError, match='Use MotorClientEncryption in "async with", not "with"'):
        with ce:
            pass


async def test_close_after_the_key_vault_client(server_uri, key_vault, io_loop):
    client = greenmotor.MotorClient(server_uri, io_loop=io_loop)
    ce = greenmotor.MotorClientEncryption(LOCAL, key_vault, client, OPTS)
    await ce.create_data_key("local")
    client.close()
    await ce.close()  # no I/O: fine, as in Motor
    with pytest.raises(InvalidOperation):  # Motor: "Cannot use closed ClientEncryption"
        await ce.create_data_key("local")


def test_loop_and_repr(client, io_loop, key_vault):
    ce = greenmotor.MotorClientEncryption(LOCAL, key_vault, client, OPTS)
    assert ce.get_io_loop() is io_loop and ce.io_loop is io_loop
    assert repr(ce).startswith("MotorClientEncryption(<")
    assert greenmotor.MotorClientEncryption[dict] is greenmotor.MotorClientEncryption
    other_loop = type(io_loop)(make_current=False)
    try:
        given = greenmotor.MotorClientEncryption(LOCAL, key_vault, client, OPTS, other_loop)
        assert given.get_io_loop() is other_loop
    finally:
        other_loop.close()


# The asyncio flavour -------------------------------------------------------------------------


def test_asyncio_flavour(server_uri, key_vault):
    async def main():
        client = AsyncIOMotorClient(server_uri)
        async with AsyncIOMotorClientEncryption(LOCAL, key_vault, client, OPTS) as ce:
            assert ce.get_io_loop() is asyncio.get_running_loop()
            key_id = await ce.create_data_key("local", key_alt_names=["aio"])
            encrypted = await ce.encrypt("aio", DETERMINISTIC, key_alt_name="aio")
            assert await ce.decrypt(encrypted) == "aio"
            cursor = await ce.get_keys()
            assert type(cursor) is AsyncIOMotorCursor
            assert [key["_id"] async for key in cursor] == [key_id]
        with pytest.raises(InvalidOperation, match="Cannot use closed ClientEncryption"):
            await ce.decrypt(encrypted)
        with pytest.raises(RuntimeError, match='Use AsyncIOMotorClientEncryption in "async with"'):
            with ce:
                pass
        client.close()

    asyncio.run(main())


# KMS I/O never blocks the loop -------------------------------------------------------------


async def test_slow_kms_does_not_stall_the_loop(
    client, key_vault, fake_kms, kms_tls, stall_monitor, io_loop
):
    kms = fake_kms(delay=0.5)
    async with stall_monitor() as stalls:
        start = time.monotonic()
        async with greenmotor.MotorClientEncryption(
            AWS_CREDENTIALS, key_vault, client, OPTS, kms_tls_options=kms_tls
        ) as ce:
            key_id = await ce.create_data_key("aws", master_key=kms.master_key())
        # A new instance has no cached data key: encrypting asks the KMS to decrypt it.
        async with greenmotor.MotorClientEncryption(
            AWS_CREDENTIALS, key_vault, client, OPTS, kms_tls_options=kms_tls
        ) as ce:
            encrypted = await ce.encrypt("over the wire", DETERMINISTIC, key_id=key_id)
            assert await ce.decrypt(encrypted) == "over the wire"
        elapsed = time.monotonic() - start
    assert kms.requests == ["TrentService.Encrypt", "TrentService.Decrypt"]
    assert elapsed >= 1.0  # both requests waited on the slow KMS
    assert stalls.ticks > 100  # the ticker ran all along
    assert stalls.longest < MAX_STALL, stalls


async def test_kms_requests_wait_side_by_side(client, key_vault, fake_kms, kms_tls, io_loop):
    kms = fake_kms(delay=0.5)
    instances = [
        greenmotor.MotorClientEncryption(
            AWS_CREDENTIALS, key_vault, client, OPTS, kms_tls_options=kms_tls
        )
        for _ in range(4)
    ]
    start = time.monotonic()
    key_ids = await asyncio.gather(
        *(ce.create_data_key("aws", master_key=kms.master_key()) for ce in instances)
    )
    elapsed = time.monotonic() - start
    assert len(set(key_ids)) == 4 and len(kms.requests) == 4
    assert elapsed < 1.5  # 4 x 0.5 s, waited together rather than one after the other
    for ce in instances:
        await ce.close()


async def test_a_plain_client_encryption_still_blocks(
    sync_client, key_vault, fake_kms, kms_tls, stall_monitor, io_loop
):
    """The stall test can fail, and greenmotor left PyMongo's own ClientEncryption alone."""
    kms = fake_kms(delay=0.5)
    plain = ClientEncryption(AWS_CREDENTIALS, key_vault, sync_client, OPTS, kms_tls)
    assert type(plain._io_callbacks) is _EncryptionIO
    async with stall_monitor() as stalls:
        await asyncio.sleep(0.02)
        plain.create_data_key("aws", master_key=kms.master_key())  # blocks, on the loop
    plain.close()
    assert stalls.longest >= 0.4, stalls
    assert kms.requests == ["TrentService.Encrypt"]


@pytest.mark.parametrize(
    "failure, expected",
    [
        ("untrusted", "CERTIFICATE_VERIFY_FAILED"),
        ("closing", "KMS connection closed"),
        ("refused", "Connection refused"),
    ],
)
@pytest.mark.slow  # TLS KMS servers, sync and green
async def test_kms_errors_are_pymongos(
    failure, expected, client, sync_client, key_vault, fake_kms, kms_tls, stall_monitor, io_loop
):
    """Untrusted certificate, closed without an answer, refused connection: libmongocrypt
    retries (with green back-off sleeps) and the error reads exactly as PyMongo's."""
    if failure == "untrusted":  # no kms_tls_options: the system CAs don't know the test CA
        master_key, kms_tls = fake_kms().master_key(), None
    elif failure == "closing":
        master_key = fake_kms(mode="close").master_key()
    else:
        endpoint = f"127.0.0.1:{free_port()}"
        master_key = {"region": "us-east-1", "key": AWS_KEY_ARN, "endpoint": endpoint}
    plain = ClientEncryption(AWS_CREDENTIALS, key_vault, sync_client, OPTS, kms_tls)
    reference = in_thread(plain.create_data_key, "aws", master_key=master_key)["error"]
    plain.close()
    async with greenmotor.MotorClientEncryption(
        AWS_CREDENTIALS, key_vault, client, OPTS, kms_tls_options=kms_tls
    ) as ce:
        async with stall_monitor() as stalls:
            with pytest.raises(EncryptionError) as caught:
                await ce.create_data_key("aws", master_key=master_key)
    assert expected in str(reference)
    assert str(caught.value) == str(reference)
    assert type(caught.value.cause) is type(reference.cause)
    assert stalls.longest < MAX_STALL, stalls


async def test_pymongo_timeout_bounds_a_kms_request(
    client, sync_client, key_vault, fake_kms, kms_tls, stall_monitor, io_loop
):
    kms = fake_kms(delay=2.0)
    ce = greenmotor.MotorClientEncryption(
        AWS_CREDENTIALS, key_vault, client, OPTS, kms_tls_options=kms_tls
    )
    start = time.monotonic()
    async with stall_monitor() as stalls:
        with pytest.raises(EncryptionError) as caught:
            with pymongo.timeout(0.3):
                await ce.create_data_key("aws", master_key=kms.master_key())
    elapsed = time.monotonic() - start
    assert 0.25 < elapsed < 1.5
    assert isinstance(caught.value.cause, NetworkTimeout)
    assert f"KMS connection closed{kms.endpoint}: The read operation timed out" in str(caught.value)
    assert stalls.longest < MAX_STALL, stalls

    # Sync PyMongo says the same.
    plain = ClientEncryption(AWS_CREDENTIALS, key_vault, sync_client, OPTS, kms_tls)

    def sync_create():
        with pymongo.timeout(0.3):
            return plain.create_data_key("aws", master_key=kms.master_key())

    reference = in_thread(sync_create)["error"]
    assert type(reference) is EncryptionError and type(reference.cause) is NetworkTimeout
    assert str(reference).split(" (configured")[0] == str(caught.value).split(" (configured")[0]
    await ce.close()
    plain.close()


async def test_cancelling_closes_the_kms_connection(client, key_vault, fake_kms, kms_tls, io_loop):
    kms = fake_kms(mode="hang")
    ce = greenmotor.MotorClientEncryption(
        AWS_CREDENTIALS, key_vault, client, OPTS, kms_tls_options=kms_tls
    )
    future = ce.create_data_key("aws", master_key=kms.master_key())
    deadline = time.monotonic() + 5
    while not kms.requests and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    assert kms.requests == ["TrentService.Encrypt"] and not future.done()
    future.cancel()
    await asyncio.sleep(0)
    assert future.cancelled()
    closed = await asyncio.get_running_loop().run_in_executor(None, kms.closed_by_client.wait, 5)
    assert closed  # the KMS connection was closed, not left open
    # The instance still works.
    again = await ce.create_data_key("aws", master_key=fake_kms().master_key())
    assert again.subtype == UUID_SUBTYPE
    await ce.close()


async def test_kms_connect_callback_runs_off_the_loop(
    client, key_vault, fake_kms, kms_tls, stall_monitor, io_loop
):
    """PyMongo's ``kms_connect_callback`` (e.g. HTTPProxyKMSConnect) is blocking user code:
    GreenClientEncryption runs it in the loop's executor, then shakes hands green."""
    kms = fake_kms(delay=0.2)
    contexts = []

    def connect(context):
        contexts.append(context)
        time.sleep(0.3)  # a slow proxy
        return socket.create_connection((context.host, context.port), timeout=context.timeout)

    def create_key():
        ce = GreenClientEncryption(
            AWS_CREDENTIALS, key_vault, client.delegate, OPTS, kms_tls,
            kms_connect_callback=connect,
        )  # fmt: skip
        try:
            return ce.create_data_key("aws", master_key=kms.master_key())
        finally:
            ce.close()

    async with stall_monitor() as stalls:
        key_id = await spawn(asyncio.get_running_loop(), create_key)
    assert key_id.subtype == UUID_SUBTYPE
    assert [(c.host, c.port) for c in contexts] == [("127.0.0.1", kms.port)]
    assert kms.requests == ["TrentService.Encrypt"]
    assert stalls.longest < MAX_STALL, stalls


# Automatic encryption ----------------------------------------------------------------------


def use_green_encrypter(client):
    """A MotorClient made with ``auto_encryption_opts`` has the green automatic-encryption
    machinery in place of PyMongo's blocking ``_Encrypter``."""
    encrypter = client.delegate._encrypter
    assert isinstance(encrypter, GreenEncrypter)
    assert isinstance(encrypter._auto_encrypter.callback, GreenEncryptionIO)


def test_auto_encryption_requiring_crypt_shared_fails_as_pymongo(server_uri):
    opts = AutoEncryptionOpts(LOCAL, "kv.keys", crypt_shared_lib_required=True)
    with pytest.raises(Exception) as reference:
        pymongo.MongoClient(server_uri, auto_encryption_opts=opts, connect=False)
    with pytest.raises(type(reference.value)) as caught:
        greenmotor.MotorClient(server_uri, auto_encryption_opts=opts)
    assert str(caught.value) == str(reference.value)
    assert "crypt_shared library could not be loaded" in str(caught.value)


async def test_auto_encryption_without_mongocryptd_fails_as_pymongo(
    server_uri, sync_client, stall_monitor, io_loop
):
    """No mongocryptd and no crypt_shared: PyMongo's EncryptionError, after its server
    selection for mongocryptd timed out; the loop keeps running meanwhile."""
    opts = AutoEncryptionOpts(
        LOCAL, "kv.keys", mongocryptd_bypass_spawn=True,
        mongocryptd_uri=f"mongodb://127.0.0.1:{free_port()}",
    )  # fmt: skip
    client = greenmotor.MotorClient(server_uri, auto_encryption_opts=opts, io_loop=io_loop)
    use_green_encrypter(client)
    start = time.monotonic()
    async with stall_monitor() as stalls:
        with pytest.raises(EncryptionError) as caught:
            with pymongo.timeout(0.5):
                await client.greenmotor_auto.coll.insert_one({"x": 1})
    assert time.monotonic() - start < 3
    assert isinstance(caught.value.cause, ServerSelectionTimeoutError)
    assert "Connection refused" in str(caught.value)
    assert stalls.longest < MAX_STALL, stalls
    client.close()

    plain = pymongo.MongoClient(server_uri, auto_encryption_opts=opts)
    with pytest.raises(EncryptionError) as reference:
        with pymongo.timeout(0.5):
            plain.greenmotor_auto.coll.insert_one({"x": 1})
    assert isinstance(reference.value.cause, ServerSelectionTimeoutError)
    plain.close()


async def test_automatic_decryption_through_a_slow_kms(
    server_uri, client, key_vault, fake_kms, kms_tls, coll, stall_monitor, io_loop
):
    """bypass_auto_encryption: no mongocryptd needed; reads decrypt what explicit encryption
    wrote, fetching the data key from the KMS without stalling the loop."""
    kms = fake_kms(delay=0.3)
    async with greenmotor.MotorClientEncryption(
        AWS_CREDENTIALS, key_vault, client, OPTS, kms_tls_options=kms_tls
    ) as ce:
        key_id = await ce.create_data_key("aws", master_key=kms.master_key())
        encrypted = await ce.encrypt("auto", DETERMINISTIC, key_id=key_id)
    await coll.insert_one({"_id": 1, "secret": encrypted})

    opts = AutoEncryptionOpts(
        AWS_CREDENTIALS, key_vault, bypass_auto_encryption=True, kms_tls_options=kms_tls
    )
    decrypting = greenmotor.MotorClient(server_uri, auto_encryption_opts=opts, io_loop=io_loop)
    use_green_encrypter(decrypting)
    async with stall_monitor() as stalls:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            doc = await decrypting[coll.database.name][coll.name].find_one({"_id": 1})
    assert doc == {"_id": 1, "secret": "auto"}
    # create_data_key, encrypt (new key: decrypted once), then the automatic decryption.
    assert kms.requests == ["TrentService.Encrypt"] + ["TrentService.Decrypt"] * 2
    assert stalls.longest < MAX_STALL, stalls
    decrypting.close()
