"""aiohttp helpers: serve GridFS files over HTTP, as ``motor.aiohttp`` does.

Needs aiohttp (``pip install greenmotor[aiohttp]``); greenmotor itself does not::

    from greenmotor.aiohttp import AIOHTTPGridFS
    from greenmotor.motor_asyncio import AsyncIOMotorClient

    client = AsyncIOMotorClient()
    gridfs_handler = AIOHTTPGridFS(client.my_database)

    app = aiohttp.web.Application()
    resource = app.router.add_resource("/fs/{filename}")  # needs a {filename} variable
    resource.add_route("GET", gridfs_handler)
    resource.add_route("HEAD", gridfs_handler)

``GET /fs/logo.png`` streams the newest file named ``logo.png`` from the ``fs`` bucket with
Content-Type, Content-Length, ETag and Last-Modified, answers conditional requests with
304, a missing file with 404, and ``HEAD`` with the headers alone. The three hooks below
are replaced by passing functions of the same shape to :class:`AIOHTTPGridFS`.
"""

from __future__ import annotations

import asyncio
import datetime
import inspect
import sys
from collections.abc import Callable
from typing import Any, NoReturn

import gridfs

try:
    import aiohttp.web
except ImportError as exc:  # an optional dependency: the error names the fix
    raise ImportError(
        "greenmotor.aiohttp needs aiohttp: pip install 'greenmotor[aiohttp]'", name=exc.name
    ) from exc

from greenmotor.gridfs import _hash_gridout
from greenmotor.motor_asyncio import AsyncIOMotorDatabase, AsyncIOMotorGridFSBucket
from greenmotor.web import _as_utc, _caching_headers, _content_type_of, _etag_matches

__all__ = ["AIOHTTPGridFS", "get_cache_time", "get_gridfs_file", "set_extra_headers"]


def get_gridfs_file(
    bucket: AsyncIOMotorGridFSBucket, filename: str, request: aiohttp.web.Request
) -> Any:
    """The default lookup: the newest revision of the file named by the URL's ``{filename}``.

    A replacement takes the same arguments and returns an awaitable of an
    AsyncIOMotorGridOut (raising ``gridfs.NoFile`` for a 404), e.g. by ``_id``::

        def by_id(bucket, filename, request):
            return bucket.open_download_stream(file_id=ObjectId(filename))

        AIOHTTPGridFS(client.my_database, get_gridfs_file=by_id)
    """
    return bucket.open_download_stream_by_name(filename)


def get_cache_time(filename: str, modified: datetime.datetime, mime_type: str | None) -> int:
    """The default caching: 0, the client revalidates every time.

    A replacement returns the seconds a client may cache the file, e.g. an hour for
    images::

        def image_cache_time(filename, modified, mime_type):
            return 3600 if mime_type and mime_type.startswith("image/") else 0

    As in Motor, ``filename`` is the request's path and ``mime_type`` the file's stored
    content type (None if it has none).
    """
    return 0


def set_extra_headers(response: aiohttp.web.StreamResponse, gridout: Any) -> None:
    """The default: no extra headers. A replacement may set ``response.headers[...]``."""


def _config_error(request: aiohttp.web.Request) -> NoReturn:
    # Motor's messages: the route template when aiohttp tells it, else the request.
    resource = request.match_info.route.resource
    formatter = None if resource is None else resource.get_info().get("formatter")
    if formatter is None:
        msg = f"Bad AIOHTTPGridFS route for request: {request}"
    else:
        msg = f'Bad AIOHTTPGridFS route "{formatter}", requires a {{filename}} variable'
    raise aiohttp.web.HTTPInternalServerError(text=msg) from None


def _mark_as_coroutine_function(handler: Callable[..., Any]) -> None:
    """Let aiohttp see an instance with ``async def __call__`` as the coroutine function it
    behaves as: otherwise ``add_route`` warns "Bare functions are deprecated" and wraps it."""
    if sys.version_info >= (3, 12):
        inspect.markcoroutinefunction(handler)
    else:  # what asyncio.iscoroutinefunction, which aiohttp asks on 3.11, looks for
        vars(handler)["_is_coroutine"] = vars(asyncio.coroutines)["_is_coroutine"]


class AIOHTTPGridFS:
    """An aiohttp request handler serving files from a GridFS bucket.

    :param database: an AsyncIOMotorDatabase
    :param root_collection: the bucket name (default ``"fs"``)
    :param get_gridfs_file: replaces :func:`get_gridfs_file`
    :param get_cache_time: replaces :func:`get_cache_time`
    :param set_extra_headers: replaces :func:`set_extra_headers`

    Headers and answers are Motor's, except:

    * Last-Modified is the upload date in whole seconds, as in the Tornado handler (aiohttp
      3.14 rounds a date with milliseconds *up*, so Motor's header can name the second
      after the upload);
    * Content-Type is also sent for HEAD and empty files (``application/octet-stream`` when
      the type is unknown), and a type kept in ``metadata.contentType`` counts;
    * If-None-Match, when present, decides over If-Modified-Since (RFC 9110), and takes a
      list of tags or weak tags.
    """

    def __init__(
        self,
        database: AsyncIOMotorDatabase,
        root_collection: str = "fs",
        get_gridfs_file: Callable[..., Any] = get_gridfs_file,
        get_cache_time: Callable[..., int] = get_cache_time,
        set_extra_headers: Callable[..., None] = set_extra_headers,
    ) -> None:
        if not isinstance(database, AsyncIOMotorDatabase):
            raise TypeError(
                f"First argument to AIOHTTPGridFS must be AsyncIOMotorDatabase, not {database!r}"
            )
        self._database = database
        self._bucket = AsyncIOMotorGridFSBucket(database, root_collection)
        self._get_gridfs_file = get_gridfs_file
        self._get_cache_time = get_cache_time
        self._set_extra_headers = set_extra_headers
        _mark_as_coroutine_function(self)

    async def __call__(self, request: aiohttp.web.Request) -> aiohttp.web.StreamResponse:
        """Answer a GET or HEAD for the file named by the route's ``{filename}``."""
        try:
            filename = request.match_info["filename"]
        except KeyError:
            _config_error(request)
        if request.method not in ("GET", "HEAD"):
            raise aiohttp.web.HTTPMethodNotAllowed(
                method=request.method, allowed_methods={"GET", "HEAD"}
            )
        try:
            gridout = await self._get_gridfs_file(self._bucket, filename, request)
            await gridout.open()  # for a hook returning AsyncIOMotorGridOut(collection, id)
        except gridfs.NoFile as exc:
            raise aiohttp.web.HTTPNotFound(text=request.path) from exc

        response = aiohttp.web.StreamResponse()
        checksum = _hash_gridout(gridout)
        self._set_standard_headers(request.path, response, gridout, checksum)
        self._set_extra_headers(response, gridout)

        if self._not_modified(request, gridout, checksum):
            response.set_status(304)
            return response

        response.content_length = gridout.length
        await response.prepare(request)
        if request.method == "GET":
            async for chunk in gridout:
                await response.write(chunk)
        return response

    def _set_standard_headers(
        self, path: str, response: aiohttp.web.StreamResponse, gridout: Any, checksum: str
    ) -> None:
        response.last_modified = gridout.upload_date.replace(microsecond=0)
        # Set even when unknown: aiohttp's own default is left out of HEAD answers and
        # empty files, so a HEAD would not show what the GET sends.
        response.content_type = _content_type_of(gridout, path) or "application/octet-stream"
        response.headers["Etag"] = f'"{checksum}"'
        # As Motor: the stored contentType (read from the document: the property warns).
        stored_type = gridout.delegate._file.get("contentType")
        cache_time = self._get_cache_time(path, gridout.upload_date, stored_type)
        response.headers.update(_caching_headers(cache_time))

    @staticmethod
    def _not_modified(request: aiohttp.web.Request, gridout: Any, checksum: str) -> bool:
        # As the Tornado handler: If-None-Match decides when present (RFC 9110).
        if_none_match = request.headers.get("If-None-Match")
        if if_none_match is not None:
            return _etag_matches(if_none_match, checksum)
        since = request.if_modified_since  # aiohttp parses it (aware UTC), None if invalid
        if since is not None:
            return since >= _as_utc(gridout.upload_date.replace(microsecond=0))
        return False
