"""Serving the API in a background thread of the process that syncs (``xmargin run``, ``xmargin demo``) or alone
(``xmargin serve``)."""

from __future__ import annotations

import logging
import threading
import time

import uvicorn
from fastapi import FastAPI

__all__ = ["ApiServer", "ServerStartError"]

log = logging.getLogger("aggregator.api")


class ServerStartError(RuntimeError):
    """The server did not come up (port in use, bad host)."""


class ApiServer:
    """uvicorn serving ``app`` on ``host:port`` (0: a free port) in a daemon thread."""

    def __init__(self, app: FastAPI, host: str = "127.0.0.1", port: int = 0) -> None:
        config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False,
                                server_header=False, lifespan="off")
        self._app = app
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="xmargin-api", daemon=True)
        self.host = host
        self.port = port

    def start(self, timeout_s: float = 15.0) -> ApiServer:
        """Listen; log a warning first when the app serves reads without a key on a non-loopback interface."""
        from aggregator.api.app import public_reads_warning

        warning = public_reads_warning(self.host, getattr(self._app.state, "public_reads", None))
        if warning is not None:
            log.warning(warning)
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if not self._thread.is_alive():
                raise ServerStartError(f"the API server could not listen on {self.host}:{self.port} "
                                       "(in use? try --port 0 for any free port, or --no-api)")
            if time.monotonic() > deadline:
                self.stop()
                raise ServerStartError(f"the API server did not start within {timeout_s:g} s")
            time.sleep(0.02)
        self.port = self._server.servers[0].sockets[0].getsockname()[1]
        return self

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def stop(self, timeout_s: float = 10.0) -> None:
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout=timeout_s)

    def __enter__(self) -> ApiServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
