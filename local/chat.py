"""A terminal chat with the agent: the local server by default, or any endpoint with a bearer token.

    make chat                                    # http://127.0.0.1:3000 as X-Local-User: alice
    CHAT_USER=bob make chat                      # another local user (the README's tour is alice's)
    SESSION=trip make chat                       # resume a session: its last turns are shown first
    ENDPOINT=https://... TOKEN=eyJ... make chat  # a deployed stack, with a Cognito id token

Lines starting with / are commands for this client, never sent to the model (/help lists them).
"""

import email.utils
import json
import os
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

from agent.api import SESSION_ID_PATTERN

HISTORY_FILE = Path.home() / ".agent_chat_history"
RESUME_MESSAGES = 6  # the last three turns: a user message and a reply each
REQUEST_TIMEOUT_SECONDS = 60
# The local user of `make chat`: the same as the README's tour, so /facts shows what the tour stored.
DEFAULT_CHAT_USER = "alice"
# A running turn is polled at these growing intervals: the server refreshes its partial reply about
# once a second, and every poll is a request (and, deployed, a Lambda invocation) counted against the
# route's throttle. The first poll comes soon, for short turns; a long one costs one request per 2 s.
FIRST_POLL_SECONDS = 0.5
MAX_POLL_SECONDS = 2.0
# API Gateway answers 429 Too Many Requests past its throttle, before the request reaches the function,
# so the request can be sent again, "in a way that is rate limiting"
# (https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-throttling.html).
# Without a Retry-After header, the client waits this long; it tries this many times in all.
THROTTLED_WAIT_SECONDS = 2.0
THROTTLED_ATTEMPTS = 4
HELP = """commands (never sent to the model):
  /help            this list
  /history         every message of this session
  /session NAME    switch to session NAME (its last turns are shown)
  /sessions        your sessions, newest first
  /facts           what the agent remembers about you
  /forget KEY      forget one fact
  /quit            leave (Ctrl-D works too)"""


class ApiError(Exception):
    """An answer other than 2xx (`status`), or no answer at all (`status` None): `str()` says what to do."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


class Throttled(ApiError):
    """429: the request never ran; it may be sent again after `retry_after` seconds."""

    def __init__(self, message: str, retry_after: float):
        super().__init__(message, 429)
        self.retry_after = retry_after


def invalid_session_name(name: str) -> str | None:
    """Why `name` cannot be a session id, by the API's own rule; None if it can."""
    if re.fullmatch(SESSION_ID_PATTERN, name):
        return None
    return f"not a session name: {name!r} (a session name matches {SESSION_ID_PATTERN})"


def session_path(session: str, *rest: str) -> str:
    return "/".join(["/sessions", urllib.parse.quote(session, safe=""), *rest])


class Client:
    def __init__(self, endpoint: str):
        self.endpoint = endpoint
        auth = {"Authorization": f"Bearer {os.environ['TOKEN']}"} if os.environ.get("TOKEN") else {
            "X-Local-User": os.environ.get("CHAT_USER", DEFAULT_CHAT_USER)
        }
        self.headers = {"Content-Type": "application/json", **auth}

    def call(self, method: str, path: str, body: dict | None = None, headers: dict | None = None) -> dict:
        """One request; a throttled one (429) is sent again after its Retry-After, a few times."""
        for _ in range(THROTTLED_ATTEMPTS - 1):
            try:
                return self.send(method, path, body, headers)
            except Throttled as throttled:
                print(f"  (throttled by the API: trying again in {throttled.retry_after:g} s)", flush=True)
                time.sleep(throttled.retry_after)
        return self.send(method, path, body, headers)

    def send(self, method: str, path: str, body: dict | None = None, headers: dict | None = None) -> dict:
        request = urllib.request.Request(f"{self.endpoint}{path}", method=method,
                                         headers={**self.headers, **(headers or {})},
                                         data=json.dumps(body).encode() if body is not None else None)
        try:
            with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT_SECONDS) as response:
                raw = response.read()
                return json.loads(raw) if raw else {}
        except urllib.error.HTTPError as error:
            message = describe_error(error.code, error.read())
            if error.code == 429:
                wait = retry_after_seconds(error.headers.get("Retry-After"))
                raise Throttled(f"{message} (try again in {wait:g} s)", wait) from None
            raise ApiError(message, error.code) from None
        except urllib.error.URLError as error:
            local = urllib.parse.urlsplit(self.endpoint).hostname in ("127.0.0.1", "localhost")
            hint = ("is the local server running? Start it with `make dev` in another terminal" if local
                    else "check ENDPOINT: eval \"$(make -s outputs)\" gives the stack's ApiUrl")
            raise ApiError(f"cannot reach {self.endpoint} ({error.reason}): {hint}") from None

    def history(self, session: str) -> list[dict]:
        messages, token = [], None
        while True:
            query = urllib.parse.urlencode({"limit": 100, **({"next_token": token} if token else {})})
            page = self.call("GET", f"{session_path(session, 'messages')}?{query}")
            messages += page["messages"]
            if not (token := page.get("next_token")):
                return messages


def describe_error(status: int, raw: bytes) -> str:
    """Both error shapes: the agent's {"error", "message"} and API Gateway's own {"message"}."""
    try:
        body = json.loads(raw)
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    if status == 401:
        hint = ("TOKEN is missing or expired: export TOKEN=$(make -s token)" if os.environ.get("TOKEN")
                else "set CHAT_USER to a user name")
        return f"{status} unauthorized: {body.get('message', 'no identity')} ({hint})"
    code = body.get("error") or "from API Gateway"
    return f"{status} {code}: {body.get('message') or raw[:200].decode(errors='replace')}"


def retry_after_seconds(header: str | None) -> float:
    """Retry-After in seconds, from either of its forms (RFC 9110: seconds or an HTTP date)."""
    if header:
        if header.strip().isdigit():
            return float(header)
        try:
            when = email.utils.parsedate_to_datetime(header)
            return max(0.0, when.timestamp() - time.time())
        except (TypeError, ValueError):
            pass
    return THROTTLED_WAIT_SECONDS


def poll_intervals():
    """Seconds to wait before each poll of a running turn: doubling from the first to the longest."""
    interval = FIRST_POLL_SECONDS
    while True:
        yield interval
        interval = min(interval * 2, MAX_POLL_SECONDS)


def show(messages: list[dict]) -> None:
    for message in messages:
        content = message["content"]
        text = content if isinstance(content, str) else " ".join(
            block.get("text", "") for block in content if isinstance(block, dict) and block.get("type") == "text")
        if text:
            print(f"{'you' if message['role'] == 'user' else 'agent'}> {text}")


class Chat:
    def __init__(self, client: Client, session: str):
        self.client, self.session = client, session

    def enter(self, session: str) -> None:
        """Switches to `session`, showing its last turns; an error leaves the chat where it was."""
        if problem := invalid_session_name(session):
            raise ApiError(problem)
        try:
            earlier = self.client.history(session)
        except ApiError as error:
            if error.status != 404:
                raise
            earlier = []  # a new session: nothing stored yet
        self.session = session
        print(f"session {session} on {self.client.endpoint}" + (f", {len(earlier)} messages so far" if earlier else ", new"))
        show(earlier[-RESUME_MESSAGES:])

    def command(self, line: str) -> bool:
        """Runs a /command; False when it is time to leave."""
        name, _, argument = line[1:].strip().partition(" ")
        argument = argument.strip()
        if name in ("quit", "exit", "q"):
            return False
        if name == "session" and argument:
            self.enter(argument)
        elif name == "history":
            show(self.client.history(self.session))
        elif name == "sessions":
            for s in self.client.call("GET", "/sessions")["sessions"]:
                print(f"  {s['session_id']}" + ("  (this one)" if s["session_id"] == self.session else ""))
        elif name == "facts":
            facts = self.client.call("GET", "/memory")["facts"]
            print("\n".join(f"  {key} = {value}" for key, value in sorted(facts.items())) or "  (no facts)")
        elif name == "forget" and argument:
            self.client.call("DELETE", f"/memory/{urllib.parse.quote(argument, safe='')}")
            print(f"  forgot {argument}")
        else:
            print(HELP)
        return True

    def say(self, message: str) -> None:
        """Every turn is asynchronous (Prefer: respond-async): the reply is printed as it grows."""
        # The key makes sending it again after a 429 safe: the API never stores a message twice.
        accepted = self.client.call("POST", session_path(self.session, "messages"), {"message": message},
                                    {"Prefer": "respond-async", "Idempotency-Key": uuid.uuid4().hex})
        body = self.follow(accepted["turn_id"])
        context = body["context"]
        if body.get("truncated"):
            print("       [the answer was cut off: the turn ran out of time]")
        print(f"       [context: {context['turns']} turns, {context['facts']} facts, "
              f"summary {'yes' if context['summary'] else 'no'}; memory write {body['memory']['write']}]")

    def follow(self, turn_id: str) -> dict:
        """Polls the running turn, printing its reply as it grows; returns the finished answer. A
        throttled poll only slows the polling down: the turn runs on in the server whatever happens here."""
        shown = ""
        print("agent> ", end="", flush=True)
        intervals = poll_intervals()
        while True:
            time.sleep(next(intervals))
            try:
                body = self.client.send("GET", session_path(self.session, "turns", turn_id))
            except Throttled as throttled:
                time.sleep(throttled.retry_after)
                continue
            reply = body.get("reply") or ""
            if reply != shown:
                # A later tool round may start the reply over: then it is printed anew.
                print(reply[len(shown):] if reply.startswith(shown) else f"\n       {reply}", end="", flush=True)
                shown = reply
            if body["status"] != "running":
                print()
                if body["status"] == "failed":
                    raise ApiError(f"{body['error']}: {body['message']}")
                return body


def lines():
    """Typed lines with line editing and a history kept across runs; piped input as it comes."""
    if not sys.stdin.isatty():
        yield from (line.rstrip("\n") for line in sys.stdin)
        return
    import readline

    try:
        readline.read_history_file(HISTORY_FILE)
    except OSError:
        pass
    try:
        while True:
            yield input("you> ")
    except EOFError:
        print()
    finally:
        readline.write_history_file(HISTORY_FILE)


def main() -> None:
    endpoint = os.environ.get("ENDPOINT", f"http://127.0.0.1:{os.environ.get('PORT', '3000')}").rstrip("/")
    chat = Chat(Client(endpoint), "")
    try:
        chat.enter(os.environ.get("SESSION", f"chat-{uuid.uuid4().hex[:8]}"))
    except ApiError as error:
        sys.exit(f"! {error}")
    print("/help for commands, Ctrl-D to quit")
    for line in lines():
        if not line.strip():
            continue
        try:
            if line.startswith("/"):
                if not chat.command(line):
                    return
            else:
                chat.say(line)
        except ApiError as error:
            print(f"! {error}")


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        print()
