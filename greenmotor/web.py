"""Tornado helpers: serve GridFS files over HTTP.

::

    app = tornado.web.Application([
        (r"/static/(.*)", greenmotor.web.GridFSHandler, {"database": client.mydb}),
    ])

``GET /static/logo.png`` streams the newest file named ``logo.png`` from the ``fs`` bucket
with Content-Type (``metadata.contentType``, else guessed from the name), Content-Length, ETag and Last-Modified, answers conditional requests with
304, a missing file with 404, and ``HEAD`` with the headers alone.
"""

from __future__ import annotations

import datetime
import email.utils
import hashlib
import mimetypes
from typing import Any

import gridfs
from tornado import httputil, web

from greenmotor.gridfs import MotorGridFSBucket, MotorGridOut

__all__ = ["GridFSHandler"]


class GridFSHandler(web.RequestHandler):
    """Serves files from a GridFS bucket by name.

    Options (the handler's ``initialize`` keyword arguments): ``database`` (a MotorDatabase)
    and ``root_collection`` (the bucket name, default ``"fs"``). Override the hooks to change
    the lookup (:meth:`get_gridfs_file`), the caching (:meth:`get_cache_time`) or to add
    headers (:meth:`set_extra_headers`).
    """

    def initialize(self, database: Any, root_collection: str = "fs") -> None:
        self.bucket = MotorGridFSBucket(database, root_collection)

    async def get_gridfs_file(
        self, bucket: MotorGridFSBucket, filename: str, request: httputil.HTTPServerRequest
    ) -> MotorGridOut:
        """The file to serve for this path; raise ``gridfs.NoFile`` for a 404.

        The default serves the newest revision of the file with this name.
        """
        return await bucket.open_download_stream_by_name(filename)  # type: ignore[no-any-return]

    def get_cache_time(self, path: str, modified: datetime.datetime, mime_type: str) -> int:
        """Seconds the client may cache the file (0: revalidate every time, the default)."""
        return 0

    def set_extra_headers(self, path: str, gridout: MotorGridOut) -> None:
        """Hook to set more headers on the response."""

    @staticmethod
    def compute_etag_for(gridout: MotorGridOut) -> str:
        # A new upload of the same name gets a new _id, so the ETag changes with the content.
        identity = f"{gridout._id}:{gridout.length}:{gridout.upload_date.isoformat()}"
        return '"' + hashlib.sha256(identity.encode()).hexdigest()[:32] + '"'

    async def get(self, path: str, include_body: bool = True) -> None:
        try:
            gridout = await self.get_gridfs_file(self.bucket, path, self.request)
        except gridfs.NoFile:
            raise web.HTTPError(404) from None

        modified = gridout.upload_date.replace(microsecond=0)
        if modified.tzinfo is None:
            modified = modified.replace(tzinfo=datetime.timezone.utc)
        # PyMongo deprecates the top-level contentType field: look in metadata, then guess.
        mime_type = (gridout.metadata or {}).get("contentType") or mimetypes.guess_type(path)[0]
        mime_type = mime_type or "application/octet-stream"
        etag = self.compute_etag_for(gridout)

        self.set_header("Last-Modified", modified)
        self.set_header("Etag", etag)
        self.set_header("Content-Type", mime_type)
        cache_time = self.get_cache_time(path, modified, mime_type)
        if cache_time > 0:
            expires = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(
                seconds=cache_time
            )
            self.set_header("Expires", expires)
            self.set_header("Cache-Control", f"max-age={cache_time}")
        else:
            self.set_header("Cache-Control", "public")
        self.set_extra_headers(path, gridout)

        if self._not_modified(etag, modified):
            self.set_status(304)
            return

        self.set_header("Content-Length", gridout.length)
        if include_body:
            await gridout.stream_to_handler(self)
        self.finish()

    def _not_modified(self, etag: str, modified: datetime.datetime) -> bool:
        # If-None-Match wins over If-Modified-Since (RFC 9110 13.2.2).
        if_none_match = self.request.headers.get("If-None-Match")
        if if_none_match is not None:
            tags = [tag.strip() for tag in if_none_match.split(",")]
            return "*" in tags or etag in tags or f"W/{etag}" in tags
        since = self.request.headers.get("If-Modified-Since")
        if since:
            parsed = email.utils.parsedate_to_datetime(since)
            if parsed is not None:
                if parsed.tzinfo is None:
                    parsed = parsed.replace(tzinfo=datetime.timezone.utc)
                return parsed >= modified
        return False

    async def head(self, path: str) -> None:
        await self.get(path, include_body=False)
