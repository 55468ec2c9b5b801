"""What the unit tests' memory stores (on moto, tests/unit/conftest.py) are made of: their table
names, a clock a test moves by hand, and turns to store."""

from memory.turns import Turn, Usage, iso, new_turn_id

SESSIONS, LONG_TERM = "sessions", "long-term"


class Clock:
    def __init__(self, now: float = 1_800_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def make_turn(clock, n: int, user: str = "u1", session: str = "s1") -> Turn:
    clock.now += 1
    return Turn(
        user_id=user,
        session_id=session,
        turn_id=new_turn_id(clock.now),
        created_at=iso(clock.now),
        messages=[
            {"role": "user", "content": f"message {n}"},
            {"role": "assistant", "content": [{"type": "text", "text": f"reply {n}"}]},
        ],
        usage=Usage(100 + n, 10),
    )
