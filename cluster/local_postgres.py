"""A private PostgreSQL server for tests and local multi-node trials: its own data dir, 127.0.0.1 and a free
port, password (scram) over TCP, stopped by its own `pg_ctl -D <data dir>` (never the system service).

  python -m cluster.local_postgres start /tmp/rs-pg   # prints the store_url
  python -m cluster.local_postgres stop /tmp/rs-pg

Needs Debian's `postgresql` package (initdb/pg_ctl in /usr/lib/postgresql/<version>/bin). PostgreSQL refuses
to run as root, so as root the server runs as the `postgres` user (runuser), the data dir owned by it.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path


def pg_bin_dir() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: int(p.parent.parent.name), reverse=True)
    if found:
        return found[0].parent
    which = shutil.which("pg_ctl")
    return Path(which).parent if which else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class LocalPostgres:
    root: Path
    port: int = 0
    user: str = "reelscope"
    password: str = ""

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def url(self) -> str:
        return f"postgresql://{self.user}:{self.password}@127.0.0.1:{self.port}/postgres"

    def _as_owner(self, *argv: str) -> list[str]:
        return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else list(argv)

    def start(self, timeout: float = 60) -> str:
        bin_dir = pg_bin_dir()
        if bin_dir is None:
            raise RuntimeError("PostgreSQL is not installed (Debian: apt-get install -y postgresql)")
        self.root.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()
        self.password = self.password or secrets.token_hex(16)
        pwfile = self.root / "pwfile"
        pwfile.write_text(self.password)
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
            shutil.chown(pwfile, "postgres", "postgres")
        pwfile.chmod(0o600)
        subprocess.run(self._as_owner(str(bin_dir / "initdb"), "-D", str(self.data_dir), "-U", self.user, f"--pwfile={pwfile}",
                                      "--auth-host=scram-sha-256", "--auth-local=scram-sha-256", "-E", "UTF8", "--no-sync"),
                       check=True, capture_output=True, timeout=timeout)
        pwfile.unlink()
        # Loopback only, sockets inside our own data dir, small memory: a test server beside other work.
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -c unix_socket_directories={self.data_dir} " \
                  "-c shared_buffers=16MB -c max_connections=40 -c fsync=off"
        subprocess.run(self._as_owner(str(bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-l", str(self.data_dir / "server.log"),
                                      "-o", options, "-w", "-t", str(int(timeout)), "start"),
                       check=True, capture_output=True, timeout=timeout + 5)
        return self.url

    def stop(self, timeout: float = 30) -> None:
        bin_dir = pg_bin_dir()
        if bin_dir and (self.data_dir / "postmaster.pid").exists():
            subprocess.run(self._as_owner(str(bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "-w", "stop"),
                           capture_output=True, timeout=timeout)


if __name__ == "__main__":
    action, root = sys.argv[1], Path(sys.argv[2]).resolve()
    server = LocalPostgres(root)
    if action == "start":
        print(server.start())
    else:
        server.stop()
