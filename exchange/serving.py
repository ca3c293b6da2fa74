"""Running the feed server: a bound socket and a uvicorn server, for `exchange serve` and `exchange run`.

Built on call, so that a command that does not serve never imports uvicorn.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

from exchange.errors import ExchangeError

__all__ = ["listen", "listening_url", "uvicorn_server"]


def listen(host: str, port: int) -> socket.socket:
    """Bind before uvicorn does, so a busy port is a one-line error and port 0 has a known number."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ExchangeError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    sock.set_inheritable(True)
    return sock


def listening_url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://{f'[{host}]' if ':' in host else host}:{port}"


def uvicorn_server(config: Any, on_started: Callable[[], None], on_exit: Callable[[int], None] | None = None) -> Any:
    """uvicorn's server, calling ``on_started`` once the app has started (store loaded, listening)
    and ``on_exit`` with the signal number when SIGTERM or SIGINT asks it to stop."""
    import uvicorn

    class Server(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets)
            if self.started:
                on_started()

        def handle_exit(self, sig: int, frame: Any) -> None:
            if on_exit is not None and not self.should_exit:
                on_exit(sig)
            # uvicorn re-raises the signal after its graceful shutdown (exit status -15, or a
            # KeyboardInterrupt traceback for Ctrl-C). A stop on request is a clean exit here: 0.
            super().handle_exit(sig, frame)
            captured = getattr(self, "_captured_signals", None)
            if isinstance(captured, list):
                captured.clear()

    return Server(config)
