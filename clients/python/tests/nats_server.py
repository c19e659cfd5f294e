"""A real nats-server for tests that need NATS but not a cluster: a free port, no authentication, monitoring on.

Like the TypeScript harness (deploy/nats-server.ts): the binary is
``POCKET_NATS_SERVER`` or ``nats-server`` where it is usually installed, the
server picks its ports (``-1``) and writes them to a ports file, which is
awaited with a deadline. A missing binary fails the test, saying how to get it.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import time
import urllib.request
from pathlib import Path

import pytest

_CANDIDATES = ("/usr/bin/nats-server", "/usr/local/bin/nats-server", "/usr/sbin/nats-server")
READY_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 5.0


def nats_server_binary() -> str:
    from_env = os.environ.get("POCKET_NATS_SERVER")
    if from_env and os.path.exists(from_env):
        return from_env
    for c in _CANDIDATES:
        if os.path.exists(c):
            return c
    found = shutil.which("nats-server")
    if found:
        return found
    pytest.fail("nats-server not found: install it (Debian: apt-get install nats-server; or `npm run provision`) "
                "or point POCKET_NATS_SERVER at the binary")


class NatsServer:
    """One nats-server process; ``url`` for clients, ``connections()`` from its monitoring endpoint."""

    def __init__(self, process: asyncio.subprocess.Process, url: str, monitor_url: str) -> None:
        self.process = process
        self.url = url
        self.monitor_url = monitor_url

    @classmethod
    async def start(cls, directory: Path, *, max_payload: int | None = None) -> "NatsServer":
        directory.mkdir(parents=True, exist_ok=True)
        conf = directory / "nats.conf"
        lines = ['listen: "127.0.0.1:-1"', 'http: "127.0.0.1:-1"', f'ports_file_dir: "{directory}"']
        if max_payload is not None:
            lines.append(f"max_payload: {max_payload}")
        conf.write_text("\n".join(lines) + "\n")
        binary = nats_server_binary()
        with open(directory / "nats.log", "ab") as log:
            process = await asyncio.create_subprocess_exec(binary, "-c", str(conf), stdout=log, stderr=log)
        ports_file = directory / f"{Path(binary).name}_{process.pid}.ports"
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            if process.returncode is not None:
                raise RuntimeError(f"nats-server exited with {process.returncode}; see {directory / 'nats.log'}")
            if ports_file.exists():
                ports = json.loads(ports_file.read_text() or "{}")
                if ports.get("nats") and ports.get("monitoring"):
                    return cls(process, ports["nats"][0], ports["monitoring"][0])
            if time.monotonic() > deadline:
                process.kill()
                await process.wait()
                raise RuntimeError(f"nats-server did not listen within {READY_TIMEOUT_S:g} s; see {directory / 'nats.log'}")
            await asyncio.sleep(0.02)

    async def connections(self) -> int:
        """Client connections open now (``/connz``)."""
        def fetch() -> int:
            with urllib.request.urlopen(f"{self.monitor_url}/connz", timeout=5) as r:
                return int(json.load(r)["num_connections"])

        return await asyncio.to_thread(fetch)

    async def stop(self) -> None:
        if self.process.returncode is None:
            self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), STOP_TIMEOUT_S)
            except asyncio.TimeoutError:
                self.process.kill()
                await self.process.wait()
