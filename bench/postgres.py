"""A private Postgres server for the suite, so nobody else's restart or load on the shared
server can end a 15-minute run, and so its CPU can be told apart from other people's.

Debian's binaries (``/usr/lib/postgresql/<version>/bin``), a fresh cluster in a temporary
directory, Postgres' default settings (``synchronous_commit=on``, ``fsync=on``,
``shared_buffers=128MB``, as the machine's own server), TCP on a free loopback port with
trust authentication. Run as the ``postgres`` user when this process is root (Postgres
refuses root). Without the binaries the suite falls back to the machine's server.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from tests.support.ports import free_port

PG_ROOT = Path("/usr/lib/postgresql")


def binaries() -> Path | None:
    versions = sorted((p for p in PG_ROOT.glob("*/bin") if (p / "initdb").exists()), key=lambda p: p.parent.name)
    return versions[-1] if versions else None


class PrivatePostgres:
    def __init__(self) -> None:
        self.bin = binaries()
        self.port = free_port()
        self.datadir: Path | None = None
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _as_postgres(self, args: list[str]) -> list[str]:
        if os.geteuid() == 0:
            return ["runuser", "-u", "postgres", "--", *args]
        return args

    def start(self) -> PrivatePostgres:
        if self.bin is None:
            raise FileNotFoundError("no Postgres binaries under /usr/lib/postgresql")
        self.datadir = Path(tempfile.mkdtemp(prefix="parley-bench-pg-"))
        if os.geteuid() == 0:
            shutil.chown(self.datadir, "postgres", "postgres")
        subprocess.run(
            self._as_postgres(
                [str(self.bin / "initdb"), "-D", str(self.datadir), "-A", "trust", "-U", "postgres", "--no-sync"]
            ),
            check=True,
            capture_output=True,
        )
        log = open(self.datadir.parent / f"{self.datadir.name}.log", "ab")  # noqa: SIM115 - lives with the server
        self.proc = subprocess.Popen(
            self._as_postgres(
                [
                    str(self.bin / "postgres"),
                    "-D",
                    str(self.datadir),
                    "-p",
                    str(self.port),
                    "-k",
                    str(self.datadir),
                    "-c",
                    "listen_addresses=127.0.0.1",
                    "-c",
                    "max_connections=200",
                ]
            ),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            ready = subprocess.run(
                [str(self.bin / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port)], capture_output=True
            )
            if ready.returncode == 0:
                return self
            time.sleep(0.2)
        self.stop()
        raise RuntimeError("private Postgres did not start")

    @property
    def pid(self) -> int | None:
        """The postmaster's pid (runuser's child when started through runuser)."""
        if self.datadir is None:
            return None
        pidfile = self.datadir / "postmaster.pid"
        with contextlib.suppress(OSError, ValueError):
            return int(pidfile.read_text().split("\n", 1)[0])
        return None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)  # fast shutdown
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        if self.datadir is not None:
            shutil.rmtree(self.datadir, ignore_errors=True)
            with contextlib.suppress(OSError):
                (self.datadir.parent / f"{self.datadir.name}.log").unlink()
            self.datadir = None
