"""The local server as a user meets it: API Gateway's behaviour at the edge, several instances,
and processes that stop and refuse cleanly. All through real sockets and real subprocesses."""

import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from client import as_user, raw, send_all
from local.dynamodb import ROOT, free_port, listening_socket
from local_stack import STACK_ENV, start_server, stop_server


FRAMING = [
    ("garbage request line", b"GARBAGE\r\n\r\n", 400),
    ("non-numeric Content-Length", b"POST /sessions/s/messages HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n", 400),
    ("negative Content-Length", b"POST /sessions/s/messages HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n", 400),
    ("TRACE", b"TRACE /health HTTP/1.1\r\nHost: x\r\n\r\n", 404),
    ("OPTIONS", b"OPTIONS /sessions HTTP/1.1\r\nHost: x\r\n\r\n", 404),
    ("request line and headers over 10,240 bytes",
     b"GET /health HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: %s\r\n" % (n, b"v" * 4000) for n in range(3)) + b"\r\n", 431),
    ("body over 10 MB", b"POST /sessions/s/messages HTTP/1.1\r\nHost: x\r\nX-Local-User: u\r\nContent-Length: 10485761\r\n\r\n", 413),
]


@pytest.mark.parametrize("name,request_bytes,status", FRAMING, ids=[case[0] for case in FRAMING])
def test_bad_framing_gets_api_gateways_json_error(server_url, reliability, name, request_bytes, status):
    answered, body = raw(server_url, request_bytes)
    assert answered == status
    assert body.startswith(b'{"message": "')
    reliability("Local server", f"HTTP framing: {name}", f"{status} JSON {body.decode()}")


def test_a_chunked_body_is_read_as_the_body(server_url, user):
    message = b'{"message": "chunked"}'
    request = (b"POST /sessions/chunks/messages HTTP/1.1\r\nHost: x\r\nX-Local-User: " + user.encode()
               + b"\r\nTransfer-Encoding: chunked\r\n\r\n" + b"%x\r\n%s\r\n0\r\n\r\n" % (len(message), message))
    status, body = raw(server_url, request)
    assert status == 200 and b"chunked" in body


def test_a_body_shorter_than_its_length_stores_nothing(server_url, api, user):
    # Given a client that announces 100 bytes, sends 19 and gives up
    request = (b"POST /sessions/short/messages HTTP/1.1\r\nHost: x\r\nX-Local-User: " + user.encode()
               + b'\r\nContent-Length: 100\r\n\r\n{"message": "short"}')
    status, _ = raw(server_url, request, half_close=True)
    # Then the handler never ran: no turn, no session
    assert status == 400
    assert api.get("/sessions", headers=as_user(user)).json() == {"sessions": []}


def test_head_gets_a_404_without_a_body(api):
    response = api.head("/health")
    assert response.status_code == 404 and response.content == b""


def test_repeated_query_parameters_are_joined_with_commas(api, user):
    # API Gateway passes limit=1&limit=2 as "1,2", which is no integer
    response = api.get("/sessions/s/messages?limit=1&limit=2", headers=as_user(user))
    assert response.status_code == 422 and "limit" in response.json()["message"]


def test_replies_are_utf8_not_escaped(api, user):
    response = api.post("/sessions/utf8/messages", json={"message": "très bien, 日本語"}, headers=as_user(user))
    assert "très bien, 日本語".encode() in response.content and b"\\u" not in response.content


def test_concurrent_turns_on_the_instances_are_all_answered(server_url, user):
    # Given more concurrent turns than one instance could hold
    responses = send_all(server_url, user, [(f"wide-{n}", f"m{n}") for n in range(8)])
    # Then every one is answered
    assert [r.status_code for r in responses] == [200] * 8


def stack_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "AWS_ENDPOINT_URL_DYNAMODB"}
    return env | STACK_ENV | {"PYTHONPATH": "functions:.", "LOCAL_WORKERS": "2"} | extra


def children(pid: int) -> set[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    return {int(p) for p in out.split()}


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return not open(f"/proc/{pid}/stat").read().split()[2] == "Z"


@pytest.mark.slow
@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_stops_everything_the_server_started(tmp_path, reliability, stop):
    # Given `make dev`'s server with its own DynamoDB Local and workers
    port, dynamodb_port = free_port(), free_port()
    process = start_server(stack_env(DYNAMODB_LOCAL_PORT=str(dynamodb_port), LOCAL_DATA_DIR=str(tmp_path)), port)
    started = children(process.pid)
    assert len(started) >= 2  # DynamoDB Local and the worker(s) up so far
    # When it gets the signal
    output = stop_server(process, stop)
    # Then every process it started is gone, the port of DynamoDB Local is free, and it said so
    assert not any(alive(pid) for pid in started)
    listening_socket(dynamodb_port, "", "").close()
    assert "agent stopped" in output and "Traceback" not in output
    reliability("Local server", f"{signal.Signals(stop).name} to `make dev`'s server",
                "server, workers and DynamoDB Local stopped; port free")


def test_a_busy_dynamodb_port_is_refused_not_adopted(reliability):
    # Given someone's own server on the DynamoDB Local port
    with socket.create_server(("127.0.0.1", 0)) as foreign:
        busy = foreign.getsockname()[1]
        # When the server starts
        result = subprocess.run([sys.executable, "-m", "local.server"], cwd=ROOT, capture_output=True, text=True,
                                env=stack_env(PORT=str(free_port()), DYNAMODB_LOCAL_PORT=str(busy)), timeout=60)
    # Then it refuses in one line that names the port and the ways out
    [line] = result.stderr.strip().splitlines()
    assert result.returncode == 1 and f"port {busy} is in use" in line
    assert "DYNAMODB_LOCAL_PORT" in line and "AWS_ENDPOINT_URL_DYNAMODB" in line
    reliability("Local server", "DynamoDB Local port already in use", "refused in one line, nothing adopted")


def test_a_busy_http_port_is_refused_in_one_line(dynamodb_endpoint, reliability):
    with socket.create_server(("127.0.0.1", 0)) as foreign:
        busy = foreign.getsockname()[1]
        result = subprocess.run([sys.executable, "-m", "local.server"], cwd=ROOT, capture_output=True, text=True,
                                env=stack_env(PORT=str(busy), AWS_ENDPOINT_URL_DYNAMODB=dynamodb_endpoint), timeout=60)
    [line] = result.stderr.strip().splitlines()
    assert result.returncode == 1 and f"port {busy} is in use" in line and "PORT" in line
    reliability("Local server", "HTTP port already in use", "refused in one line")


@pytest.mark.slow
def test_without_java_the_console_says_once_where_the_data_is(tmp_path):
    # Given a machine without Java: only the Python running the tests on the PATH
    env = stack_env(PATH=str(Path(sys.executable).parent), DYNAMODB_LOCAL_PORT=str(free_port()),
                    LOCAL_DATA_DIR=str(tmp_path))
    # When the server starts, on moto's fallback
    output = stop_server(start_server(env, free_port()))
    # Then its line says the data is in memory only, and names no data directory
    (line,) = [line for line in output.splitlines() if line.startswith("moto server")]
    assert "in memory only" in line and "data in" not in line and str(tmp_path) not in line


def held_port_pair() -> tuple[socket.socket, socket.socket]:
    """Two listening sockets on consecutive ports, as when another `make dev` holds the next one too."""
    while True:
        first = socket.create_server(("127.0.0.1", 0))
        try:
            return first, socket.create_server(("127.0.0.1", first.getsockname()[1] + 1))
        except OSError:
            first.close()


def test_the_port_proposed_for_a_busy_one_is_free(dynamodb_endpoint):
    # Given the port and the one after it both in use
    held = held_port_pair()
    busy = held[0].getsockname()[1]
    try:
        result = subprocess.run([sys.executable, "-m", "local.server"], cwd=ROOT, capture_output=True, text=True,
                                env=stack_env(PORT=str(busy), AWS_ENDPOINT_URL_DYNAMODB=dynamodb_endpoint), timeout=60)
        # Then the port it proposes is neither of them, and free
        [line] = result.stderr.strip().splitlines()
        (proposed,) = re.findall(r"PORT=(\d+) make dev", line)
        assert int(proposed) not in (busy, busy + 1)
        listening_socket(int(proposed), "", "").close()
    finally:
        for sock in held:
            sock.close()


@pytest.mark.slow
def test_the_console_has_a_banner_an_access_line_and_a_stop_line(dynamodb_endpoint, tables):
    port = free_port()
    process = start_server(stack_env(AWS_ENDPOINT_URL_DYNAMODB=dynamodb_endpoint), port)
    httpx.get(f"http://127.0.0.1:{port}/sessions", headers=as_user("console-user"))
    output = stop_server(process)
    assert f"listening on http://127.0.0.1:{port}" in output and "curl" in output and "Ctrl-C" in output
    assert "GET /sessions 200 " in output and "agent stopped" in output
    assert '"_aws"' not in output  # no EMF metric blobs on a laptop
