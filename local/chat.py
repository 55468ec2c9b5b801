"""A terminal chat with the agent: the local server by default, or any endpoint with a bearer token.

    make chat                                  # http://127.0.0.1:3000 as X-Local-User: local-user
    ENDPOINT=https://... TOKEN=eyJ... make chat  # a deployed stack, with a Cognito id token
"""

import json
import os
import sys
import time
import urllib.error
import urllib.request
import uuid


def headers() -> dict:
    auth = {"Authorization": f"Bearer {os.environ['TOKEN']}"} if os.environ.get("TOKEN") else {
        "X-Local-User": os.environ.get("CHAT_USER", "local-user")
    }
    return {"Content-Type": "application/json", **auth}


# How often a running turn is polled: the server refreshes its partial reply about once a second.
POLL_SECONDS = 0.3


def call(url: str, *, data: dict | None = None, extra: dict | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=json.dumps(data).encode() if data is not None else None,
                                     headers={**headers(), **(extra or {})}, method="POST" if data is not None else "GET")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def send(endpoint: str, session: str, message: str) -> tuple[int, dict]:
    """Every turn is asynchronous (Prefer: respond-async): the reply is printed as it grows, and the
    finished turn's answer (or its failure) is returned, as the synchronous route would answer."""
    status, body = call(f"{endpoint}/sessions/{session}/messages", data={"message": message},
                        extra={"Prefer": "respond-async"})
    if status != 202:
        return status, body
    shown = ""
    print("agent> ", end="", flush=True)
    while True:
        status, body = call(f"{endpoint}/sessions/{session}/turns/{body['turn_id']}")
        reply = body.get("reply") or ""
        if status == 200 and reply != shown:
            # The reply grows; a later tool round may start it over, then it is printed anew.
            print(reply[len(shown):] if reply.startswith(shown) else f"\n       {reply}", end="", flush=True)
            shown = reply
        if status != 200 or body.get("status") != "running":
            print()
            return (200, body) if body.get("status") == "done" else (status if status != 200 else 503, body)
        time.sleep(POLL_SECONDS)


def main() -> None:
    endpoint = os.environ.get("ENDPOINT", f"http://127.0.0.1:{os.environ.get('PORT', '3000')}").rstrip("/")
    session = os.environ.get("SESSION", f"chat-{uuid.uuid4().hex[:8]}")
    print(f"session {session} on {endpoint} (Ctrl-D to quit)")
    for line in sys.stdin if not sys.stdin.isatty() else iter(lambda: input("you> "), None):
        if not line.strip():
            continue
        try:
            status, body = send(endpoint, session, line.rstrip("\n"))
        except urllib.error.URLError as error:
            print(f"! cannot reach {endpoint}: {error.reason} (is `make dev` running?)")
            continue
        if status != 200:
            print(f"! {status} {body.get('error')}: {body.get('message')}")
            continue
        context = body["context"]
        if body.get("truncated"):
            print("       [the answer was cut off: the turn ran out of time]")
        print(f"       [context: {context['turns']} turns, {context['facts']} facts, "
              f"summary {'yes' if context['summary'] else 'no'}; memory write {body['memory']['write']}]")


if __name__ == "__main__":
    try:
        main()
    except (EOFError, KeyboardInterrupt):
        print()
