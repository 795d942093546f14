"""The storefront page (``static/index.html``) with the storefront's ephemeral key filled
in, and the security headers it is served with.

>>> StorefrontPage("ss_...").render()[:15]                          # doctest: +SKIP
'<!doctype html>'
"""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "STATIC_DIR",
    "STOREFRONT_CSP",
    "STOREFRONT_HEADERS",
    "STOREFRONT_KEY_PLACEHOLDER",
    "StorefrontPage",
]

STATIC_DIR = Path(__file__).parent / "static"
STOREFRONT_KEY_PLACEHOLDER = "__SHOPSEARCH_STOREFRONT_KEY__"
_PLACEHOLDER_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>shopsearch</title></head>
<body><h1>shopsearch</h1><p>The storefront page is not installed. The API is at
<code>/v1/search</code>; see <code>/docs</code> (needs a key).</p>
<script>window.SHOPSEARCH_KEY = "__SHOPSEARCH_STOREFRONT_KEY__";</script></body></html>
"""
#: The storefront page's Content-Security-Policy header: its <meta> policy, plus what only
#: a header can say (no framing: clickjacking).
STOREFRONT_CSP = (
    "default-src 'self'; img-src 'self' https: http: data:; script-src 'self'; "
    "style-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
STOREFRONT_HEADERS = {
    "Cache-Control": "no-store",  # it carries a key that dies with the process
    "Content-Security-Policy": STOREFRONT_CSP,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


class StorefrontPage:
    """``static/index.html`` with the storefront key filled in; re-read only when the file
    changes (one stat per page view)."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.path = STATIC_DIR / "index.html"
        self._cached: tuple[int | None, str] | None = None

    def render(self) -> str:
        try:
            mtime: int | None = self.path.stat().st_mtime_ns
        except OSError:
            mtime = None
        if self._cached is None or self._cached[0] != mtime:
            template = _PLACEHOLDER_PAGE
            if mtime is not None:
                try:
                    template = self.path.read_text(encoding="utf-8")
                except OSError:
                    mtime = None
            self._cached = (mtime, template.replace(STOREFRONT_KEY_PLACEHOLDER, self.key))
        return self._cached[1]
