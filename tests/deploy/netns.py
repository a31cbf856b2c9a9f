"""Separate hosts on one machine: network namespaces on a bridge, and a TCP forwarder.

``Topology`` creates one namespace per role, each with its own loopback and one veth
leg on a private bridge; the test process stays in the root namespace and is the
"services host" at the bridge address (Redis, Postgres through ``TcpForwarder``, the
stub Graph API). A process started with ``topology.command(role, argv)`` can reach other
hosts only over the bridge: 127.0.0.1 inside a namespace is that namespace's own.

Everything is named after the creating pid, so a run killed before its cleanup leaves
names that a later run recognises (pid gone) and removes.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import ipaddress
import os
import re
import shutil
import subprocess
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field

NS_PREFIX = "parley-t"
LOCK_FILE = "/tmp/parley-netns-test.lock"


class CannotIsolate(RuntimeError):
    """This machine does not let us create namespaces (not root, no iproute2, no privilege)."""


_PRIVILEGE_ERRORS = re.compile(
    r"Operation not permitted|Permission denied|cannot create namespace|mount --make-shared|"
    r"Unknown device type|not supported",
    re.IGNORECASE,
)


def _ip(*args: str) -> str:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=20)
    if done.returncode != 0:
        message = f"`ip {' '.join(args)}` failed: {done.stderr.strip() or done.stdout.strip()}"
        raise (CannotIsolate if _PRIVILEGE_ERRORS.search(done.stderr) else RuntimeError)(message)
    return done.stdout


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale() -> None:
    """Namespaces and bridges left by earlier runs whose process is gone."""
    for line in _ip("netns", "list").splitlines():
        match = re.match(rf"{NS_PREFIX}(\d+)-\w+", line)
        if match and not _alive(int(match.group(1))):
            with contextlib.suppress(RuntimeError):
                _ip("netns", "del", match.group(0))
    for line in _ip("-o", "link", "show", "type", "bridge").splitlines():
        match = re.search(r"\d+: (pbr(\d+)):", line)
        if match and not _alive(int(match.group(2))):
            with contextlib.suppress(RuntimeError):
                _ip("link", "del", match.group(1))


def _free_subnet() -> ipaddress.IPv4Network:
    used = re.findall(r"inet (\d+\.\d+\.\d+\.\d+/\d+)", _ip("-o", "-4", "addr", "show"))
    taken = [ipaddress.ip_interface(u).network for u in used]
    for third in range(200, 255):
        candidate = ipaddress.ip_network(f"10.231.{third}.0/24")
        if not any(candidate.overlaps(t) for t in taken):
            return candidate
    raise RuntimeError("no free 10.231.x.0/24 subnet for the test bridge")


@dataclass
class Topology:
    roles: tuple[str, ...]
    pid: int = field(default_factory=os.getpid)
    subnet: ipaddress.IPv4Network | None = None
    created: list[tuple[str, str]] = field(default_factory=list)  # ("netns"|"link", name)

    @property
    def bridge(self) -> str:
        return f"pbr{self.pid}"

    def namespace(self, role: str) -> str:
        return f"{NS_PREFIX}{self.pid}-{role}"

    @property
    def host_ip(self) -> str:
        assert self.subnet is not None
        return str(self.subnet.network_address + 1)

    def ip_of(self, role: str) -> str:
        assert self.subnet is not None
        return str(self.subnet.network_address + 2 + self.roles.index(role))

    def create(self) -> Topology:
        if os.geteuid() != 0:
            raise CannotIsolate("network namespaces need root (CAP_NET_ADMIN, CAP_SYS_ADMIN)")
        if shutil.which("ip") is None:
            raise CannotIsolate("iproute2's `ip` is not installed (apt-get install iproute2)")
        # Test runs of several people may share the machine: choosing a subnet and taking
        # it (the bridge's address) happen under one lock, so two runs never pick the same.
        with open(LOCK_FILE, "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            remove_stale()
            self.subnet = _free_subnet()
            prefix = self.subnet.prefixlen
            _ip("link", "add", self.bridge, "type", "bridge")
            self.created.append(("link", self.bridge))
            _ip("addr", "add", f"{self.host_ip}/{prefix}", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")
        for n, role in enumerate(self.roles):
            ns, host_leg, ns_leg = self.namespace(role), f"pv{n}h{self.pid}", f"pv{n}n{self.pid}"
            _ip("netns", "add", ns)
            self.created.append(("netns", ns))
            _ip("link", "add", host_leg, "type", "veth", "peer", "name", ns_leg)
            self.created.append(("link", host_leg))
            _ip("link", "set", ns_leg, "netns", ns)
            _ip("link", "set", host_leg, "master", self.bridge)
            _ip("link", "set", host_leg, "up")
            _ip("-n", ns, "link", "set", ns_leg, "name", "eth0")
            _ip("-n", ns, "addr", "add", f"{self.ip_of(role)}/{prefix}", "dev", "eth0")
            _ip("-n", ns, "link", "set", "eth0", "up")
            _ip("-n", ns, "link", "set", "lo", "up")
        return self

    def command(self, role: str, argv: Iterable[str]) -> list[str]:
        """``argv`` run inside ``role``'s namespace (``ip netns exec`` then execs it)."""
        return ["ip", "netns", "exec", self.namespace(role), *argv]

    def destroy(self) -> None:
        """Remove what was created, newest first; deleting a namespace removes its veth pair."""
        errors = []
        for kind, name in reversed(self.created):
            try:
                if kind == "netns":
                    _ip("netns", "del", name)
                elif name in _ip("-o", "link", "show"):
                    _ip("link", "del", name)
            except (RuntimeError, CannotIsolate) as exc:
                errors.append(str(exc))
        self.created.clear()
        if errors:
            raise RuntimeError("; ".join(errors))


def net_namespace_of(pid: int) -> str:
    """An identifier of the network namespace ``pid`` lives in (``net:[inode]``)."""
    return os.readlink(f"/proc/{pid}/ns/net")


class TcpForwarder:
    """Listen on ``listen`` and pipe every connection to ``target`` (asyncio, own thread).

    Stands in for a database host: Postgres here listens on 127.0.0.1 only, and its
    configuration is not ours to change.
    """

    def __init__(self, listen: tuple[str, int], target: tuple[str, int]) -> None:
        self.listen, self.target = listen, target
        self.connections = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._server: asyncio.AbstractServer | None = None
        self._thread = threading.Thread(target=self._run, name="tcp-forwarder", daemon=True)

    @property
    def port(self) -> int:
        assert self._server is not None
        return self._server.sockets[0].getsockname()[1]

    def start(self) -> TcpForwarder:
        self._thread.start()
        if not self._ready.wait(10) or self._server is None:
            raise RuntimeError(f"forwarder could not listen on {self.listen}")
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._loop.call_soon_threadsafe(self._server.close)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._server = self._loop.run_until_complete(asyncio.start_server(self._handle, *self.listen))
        finally:
            self._ready.set()
        self._loop.run_forever()
        for task in asyncio.all_tasks(self._loop):
            task.cancel()
        self._loop.run_until_complete(asyncio.sleep(0))
        self._loop.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer), return_exceptions=True)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    finally:
        with contextlib.suppress(OSError, RuntimeError):
            writer.close()
