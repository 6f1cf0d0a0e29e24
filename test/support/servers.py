"""Real servers for the tests: SecantusDB processes on free ports.

::

    server = SecantusServer("--enable-test-commands")
    server.start()          # returns once it answers a ping
    ...  server.uri ...
    server.stop()           # or server.kill() then server.start() to restart on the same port
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time

import pymongo


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class SecantusServer:
    """One ``secantusd-py`` process (``python -m secantus``) with in-memory storage."""

    def __init__(self, *extra_args: str, port: int | None = None, uri_options: str = "") -> None:
        self.port = port or free_port()
        self.extra_args = list(extra_args)
        self.uri_options = uri_options
        self.process: subprocess.Popen | None = None
        # The server's output; kept after the run. Each start appends to it.
        descriptor, self.log_path = tempfile.mkstemp(prefix="secantus-", suffix=".log")
        os.close(descriptor)

    def __repr__(self) -> str:
        state = "running" if self.process and self.process.poll() is None else "stopped"
        return f"<SecantusServer {state} port={self.port}>"

    @property
    def uri(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}/{self.uri_options}"

    def start(self, timeout: float = 60.0) -> None:
        args = [
            sys.executable, "-m", "secantus",
            "--host", "127.0.0.1", "--port", str(self.port),
            "--storage-path", ":memory:", "--log-level", "WARNING", *self.extra_args,
        ]  # fmt: skip
        with open(self.log_path, "ab") as log:  # the child keeps its own copy open
            self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"SecantusDB exited at start; see {self.log_path}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"SecantusDB did not listen on {self.port} in {timeout}s")

    def wait_ready(self, client_options: dict | None = None) -> None:
        with pymongo.MongoClient(
            self.uri, serverSelectionTimeoutMS=30000, **(client_options or {})
        ) as c:
            c.admin.command("ping")

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()
        self.process = None


def uri_from_environment() -> str | None:
    return os.environ.get("GREENMOTOR_TEST_URI")
