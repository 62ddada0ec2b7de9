"""The floor for an end-to-end SOAP call: a WSGI app that parses with lxml and echoes the Body.

Served by the same gunicorn with the same workers, it measures what HTTP + one lxml parse +
one serialise cost on this machine today; gembus's figures are reported as ratios to it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from lxml import etree

_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    length = int(environ.get("CONTENT_LENGTH") or 0)
    root = etree.fromstring(environ["wsgi.input"].read(length), _PARSER)
    body = etree.tostring(root)
    start_response(
        "200 OK", [("Content-Type", "text/xml; charset=utf-8"), ("Content-Length", str(len(body)))]
    )
    return [body]
