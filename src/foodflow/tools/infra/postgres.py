"""A project-owned PostgreSQL cluster from Debian's packages; its schema: the owners' migrations."""

from __future__ import annotations

import asyncio
import glob
import os
import pwd
import shutil
import subprocess
from pathlib import Path

import asyncpg

from foodflow.platform.config import Settings
from foodflow.platform.errors import InfraError
from foodflow.tools.infra import process
from foodflow.tools.infra.schema import migrate_all

NAME = "postgres"
# PostgreSQL refuses to run as root; as root we run it as Debian's `postgres` account.
SERVICE_ACCOUNT = "postgres"


def find_bin_dir() -> str | None:
    """Newest Debian PostgreSQL bin folder, or wherever initdb is on PATH."""
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    if candidates:
        return str(Path(candidates[-1]).parent)
    found = shutil.which("initdb")
    return str(Path(found).parent) if found else None


class PostgresServer:
    name = NAME

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.home = settings.state_dir / NAME
        self.data_dir = self.home / "data"
        self.socket_dir = self.home / "run"
        self.log = self.home / "postgres.log"

    @property
    def address(self) -> str:
        return f"{self.settings.postgres_host}:{self.settings.postgres_port}"

    def _bin(self, tool: str) -> str:
        bin_dir = process.ensure_tool(
            "initdb", server=NAME, find=lambda: (d + "/initdb") if (d := find_bin_dir()) else None
        )
        return str(Path(bin_dir).parent / tool)

    def _as_owner(self, argv: list[str]) -> list[str]:
        if process.is_root():
            return ["runuser", "-u", SERVICE_ACCOUNT, "--", *argv]
        return argv

    def _pg_ctl(self, *args: str, timeout: float = 90) -> str:
        return process.run(
            self._as_owner([self._bin("pg_ctl"), "-D", str(self.data_dir), *args]),
            server=NAME,
            timeout=timeout,
        )

    def is_running(self) -> bool:
        if not (self.data_dir / "postmaster.pid").exists():
            return False
        done = subprocess.run(
            self._as_owner([self._bin("pg_ctl"), "-D", str(self.data_dir), "status"]),
            capture_output=True,
            check=False,
        )
        return done.returncode == 0

    def _prepare_dirs(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        self.socket_dir.mkdir(parents=True, exist_ok=True)
        if process.is_root():
            account = pwd.getpwnam(SERVICE_ACCOUNT)
            for path in (self.home, self.socket_dir):
                os.chown(path, account.pw_uid, account.pw_gid)
            if self.log.exists():
                os.chown(self.log, account.pw_uid, account.pw_gid)
            # The service account must be able to walk down to the data folder.
            for parent in self.home.parents:
                mode = parent.stat().st_mode
                if not mode & 0o001:
                    parent.chmod(mode | 0o001)

    def _initdb(self) -> None:
        pwfile = self.home / ".pwfile"
        pwfile.write_text(self.settings.postgres_password + "\n")
        if process.is_root():
            account = pwd.getpwnam(SERVICE_ACCOUNT)
            os.chown(pwfile, account.pw_uid, account.pw_gid)
        pwfile.chmod(0o600)
        try:
            process.run(
                self._as_owner(
                    [
                        self._bin("initdb"), "-D", str(self.data_dir),
                        "-U", self.settings.postgres_user, f"--pwfile={pwfile}",
                        "--auth-local=trust", "--auth-host=scram-sha-256",
                        "-E", "UTF8", "--locale=C.UTF-8",
                    ]
                ),
                server=NAME,
                timeout=180,
            )  # fmt: skip
        finally:
            pwfile.unlink(missing_ok=True)

    def start(self) -> bool:
        """Start the cluster unless it runs (creating it on first use); True when started."""
        if self.is_running():
            self.ensure_database()
            return False
        if process.port_open(self.settings.postgres_host, self.settings.postgres_port):
            raise InfraError(
                NAME,
                f"port {self.settings.postgres_port} is taken by a server foodflow did not start",
                "Stop it (e.g. `pg_ctlcluster 15 main stop`), or set POSTGRES_PORT.",
            )
        self._prepare_dirs()
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb()
        options = (
            f"-p {self.settings.postgres_port} -k {self.socket_dir} "
            f"-c listen_addresses={self.settings.postgres_host} -c max_connections=200 "
            "-c shared_buffers=256MB -c synchronous_commit=on -c fsync=on"
        )
        try:
            self._pg_ctl("start", "-w", "-t", "60", "-l", str(self.log), "-o", options, timeout=90)
        except InfraError as exc:
            raise InfraError(NAME, exc.message, process.tail(self.log)) from exc
        self.ensure_database()
        return True

    def ensure_database(self) -> None:
        """Create the database if missing, then apply the (idempotent) schema and seed menu."""
        try:
            asyncio.run(self._ensure_database())
        except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
            raise InfraError(NAME, f"database setup failed: {exc}", process.tail(self.log)) from exc

    async def _ensure_database(self) -> None:
        s = self.settings
        conn = await asyncpg.connect(
            host=s.postgres_host, port=s.postgres_port, user=s.postgres_user,
            password=s.postgres_password, database="postgres", timeout=10,
        )  # fmt: skip
        try:
            exists = await conn.fetchval(
                "SELECT 1 FROM pg_database WHERE datname = $1", s.postgres_db
            )
            if not exists:
                # Identifiers cannot be parameters; quote_ident-equivalent via format('%I').
                stmt = await conn.fetchval(
                    "SELECT format('CREATE DATABASE %I', $1::text)", s.postgres_db
                )
                await conn.execute(stmt)
        finally:
            await conn.close()
        conn = await asyncpg.connect(s.postgres_dsn, timeout=10)
        try:
            await conn.execute("SELECT 1")
            await migrate_all(conn)
        finally:
            await conn.close()

    def stop(self) -> bool:
        if not self.is_running():
            return False
        self._pg_ctl("stop", "-m", "fast", "-w", "-t", "60")
        return True

    def wipe(self) -> None:
        shutil.rmtree(self.home, ignore_errors=True)
