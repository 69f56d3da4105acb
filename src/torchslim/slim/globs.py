"""Path globs with ``**``: the one matching language of rules and ``--keep``.

``fnmatch`` lets ``*`` cross ``/``, which makes ``torch/lib/*.so`` match files in
sub-directories; rules must say exactly what they remove, so we compile our own:
``*`` and ``?`` stay inside one path segment, ``**`` spans any number of segments.
"""

from __future__ import annotations

import re
from functools import lru_cache


@lru_cache(maxsize=1024)
def compile_glob(pattern: str) -> re.Pattern[str]:
    """Translate a POSIX path glob into an anchored regular expression."""
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:[^/]*/)*")  # zero or more whole segments
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif c == "*":
            out.append("[^/]*")
            i += 1
        elif c == "?":
            out.append("[^/]")
            i += 1
        elif c == "[":
            end = pattern.find("]", i + 2)
            if end == -1:
                out.append(re.escape(c))
                i += 1
            else:
                body = pattern[i + 1 : end]
                if body.startswith("!"):
                    body = "^" + body[1:]
                out.append("[" + body.replace("\\", "\\\\") + "]")
                i = end + 1
        else:
            out.append(re.escape(c))
            i += 1
    return re.compile("".join(out) + r"\Z")


def glob_match(pattern: str, path: str) -> bool:
    """True when the POSIX ``path`` matches ``pattern`` as a whole."""
    return compile_glob(pattern).match(path) is not None


def match_self_or_parent(pattern: str, path: str) -> bool:
    """True when ``path`` or one of its parent directories matches ``pattern``.

    This lets ``--keep torch/include`` keep the whole directory, as a user expects.
    """
    if glob_match(pattern, path):
        return True
    parts = path.split("/")
    return any(glob_match(pattern, "/".join(parts[:k])) for k in range(1, len(parts)))
