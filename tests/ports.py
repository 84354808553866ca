"""A free loopback port for a test's own server (Redis, uvicorn, a distributed launcher): fixed ports collide
with another suite or job running on the same machine."""

from __future__ import annotations

import socket


def free_port() -> int:
    """A port nobody listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
