"""pyroute2's `IPRoute` and `NetlinkError` without the rest of pyroute2.

Why: `import pyroute2` runs the package's `__init__`, which imports every API pyroute2 has (NDB
with sqlite3, IPDB, ipset, IPVS, wireless, devlink, plan9…): about 10 MB of RSS and 0.15 s, of
which minik uses rtnetlink only. Importing `pyroute2.iproute.linux` directly still runs that
`__init__` first, so the package is registered here without executing it (its submodules import
their own dependencies). Every minik module takes pyroute2 from here; when a pyroute2 release
moves these names, the plain import is used instead.
Neighbours: `bridge`, `dnsaddr`, `overlay`, `conntrack` (the users, all in `minik.net`).
"""

from __future__ import annotations

import importlib.util
import sys


def _register_bare_package() -> None:
    if "pyroute2" in sys.modules:
        return
    spec = importlib.util.find_spec("pyroute2")
    if spec is None or spec.loader is None or not spec.submodule_search_locations:
        return
    sys.modules["pyroute2"] = importlib.util.module_from_spec(spec)


def _forget_pyroute2() -> None:
    for name in [m for m in sys.modules if m == "pyroute2" or m.startswith("pyroute2.")]:
        del sys.modules[name]


_register_bare_package()
try:
    from pyroute2.iproute.linux import IPRoute
    from pyroute2.netlink.exceptions import NetlinkError
except ImportError:  # another layout: the whole package, as documented
    _forget_pyroute2()
    from pyroute2 import IPRoute, NetlinkError

__all__ = ["IPRoute", "NetlinkError"]
