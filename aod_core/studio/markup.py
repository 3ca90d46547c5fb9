"""Values from files, URLs and models shown as text inside Streamlit Markdown.

Streamlit renders the body of ``st.markdown``, ``st.caption``, the alerts, headings and widget labels
and help as GitHub Markdown: ``![x](http://host/p.png)`` in a seed value would make every browser
that opens the page fetch that image, ``[x](url)`` and a bare ``http://...`` become links, ``$a$`` is
typeset as math. (Emoji and icon short codes such as ``:smile:`` still render: they fetch nothing.)
The pages pass every value they did not write themselves (seed values, schema keys,
file and run names, prompt text, the judge's reasons, error messages that quote any of these)
through :func:`md` (or :func:`md_code` inside backticks), so it reads as the characters it holds.
"""

from __future__ import annotations

import re
from typing import Any

# Characters that start inline Markdown anywhere: escapes, code, emphasis, strikethrough, links and
# images (no "[", no link, image or Streamlit directive like :red[...]), HTML and entities, math,
# table cells. A backslash before ASCII punctuation shows that character and nothing else.
_INLINE = re.compile(r"([\\`*_~\[\]<>&$|])")
# Block syntax counts only at the start of a line: headings, quotes, list items, setext underlines.
_LINE_START = re.compile(r"^([ \t]*)([#>+=\-])", re.M)
_ORDERED = re.compile(r"^([ \t]*\d+)([.)])", re.M)
# GitHub's bare-link rule runs on the text after escapes are read (a backslash does not stop it), so
# an invisible word joiner (U+2060) after "http:", "www" and "@" breaks its patterns instead.
_JOINER = "\u2060"
_AUTOLINK = re.compile(r"(?i)(https?:(?=//)|www(?=\.)|@)")


def md(value: Any) -> str:
    """``value`` as Markdown that renders as its own text: no image, link, HTML, math or formatting."""
    text = _INLINE.sub(r"\\\1", str(value))
    text = _ORDERED.sub(r"\1\\\2", _LINE_START.sub(r"\1\\\2", text))
    return _AUTOLINK.sub(lambda m: m[1] + _JOINER, text)


def md_code(value: Any) -> str:
    """``value`` as a Markdown code span: backslashes show as they are there, so :func:`md` cannot
    be used; a fence longer than any run of backticks in it keeps it one span."""
    text = re.sub(r"[\r\n]+", " ", str(value))  # a line break would let a new block start inside it
    fence = "`" * (max((len(r) for r in re.findall(r"`+", text)), default=0) + 1)
    if text.startswith("`") or text.endswith("`") or (text.startswith(" ") and text.endswith(" ") and text.strip()):
        text = f" {text} "  # the one space each side that a code span drops
    return f"{fence}{text}{fence}"
