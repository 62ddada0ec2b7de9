"""In-process figures: attack rejection times and the guard's cost on valid requests."""

from __future__ import annotations

import time
import timeit
from collections.abc import Callable
from pathlib import Path
from tempfile import TemporaryDirectory

from cryptography.fernet import Fernet
from lxml import etree

from bus.contracts import all_contracts
from bus.guard import Limits, check_request
from gembus.bootstrap import build
from gembus.demo import load
from gembus.settings import Settings
from persistence.migrate import upgrade
from tests.support.soap import ACTION, MARKETPLACE_NS, call, envelope, get_partner, wsse_header

_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)


def _best(fn: Callable[[], object], repeat: int = 5, number: int = 20) -> float:
    """Best-of-N mean seconds per call (the least-disturbed estimate on a shared machine)."""
    return min(timeit.repeat(fn, repeat=repeat, number=number)) / number


def attacks() -> dict[str, bytes]:
    auth = wsse_header("gembus-admin", "demo-admin-password")
    op = f'<m:GetPartner xmlns:m="{MARKETPLACE_NS}">'
    laughs = "".join(f'<!ENTITY l{i} "{("&l" + str(i - 1) + ";") * 10}">' for i in range(1, 10))
    return {
        "1 DTD + entity": b'<!DOCTYPE s:Envelope [<!ENTITY a "X">]>'
        + envelope(get_partner("&a;"), auth),
        "5 billion laughs": f'<!DOCTYPE s:Envelope [<!ENTITY l0 "ha">{laughs}]>'.encode()
        + envelope(get_partner("&l9;"), auth),
        "7 oversized body (3 MiB)": envelope(get_partner("x" * 3 * 1024 * 1024), auth),
        "8 deep nesting (10,000)": envelope(
            op + "<m:x>" * 10_000 + "</m:x>" * 10_000 + "</m:GetPartner>", auth
        ),
        "9 attributes (100,000)": envelope(
            f'<m:GetPartner xmlns:m="{MARKETPLACE_NS}" '
            + " ".join(f'a{i}="1"' for i in range(100_000))
            + "/>",
            auth,
        ),
        "10 namespaces (50,000)": envelope(
            f'<m:GetPartner xmlns:m="{MARKETPLACE_NS}" '
            + " ".join(f'xmlns:p{i}="urn:p{i}"' for i in range(50_000))
            + "/>",
            auth,
        ),
        "12 broken UTF-8": envelope(get_partner(), auth).replace(b"ice-charging", b"ice\xc0\xaf"),
        "16 href cycle": envelope(op + '<m:partnerId href="#r1"/></m:GetPartner>', auth),
        "18 two operations": envelope(get_partner() + get_partner(), auth),
        "20 wrong SOAP version": envelope(get_partner(), auth, soap12=True),
        "25 header flood (1,000)": envelope(
            get_partner(), auth + "".join(f"<h{i} xmlns='urn:h'/>" for i in range(1000))
        ),
    }


def run() -> dict[str, object]:
    with TemporaryDirectory() as tmp:
        settings = Settings(
            database_url=f"sqlite:///{Path(tmp) / 'b.sqlite3'}",
            secret_key=Fernet.generate_key().decode(),
            log_level="WARNING",
        )
        gembus = build(settings)
        upgrade(gembus.engine)
        load(gembus.uow, gembus.vault)
        valid_1k = envelope(get_partner(), wsse_header("gembus-admin", "demo-admin-password"))
        floor = _best(lambda: etree.fromstring(valid_1k, _PARSER))
        print(
            f"guard rejection times (limit: lxml parse of a valid {len(valid_1k)} B request = {floor * 1e3:.3f} ms)"
        )
        rows = {}
        for name, body in attacks().items():
            started = time.perf_counter()
            result = call(gembus.app, body, action=ACTION)
            first = time.perf_counter() - started
            seconds = _best(lambda b=body: call(gembus.app, b, action=ACTION), repeat=3, number=3)
            code = result.fault_code()
            rows[name] = {
                "code": code,
                "ms": round(seconds * 1e3, 3),
                "first_ms": round(first * 1e3, 3),
                "ratio_to_floor": round(seconds / floor, 1),
                "bytes": len(body),
            }
            print(
                f"  {name:<28} {code:<28} {seconds * 1e3:8.3f} ms  ({seconds / floor:7.1f}x floor, {len(body):>9,} B)"
            )
        gembus.engine.dispose()
        return {"floor_ms": round(floor * 1e3, 4), "attacks": rows, "hot_path": hot_path()}


def hot_path() -> dict[str, object]:
    contract = all_contracts()["marketplace"]
    limits = Limits()
    out = {}
    print(
        "guard + parse of valid requests (limit: lxml parse + XPath + serialise, PERFORMANCE.md §3)"
    )
    for label, size in (("1 KB", 1), ("10 KB", 10)):
        body = _list_request(size * 1024)
        guard = _best(
            lambda b=body: check_request(
                b, "text/xml; charset=utf-8", f'"{MARKETPLACE_NS}/ListPartners"', contract, limits
            ),
            number=200,
        )
        xpath = etree.XPath('string(//*[local-name()="pageSize"][1])')
        floor = _best(
            lambda b=body, x=xpath: etree.tostring(_xp(x, etree.fromstring(b, _PARSER))), number=200
        )
        validate = _best(
            lambda b=body: contract.schema.validate(etree.fromstring(b, _PARSER)[0][0]), number=200
        )
        out[label] = {
            "bytes": len(body),
            "guard_ms": round(guard * 1e3, 4),
            "floor_ms": round(floor * 1e3, 4),
            "ratio": round(guard / floor, 2),
            "parse_and_validate_ms": round(validate * 1e3, 4),
        }
        print(
            f"  {label:<6} {len(body):>6} B  guard {guard * 1e3:.3f} ms  floor {floor * 1e3:.3f} ms  "
            f"ratio {guard / floor:.2f}x  (budget 1 ms at 10 KB)  parse+XSD {validate * 1e3:.3f} ms"
        )
    return out


def _xp(xpath: etree.XPath, root: etree._Element) -> etree._Element:
    xpath(root)
    return root


def _list_request(size: int) -> bytes:
    """A schema-valid ListPartners request padded with a realistic header to ``size`` bytes."""
    base = envelope(
        f'<m:ListPartners xmlns:m="{MARKETPLACE_NS}"><m:paging><c:pageSize xmlns:c="urn:gembus:common:v1">10</c:pageSize></m:paging></m:ListPartners>',
        wsse_header("gembus-admin", "demo-admin-password"),
    )
    pad = max(0, size - len(base))
    header_pad = "".join(
        f"<x:trace xmlns:x='urn:trace'>{'t' * 80}</x:trace>" for _ in range(min(13, pad // 120))
    )
    filler = f"<x:note xmlns:x='urn:trace'>{'n' * max(0, pad - len(header_pad) - 60)}</x:note>"
    return envelope(
        f'<m:ListPartners xmlns:m="{MARKETPLACE_NS}"><m:paging><c:pageSize xmlns:c="urn:gembus:common:v1">10</c:pageSize></m:paging></m:ListPartners>',
        wsse_header("gembus-admin", "demo-admin-password") + header_pad + filler,
    )
