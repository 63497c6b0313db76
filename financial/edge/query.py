"""A query string's canonical form: the parameters it means, apart from how they were spelled.

The response cache keys public answers by it (`response_cache.key`), before Flask, without routing or
validation; the parameter parser (`financial.api.params`) reads integers by the same rule. Two spellings
share a form only when the parser reads them alike, so a stored answer is only ever served to a query
that would have computed it:

- parameters are split and percent-decoded exactly as Flask's `request.args` does, then sorted by name
  (stably: of a repeated parameter the parser reads the first, which stays first);
- the value of a parameter declared as an integer anywhere in the API (`INTEGER_PARAMETERS`) is written
  as its number when it is one (`5`, `+5`, `05`, `%2B5` are all `5`); a value that is not an integer is
  kept as sent, and is refused with 400 before anything is stored under it.

Integers are ASCII digits only, with an optional sign and surrounding spaces (a `+` in a URL reads as a
space): Python's `int()` also takes other scripts' digits (`٥`, `５`) and underscores (`1_0`), which no
client means and would give one number many spellings.
"""
from __future__ import annotations

import re
from urllib.parse import parse_qsl, quote, urlencode

import werkzeug.urls  # noqa: F401  # registers the "werkzeug.url_quote" codec error handler used below

INTEGER = re.compile(r"[+-]?[0-9]+")
# The names of integer query parameters, added by `financial.api.params` as it declares them.
INTEGER_PARAMETERS: set[str] = set()


def ascii_integer(text: str) -> int | None:
    """The integer `text` spells in ASCII digits (sign and surrounding spaces allowed), else None."""
    stripped = text.strip(" ")
    if not INTEGER.fullmatch(stripped):
        return None
    try:
        return int(stripped)
    except ValueError:  # more digits than Python converts (4300)
        return None


def canonical(query_string: str) -> str:
    """The canonical form of a query string (as the WSGI environ holds it)."""
    if not query_string:
        return ""
    pairs = parse_qsl(query_string, keep_blank_values=True, errors="werkzeug.url_quote")
    pairs.sort(key=lambda pair: pair[0])
    canonical_pairs = []
    for name, value in pairs:
        if name in INTEGER_PARAMETERS:
            number = ascii_integer(value)
            if number is not None:
                value = str(number)
        canonical_pairs.append((name, value))
    return urlencode(canonical_pairs, quote_via=quote, safe="")
