"""Tornado helpers: serve GridFS files over HTTP, as ``motor.web`` does.

::

    app = tornado.web.Application([
        (r"/static/(.*)", greenmotor.web.GridFSHandler, {"database": client.mydb}),
    ])

``GET /static/logo.png`` streams the newest file named ``logo.png`` from the ``fs`` bucket
with Content-Type, Content-Length, ETag and Last-Modified, answers conditional requests
with 304, a missing file with 404, and ``HEAD`` with the headers alone.
"""

from __future__ import annotations

import datetime
import email.utils
import mimetypes
from typing import Any

import gridfs
from tornado import httputil, iostream, web

from greenmotor.gridfs import MotorGridFSBucket, MotorGridOut, _hash_gridout
from greenmotor.metaprogramming import MotorWrapper

__all__ = ["GridFSHandler"]


def _content_type_of(gridout: Any, path: str) -> str | None:
    """The type a stored file is served as: its own, else one guessed from ``path``.

    A file's own type is the ``contentType`` field of its document (what Motor serves, as
    ``GridOut.content_type``), else ``metadata.contentType`` (where ``GridFSBucket``
    uploads keep it, following the GridFS spec).
    """
    # The loaded file document itself: PyMongo's content_type property warns of its removal.
    document = gridout.delegate._file
    own = document.get("contentType") or (document.get("metadata") or {}).get("contentType")
    return own or mimetypes.guess_type(path)[0]


def _as_utc(moment: datetime.datetime) -> datetime.datetime:
    """An aware UTC datetime; a naive one is taken as UTC (PyMongo's default dates)."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=datetime.UTC)
    return moment.astimezone(datetime.UTC)


def _etag_matches(if_none_match: str, checksum: str) -> bool:
    """Whether an If-None-Match header names this file's ETag (or ``*``).

    Accepts a list, weak tags (``W/"..."``) and, as Motor does, an unquoted tag.
    """
    for tag in if_none_match.split(","):
        tag = tag.strip().removeprefix("W/").strip('"')
        if tag in (checksum, "*"):
            return True
    return False


def _not_modified_since(if_modified_since: str, modified: datetime.datetime) -> bool:
    """Whether an If-Modified-Since header is at or after ``modified`` (whole seconds)."""
    try:
        since = email.utils.parsedate_to_datetime(if_modified_since)
    except (TypeError, ValueError):
        return False  # not a date: answer in full
    return _as_utc(since) >= _as_utc(modified)


def _caching_headers(cache_time: int) -> dict[str, str]:
    """Expires and Cache-Control for a file cached ``cache_time`` seconds (0: not at all),
    as Motor's handlers send them."""
    if cache_time <= 0:
        return {"Cache-Control": "public"}
    expires = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=cache_time)
    return {
        "Expires": httputil.format_timestamp(expires),
        "Cache-Control": f"max-age={cache_time}",
    }


def _bucket_class(database: Any) -> type[MotorGridFSBucket]:
    """MotorGridFSBucket in the database's flavour (its constructor rejects a non-database)."""
    if isinstance(database, MotorWrapper):
        return database._flavoured(MotorGridFSBucket)
    return MotorGridFSBucket


class GridFSHandler(web.RequestHandler):
    """Serves files from a GridFS bucket by name, like Tornado's ``StaticFileHandler``.

    Options (the handler's ``initialize`` keyword arguments): ``database`` (a MotorDatabase)
    and ``root_collection`` (the bucket name, default ``"fs"``). Override the hooks to change
    the lookup (:meth:`get_gridfs_file`), the caching (:meth:`get_cache_time`) or to add
    headers (:meth:`set_extra_headers`).

    The headers are Motor's: the same ETag, and as Content-Type the file's stored type
    (``contentType`` in its document, else in its metadata), else one guessed from the
    name, else ``application/octet-stream`` (where Motor leaves Tornado's ``text/html``).
    When a request carries both If-None-Match and If-Modified-Since, the ETag decides
    (RFC 9110, as ``StaticFileHandler``); Motor checks the date first.
    """

    def initialize(self, database: Any, root_collection: str = "fs") -> None:
        self.database = database
        self.root_collection = root_collection

    def get_gridfs_file(
        self, bucket: MotorGridFSBucket, filename: str, request: httputil.HTTPServerRequest
    ) -> Any:
        """The file to serve for this path: a MotorGridOut, or an awaitable of one.

        Raise (or resolve to) ``gridfs.NoFile`` for a 404. The default serves the newest
        revision of the file with this name. A MotorGridOut not opened yet is opened.
        """
        return bucket.open_download_stream_by_name(filename)

    def get_cache_time(self, path: str, modified: datetime.datetime, mime_type: str) -> int:
        """Seconds the client may cache the file (0: revalidate every time, the default)."""
        return 0

    def set_extra_headers(self, path: str, gridout: MotorGridOut) -> None:
        """Hook to set more headers on the response."""

    async def get(self, path: str, include_body: bool = True) -> None:
        bucket = _bucket_class(self.database)(self.database, self.root_collection)
        try:
            gridout = await self.get_gridfs_file(bucket, path, self.request)
            await gridout.open()  # for an override returning MotorGridOut(collection, id)
        except gridfs.NoFile:
            raise web.HTTPError(404) from None

        # HTTP dates have whole seconds; If-Modified-Since echoes this value.
        modified = gridout.upload_date.replace(microsecond=0)
        checksum = _hash_gridout(gridout)
        mime_type = _content_type_of(gridout, path) or "application/octet-stream"

        self.set_header("Last-Modified", modified)
        self.set_header("Etag", f'"{checksum}"')
        self.set_header("Content-Type", mime_type)
        for name, value in _caching_headers(self.get_cache_time(path, modified, mime_type)).items():
            self.set_header(name, value)
        self.set_extra_headers(path, gridout)

        if self._not_modified(checksum, modified):
            self.set_status(304)
            return

        self.set_header("Content-Length", gridout.length)
        if include_body:
            try:
                await gridout.stream_to_handler(self)
            except iostream.StreamClosedError:
                return  # the client went away
        self.finish()

    def _not_modified(self, checksum: str, modified: datetime.datetime) -> bool:
        if_none_match = self.request.headers.get("If-None-Match")
        if if_none_match is not None:
            return _etag_matches(if_none_match, checksum)
        if_modified_since = self.request.headers.get("If-Modified-Since")
        if if_modified_since is not None:
            return _not_modified_since(if_modified_since, modified)
        return False

    async def head(self, path: str) -> None:
        await self.get(path, include_body=False)
