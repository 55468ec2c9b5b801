"""A terminal chat with the agent: the local server by default, or any endpoint with a bearer token.

    make chat                                  # http://127.0.0.1:3000 as X-Local-User: local-user
    ENDPOINT=https://... TOKEN=eyJ... make chat  # a deployed stack, with a Cognito id token
"""

import json
import os
import sys
import urllib.error
import urllib.request
import uuid


def headers() -> dict:
    auth = {"Authorization": f"Bearer {os.environ['TOKEN']}"} if os.environ.get("TOKEN") else {
        "X-Local-User": os.environ.get("CHAT_USER", "local-user")
    }
    return {"Content-Type": "application/json", **auth}


def send(endpoint: str, session: str, message: str) -> tuple[int, dict]:
    request = urllib.request.Request(
        f"{endpoint}/sessions/{session}/messages",
        data=json.dumps({"message": message}).encode(),
        headers=headers(),
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


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
        print(f"agent> {body['reply']}")
        print(f"       [context: {context['turns']} turns, {context['facts']} facts, "
              f"summary {'yes' if context['summary'] else 'no'}; memory write {body['memory']['write']}]")


if __name__ == "__main__":
    try:
        main()
    except (EOFError, KeyboardInterrupt):
        print()
