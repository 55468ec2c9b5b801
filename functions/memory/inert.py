"""User-derived text rendered as data for a prompt: JSON that no character can break out of.

Whatever a user (or a model they talked into it) wrote goes into the prompt as a JSON value, with
more escaped than `json.dumps` escapes: angle brackets, so no value can close or open a tag block;
C1 controls, lone surrogates and U+2028/9, so none can break a line; and invisible format
characters, so none can hide text from a person reading the prompt while the model reads it (tag
characters U+E0000-E007F spelling instructions, bidi overrides, zero-width spaces). Escaped, it is
still the same JSON value."""

import json
import unicodedata

# Joiners that Persian, Indic scripts and emoji sequences need: they join or part what is visible
# and hide nothing, so they stay as they are, here and in stored facts (memory.long_term).
JOINERS = frozenset({"\u200c", "\u200d"})  # ZWNJ, ZWJ
# Controls (C1: json.dumps escapes only C0), surrogates, line and paragraph separators.
_BREAKING_CATEGORIES = frozenset({"Cc", "Cs", "Zl", "Zp"})
_ANGLES = str.maketrans({"<": "\\u003c", ">": "\\u003e"})


def invisible(char: str) -> bool:
    """A format character (Unicode category Cf: tag characters, bidi controls, zero-width spaces,
    the byte order mark...) other than the joiners."""
    return unicodedata.category(char) == "Cf" and char not in JOINERS


def inert_json(value) -> str:
    """`value` (a string, or any JSON value of strings) as JSON on one line, with every character
    that could break out of it or hide in it written as a \\uXXXX escape."""
    text = json.dumps(value, ensure_ascii=False).translate(_ANGLES)
    if text.isprintable():  # one pass in C: no control, separator or format character at all
        return text
    return "".join(_escape(char) if _unsafe(char) else char for char in text)


def _unsafe(char: str) -> bool:
    return unicodedata.category(char) in _BREAKING_CATEGORIES or invisible(char)


def _escape(char: str) -> str:
    """JSON's escape: above U+FFFF, as its UTF-16 surrogate pair (RFC 8259 section 7)."""
    utf16 = char.encode("utf-16-be", "surrogatepass")
    return "".join(f"\\u{int.from_bytes(utf16[i:i + 2], 'big'):04x}" for i in range(0, len(utf16), 2))
