"""``python -m demo [--port 8888]``: run the message board.

With ``MONGODB_URI`` unset a SecantusDB server is started beside the app, keeping its data
in ``./demo-data``, so the demo works on a machine with no MongoDB.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import subprocess
import sys
import time

from tornado.ioloop import IOLoop

from demo.app import make_app


def start_secantus(data_dir: str) -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    os.makedirs(data_dir, exist_ok=True)
    server = subprocess.Popen(
        [sys.executable, "-m", "secantus", "--host", "127.0.0.1", "--port", str(port),
         "--storage-path", data_dir, "--log-level", "WARNING"]
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return server, f"mongodb://127.0.0.1:{port}/"
        except OSError:
            if server.poll() is not None:
                raise SystemExit("SecantusDB failed to start") from None
            time.sleep(0.1)
    server.terminate()
    raise SystemExit("SecantusDB did not start within 60 s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", 8888)))
    parser.add_argument("--data-dir", default="demo-data")
    args = parser.parse_args()

    server = None
    uri = os.environ.get("MONGODB_URI")
    if not uri:
        server, uri = start_secantus(os.path.abspath(args.data_dir))
        print(f"Started SecantusDB at {uri} (data in {args.data_dir}/)")

    async def serve() -> None:
        app = make_app(uri)
        app.listen(args.port, "127.0.0.1")
        await app.settings["board"].start()
        print(f"greenmotor demo running: open http://127.0.0.1:{args.port}/", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await app.settings["board"].stop()

    try:
        IOLoop.current().run_sync(serve)
    finally:
        if server is not None:
            server.terminate()
            server.wait(10)


if __name__ == "__main__":
    main()
