"""This host's own addresses, as the daemon advertises them and the node reports them."""

from __future__ import annotations

import socket


def default_ip() -> str:
    """The address of the interface holding the default route (a UDP connect sends no packet)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.connect(("10.255.255.255", 1))
        return str(s.getsockname()[0])
    except OSError:
        return "127.0.0.1"
    finally:
        s.close()
