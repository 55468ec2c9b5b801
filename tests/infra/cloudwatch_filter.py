"""A small evaluator for CloudWatch Logs JSON filter patterns, for the subset this project uses:

    { $.field = "value" }          string equality, `*` wildcards inside the quotes
    { $.a.b[0] = 42 }              numeric equality, nested fields and array indexes
    { $.x = "a" && $.y = "b" }     conjunction

Semantics follow the CloudWatch Logs filter pattern syntax: a JSON pattern matches only log events
that are JSON objects; a string value matches only a JSON string, compared exactly (case-sensitive)
except for `*`; a number matches a JSON number of the same value; a missing field never matches.
Anything outside the subset raises ValueError, so a pattern this cannot judge fails the test
instead of passing it. (moto treats every JSON pattern as match-all, so it cannot do this job.)
"""

import json
import re
from dataclasses import dataclass

_SELECTOR = r"\$((?:\.[A-Za-z_][A-Za-z0-9_]*|\[\d+\])+)"
_STRING = r'"((?:[^"\\])*)"'
_NUMBER = r"(-?\d+(?:\.\d+)?)"
_CONDITION = re.compile(rf"\s*{_SELECTOR}\s*=\s*(?:{_STRING}|{_NUMBER})\s*")
_PATH_STEP = re.compile(r"\.([A-Za-z_][A-Za-z0-9_]*)|\[(\d+)\]")
_MISSING = object()


@dataclass(frozen=True)
class Condition:
    path: tuple[str | int, ...]
    value: str | float

    def matches(self, event: dict) -> bool:
        found = _select(event, self.path)
        if isinstance(self.value, str):
            return isinstance(found, str) and _wildcard(self.value).fullmatch(found) is not None
        is_number = isinstance(found, (int, float)) and not isinstance(found, bool)
        return is_number and found == self.value


def parse(pattern: str) -> list[Condition]:
    """The conditions of `{ cond && cond ... }`; ValueError for anything else."""
    body = pattern.strip()
    if not (body.startswith("{") and body.endswith("}")):
        raise ValueError(f"not a JSON filter pattern: {pattern!r}")
    conditions = []
    for part in body[1:-1].split("&&"):
        match = _CONDITION.fullmatch(part)
        if not match:
            raise ValueError(f"unsupported condition {part.strip()!r} in {pattern!r}")
        selector, string, number = match.groups()
        path = tuple(name or int(index) for name, index in _PATH_STEP.findall(selector))
        conditions.append(Condition(path=path, value=string if string is not None else float(number)))
    return conditions


def matches(pattern: str, log_event: str) -> bool:
    """Whether CloudWatch Logs would select `log_event` (one event's message) with `pattern`."""
    conditions = parse(pattern)
    try:
        event = json.loads(log_event)
    except ValueError:
        return False
    return isinstance(event, dict) and all(condition.matches(event) for condition in conditions)


def _select(event, path):
    current = event
    for step in path:
        if isinstance(step, int):
            if not isinstance(current, list) or step >= len(current):
                return _MISSING
            current = current[step]
        else:
            if not isinstance(current, dict) or step not in current:
                return _MISSING
            current = current[step]
    return current


def _wildcard(value: str) -> re.Pattern:
    return re.compile(".*".join(re.escape(part) for part in value.split("*")), re.DOTALL)
