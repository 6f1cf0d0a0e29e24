"""Explicit client-side field level encryption: ``MotorClientEncryption``.

The same API as PyMongo's :class:`pymongo.encryption.ClientEncryption` (and Motor's
``MotorClientEncryption``), with every method returning a Future::

    from bson.codec_options import CodecOptions
    from pymongo.encryption import Algorithm

    client = MotorClient()
    async with MotorClientEncryption(
        {"local": {"key": master_key_96_bytes}}, "keyvault.datakeys", client, CodecOptions()
    ) as client_encryption:
        key_id = await client_encryption.create_data_key("local", key_alt_names=["ssn"])
        encrypted = await client_encryption.encrypt(
            "457-55-5462", Algorithm.AEAD_AES_256_CBC_HMAC_SHA_512_Deterministic, key_id=key_id
        )
        assert await client_encryption.decrypt(encrypted) == "457-55-5462"

It needs PyMongo's ``encryption`` extra (``pymongocrypt``). Its key vault reads and writes
go through ``key_vault_client``, a greenmotor client, and its requests to a remote key
management service (AWS, Azure, GCP, KMIP) through green sockets
(:mod:`greenmotor.green_kms`): nothing it does blocks the loop. The ``local`` KMS provider
does no network I/O at all.
"""

from __future__ import annotations

from typing import Any

from pymongo.encryption import ClientEncryption

from greenmotor.client import MotorClient, MotorCollection, MotorDatabase
from greenmotor.green_kms import GreenClientEncryption
from greenmotor.metaprogramming import Async, MotorWrapper, unwrap_all

__all__ = ["MotorClientEncryption"]


class MotorClientEncryption(MotorWrapper):
    """Explicit encryption and data key management over a key vault collection.

    Takes PyMongo's ``ClientEncryption`` arguments, with ``key_vault_client`` a
    :class:`~greenmotor.MotorClient` (an ``AsyncIOMotorClient`` for
    ``AsyncIOMotorClientEncryption``), plus Motor's ``io_loop``: Motor 3.7's signature, so
    PyMongo's later ``key_expiration_ms`` and ``kms_connect_callback`` are not offered. Its
    operations run on the key vault client's loop. Use it in ``async with`` (plain ``with``
    raises RuntimeError), or ``await close()`` it.
    """

    __delegate_class__ = ClientEncryption

    create_data_key = Async()
    encrypt = Async()
    encrypt_expression = Async()
    decrypt = Async()
    # Key management.
    rewrap_many_data_key = Async()
    delete_key = Async()
    get_key = Async()
    get_keys = Async(wrap="MotorCursor")  # no I/O, but awaited in Motor
    add_key_alt_name = Async()
    get_key_by_alt_name = Async()
    remove_key_alt_name = Async()

    def __init__(
        self,
        kms_providers: Any,
        key_vault_namespace: str,
        key_vault_client: Any,
        codec_options: Any,
        io_loop: Any = None,
        kms_tls_options: Any = None,
    ) -> None:
        if io_loop is not None:
            self._framework.check_io_loop(io_loop)
        client_class = self._flavoured(MotorClient)
        if not (
            isinstance(key_vault_client, MotorClient)
            and key_vault_client._framework is self._framework
        ):
            raise TypeError(
                f"key_vault_client must be an instance of {client_class.__name__} (the client "
                f"{type(self).__name__} reads and writes data keys with), not "
                f"{type(key_vault_client).__name__}"
            )
        self.delegate = GreenClientEncryption(
            kms_providers,
            key_vault_namespace,
            key_vault_client.delegate,
            codec_options,
            kms_tls_options,
        )
        self._client = key_vault_client
        self._io_loop = io_loop

    def get_io_loop(self) -> Any:
        """The ``io_loop`` given, else the key vault client's loop."""
        return self._io_loop if self._io_loop is not None else self._client.get_io_loop()

    @property
    def io_loop(self) -> Any:
        return self.get_io_loop()

    def create_encrypted_collection(
        self,
        database: MotorDatabase,
        name: str,
        encrypted_fields: Any,
        kms_provider: str | None = None,
        master_key: Any = None,
        callback: Any = None,
        **kwargs: Any,
    ) -> Any:
        """Create a Queryable Encryption collection, making its missing data keys.

        PyMongo's ``ClientEncryption.create_encrypted_collection`` for a
        :class:`~greenmotor.MotorDatabase`: resolves to ``(collection, encrypted_fields)``,
        the collection a ``MotorCollection`` of ``database``'s client and
        ``encrypted_fields`` with the ``keyId`` of each data key it created. Raises
        ``EncryptedCollectionError`` when making a key or the collection fails.
        """
        _, kwargs = unwrap_all((), kwargs)  # e.g. session=MotorClientSession

        def create() -> tuple[MotorCollection, Any]:
            if not isinstance(database, MotorDatabase):
                raise TypeError(f"database must be a MotorDatabase, not {database!r}")
            collection, fields = self.delegate.create_encrypted_collection(
                database.delegate,
                name,
                encrypted_fields,
                kms_provider=kms_provider,
                master_key=master_key,
                **kwargs,
            )
            return MotorCollection._from_delegate(database, collection), fields

        return self._async_call(create, callback)

    async def close(self) -> None:
        """Release libmongocrypt's resources; later calls raise ``InvalidOperation``.

        No I/O, so it runs at once, and also works after the key vault client was closed
        (a shutdown that closes the client first).
        """
        self.delegate.close()

    async def __aenter__(self) -> MotorClientEncryption:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    def __enter__(self) -> None:
        raise RuntimeError(f'Use {type(self).__name__} in "async with", not "with"')

    def __exit__(self, *exc: Any) -> None:
        pass
