"""Run the app under gunicorn with the shipped config, on a fresh database."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.peers import process
from tests.peers.database import database


class AppServer:
    """gunicorn serving ``wsgi:app`` on 127.0.0.1 with an instance folder of its own."""

    def __init__(self, tmp: Path, env: dict[str, str] | None = None, workers: int | None = 1,
                 database_url: str | None = None):
        self.port = process.free_port()
        self._database = None
        if database_url is None:
            self._database = database(tmp, f"app{self.port}")
            database_url = self._database.__enter__()
        self.base = f"http://127.0.0.1:{self.port}"
        self.env = {
            "FLASK_INSTANCE_PATH": str(tmp / "instance"),
            "DATABASE_URL": database_url,
            "FLASK_APP": "wsgi:app",
            "GUNICORN_BIND": f"127.0.0.1:{self.port}",
            "GUNICORN_ACCESSLOG": "",
            **(env or {}),
        }
        if workers is not None:  # None: the shipped gunicorn.conf.py decides
            self.env["GUNICORN_WORKERS"] = str(workers)
        self.bin = Path(process.python()).parent
        self.proc: subprocess.Popen | None = None

    def flask(self, *args: str) -> str:
        """Run a ``flask`` command against this server's configuration."""
        result = subprocess.run([str(self.bin / "flask"), *args], cwd=process.ROOT,
                                env={**os.environ, **self.env}, capture_output=True, text=True,
                                timeout=120)
        if result.returncode != 0:
            raise RuntimeError(f"flask {' '.join(args)} failed:\n{result.stdout}{result.stderr}")
        return result.stdout

    def start(self) -> AppServer:
        self.flask("db", "upgrade")
        self.proc = process.start([str(self.bin / "gunicorn"), "-c", "gunicorn.conf.py",
                                   "wsgi:app"], self.base + "/healthz", env=self.env)
        return self

    def stop(self) -> None:
        if self.proc is not None:
            process.stop(self.proc)
            self.proc = None
        if self._database is not None:
            self._database.__exit__(None, None, None)
            self._database = None
