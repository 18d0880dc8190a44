"""A person's own strings on a page, shown as text and never interpreted.

Streamlit reads the strings given to st.markdown, st.caption, st.title/subheader,
st.success/info/warning/error, st.toast, progress texts and widget labels (buttons,
radio options, ...) as Markdown. A class named `![b](http://host/beacon.png)` would make
the browser fetch that URL; `[x](url)` and a bare `http://...`, `www....` or `a@b.c`
would become links; `:red[...]`, `$...$` and `:emoji:` would be drawn. Plotly reads
`<a href=...>`, `<b>` etc. in axis labels, titles and legends.

md(s) is for the Markdown places: every ASCII punctuation character is backslash-escaped
(CommonMark allows it for all of them) and the autolink literals GFM finds in the TEXT
(after escapes are resolved) are broken with an invisible zero-width space. The text
looks the same. plot(s) is for Plotly labels (HTML-escaped).

Use them for every string that comes from the data or that a person typed: dataset,
column, class, file and run names, texts, URL parameters, and messages that quote them
(validation errors, exceptions). Not needed where nothing is interpreted: selectbox
and multiselect options, st.text, st.code, st.dataframe / st.data_editor cells.
No st.* here.
"""

from __future__ import annotations

import html
import re
from typing import Any

__all__ = ["md", "plot"]

_PUNCT = re.compile(r"([!\"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~])")
_ZWSP = "\u200b"
_SCHEME = re.compile(r"(\\:)(?=\\/)")  # "http\:\/\/..." -> "http\:<zwsp>\/\/..."
_WWW = re.compile(r"(?i)(www)(?=\\\.)")  # "www\.x" -> "www<zwsp>\.x"


def md(value: Any) -> str:
    """`value` as Markdown that shows exactly str(value): no link, image, emphasis,
    heading, list, HTML, colour, math or emoji is made from it."""
    s = _PUNCT.sub(r"\\\1", str(value))
    s = _SCHEME.sub("\\1" + _ZWSP, s)
    s = _WWW.sub("\\1" + _ZWSP, s)
    return s.replace("\\@", "\\@" + _ZWSP)


def plot(value: Any) -> str:
    """`value` for a Plotly label (tick, title, legend, hover): its `<a>`, `<b>`, `<br>`
    and entities are shown as typed."""
    return html.escape(str(value), quote=False)
