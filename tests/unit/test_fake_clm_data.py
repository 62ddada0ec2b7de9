"""The data-serving fake CLM answers per the canonical XSD, called as a WSGI app (no sockets)."""

from __future__ import annotations

import io
from datetime import datetime
from typing import Any

import pytest
from lxml import etree

from bus.contracts import all_contracts
from tests.fakes.clm_data import (
    MASTERDATA_NS,
    MASTERDATA_PATH,
    STATUS_NS,
    STATUS_PATH,
    ClmDataApp,
    make_clm_data_app,
    render_record,
    render_records,
)
from tests.fakes.common import body_child

EV = "urn:gembus:evse:v1"
CMN = "urn:gembus:common:v1"
FAMILY = {MASTERDATA_PATH: "evse_masterdata", STATUS_PATH: "evse_status"}


def post(app: ClmDataApp, path: str, operation: str, inner: str = "") -> tuple[str, bytes]:
    ns = MASTERDATA_NS if path == MASTERDATA_PATH else STATUS_NS
    body = (
        '<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>'
        f'<m:{operation} xmlns:m="{ns}" xmlns:ev="{EV}" xmlns:cmn="{CMN}">{inner}</m:{operation}>'
        "</s:Body></s:Envelope>"
    ).encode()
    environ: dict[str, Any] = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "CONTENT_TYPE": "text/xml; charset=utf-8",
        "CONTENT_LENGTH": str(len(body)),
        "HTTP_SOAPACTION": f'"{ns}/{operation}"',
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "80",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
    }
    status: list[str] = []
    answer = b"".join(app(environ, lambda s, h: status.append(s)))
    return status[0], answer


def valid_child(path: str, answer: bytes) -> etree._Element:
    child = body_child(answer)
    assert child is not None
    schema = all_contracts()[FAMILY[path]].schema
    assert schema.validate(child), schema.error_log
    return child


def paging(page: int, size: int) -> str:
    return f"<m:paging><cmn:page>{page}</cmn:page><cmn:pageSize>{size}</cmn:pageSize></m:paging>"


@pytest.fixture
def app() -> ClmDataApp:
    return make_clm_data_app("DE*ICE", 600, max_page_size=500)


def test_every_full_page_validates_and_the_data_set_has_both_kinds(app: ClmDataApp) -> None:
    ids: list[str] = []
    swaps = 0
    for page in (1, 2):
        status, answer = post(app, MASTERDATA_PATH, "GetEvseMasterData", paging(page, 1000))
        child = valid_child(MASTERDATA_PATH, answer)
        assert status.startswith("200")
        assert child.findtext(f"{{{MASTERDATA_NS}}}pageInfo/{{{CMN}}}pageSize") == "500"
        ids += [e.text or "" for e in child.iter(f"{{{EV}}}evseId")]
        swaps += len(child.xpath(".//ev:batteryExchange[.='true']", namespaces={"ev": EV}))
    assert ids == sorted(ids) and len(set(ids)) == 600
    assert 10 < swaps < 120


def test_the_data_set_is_deterministic() -> None:
    first = post(make_clm_data_app("DE*ICE", 50, seed=3), MASTERDATA_PATH, "GetEvseMasterData")
    again = post(make_clm_data_app("DE*ICE", 50, seed=3), MASTERDATA_PATH, "GetEvseMasterData")

    def records(answer: bytes) -> list[bytes]:  # each record, without asOf
        return [r.partition(b"</tns:evse>")[0] for r in answer.split(b"<tns:evse ")[1:]]

    assert len(records(first[1])) == 50 and records(first[1]) == records(again[1])


def test_prerendered_records_are_those_rendered_on_demand_and_follow_changes() -> None:
    """The benchmark's fake keeps each record's text: it must serve what rendering serves,
    and a changed EVSE must not be served from its old text."""
    lazy = make_clm_data_app("DE*ICE", 40, seed=5)
    kept = make_clm_data_app("DE*ICE", 40, seed=5, prerender=True)

    def records(app: ClmDataApp) -> list[bytes]:
        answer = post(app, MASTERDATA_PATH, "GetEvseMasterData")[1]
        valid_child(MASTERDATA_PATH, answer)
        return [r.partition(b"</tns:evse>")[0] for r in answer.split(b"<tns:evse ")[1:]]

    before = records(kept)
    assert len(before) == 40 and before == records(lazy)
    kept.state.change(["DE*ICE*E0000004"], [], 0)
    after = records(kept)
    assert [i for i, (old, new) in enumerate(zip(before, after, strict=True)) if old != new] == [3]
    changed = kept.state.evses["DE*ICE*E0000004"]
    assert changed.version == 1
    served = etree.fromstring(post(kept, MASTERDATA_PATH, "GetEvseMasterData")[1])
    record = served.findall(f".//{{{MASTERDATA_NS}}}evse")[3]
    fresh = render_records([render_record("DE*ICE", 5, changed)])[0]
    assert content(record) == content(fresh)


def content(element: etree._Element) -> list[tuple[str, str | None, dict[str, str]]]:
    """Every element's qualified name, text and attributes: XML equality without prefixes."""
    return [(str(e.tag), (e.text or "").strip() or None, dict(e.attrib)) for e in element.iter()]


def test_delta_lists_exactly_the_changes_with_their_latest_state(app: ClmDataApp) -> None:
    since = app.state.history_start.isoformat()
    app.state.change(["DE*ICE*E0000002", "DE*ICE*E0000003"], ["DE*ICE*E0000003"], 1)
    _, answer = post(app, MASTERDATA_PATH, "GetEvseMasterDataDelta", f"<m:since>{since}</m:since>")
    child = valid_child(MASTERDATA_PATH, answer)
    changes = [
        (c.findtext(f"{{{MASTERDATA_NS}}}evseId"), c.findtext(f"{{{MASTERDATA_NS}}}deltaType"))
        for c in child.iter(f"{{{MASTERDATA_NS}}}evseChange")
    ]
    assert changes == [
        ("DE*ICE*E0000002", "update"),
        ("DE*ICE*E0000003", "delete"),
        ("DE*ICE*E0000601", "insert"),
    ]


def test_status_answers_validate(app: ClmDataApp) -> None:
    _, answer = post(app, STATUS_PATH, "GetEvseStatus", paging(2, 250))
    child = valid_child(STATUS_PATH, answer)
    assert len(child.findall(f"{{{STATUS_NS}}}evseStatus")) == 250
    inner = "<m:evseId>DE*ICE*E0000009</m:evseId><m:evseId>DE*ICE*E9999999</m:evseId>"
    _, answer = post(app, STATUS_PATH, "GetEvseStatusById", inner)
    child = valid_child(STATUS_PATH, answer)
    assert [e.text for e in child.iter(f"{{{EV}}}result")] == ["found", "notFound"]


@pytest.mark.parametrize(
    ("path", "operation", "inner", "code"),
    [
        (MASTERDATA_PATH, "GetEvseMasterData", "<m:operatorIds><ev:operatorId>DE*XYZ</ev:operatorId>"
         "</m:operatorIds>", "Client.UnknownOperator"),
        (MASTERDATA_PATH, "GetEvseMasterData", paging(9, 100), "Client.InvalidPaging"),
        (MASTERDATA_PATH, "GetEvseMasterDataDelta", "<m:since>2001-01-01T00:00:00Z</m:since>",
         "Client.DeltaNotAvailable"),
        (MASTERDATA_PATH, "GetEvseMasterData", "<m:bogus/>", "Client.SchemaValidation"),
    ],
)  # fmt: skip
def test_faults_carry_a_valid_gembus_fault_detail(
    app: ClmDataApp, path: str, operation: str, inner: str, code: str
) -> None:
    status, answer = post(app, path, operation, inner)
    assert status.startswith("500")
    detail = etree.fromstring(answer).find(f".//{{{CMN}}}gembusFault")
    assert detail is not None and detail.findtext(f"{{{CMN}}}code") == code
    assert all_contracts()[FAMILY[path]].schema.validate(detail)


def test_a_snapshot_is_refused_once_the_data_changed(app: ClmDataApp) -> None:
    _, answer = post(app, MASTERDATA_PATH, "GetEvseMasterData", paging(1, 100))
    as_of = valid_child(MASTERDATA_PATH, answer).findtext(f"{{{MASTERDATA_NS}}}asOf") or ""
    inner = f"<m:snapshotAt>{as_of}</m:snapshotAt>{paging(2, 100)}"
    assert post(app, MASTERDATA_PATH, "GetEvseMasterData", inner)[0].startswith("200")
    app.state.change(["DE*ICE*E0000001"], [], 0)
    status, answer = post(app, MASTERDATA_PATH, "GetEvseMasterData", inner)
    assert status.startswith("500") and b"Client.SnapshotExpired" in answer
    assert datetime.fromisoformat(as_of) < app.state.changes[-1].changed_at


def test_schema_invalid_mode_sends_well_formed_xml_that_breaks_the_xsd(app: ClmDataApp) -> None:
    app.state.set_mode("schema_invalid")
    for path, operation in ((MASTERDATA_PATH, "GetEvseMasterData"), (STATUS_PATH, "GetEvseStatus")):
        status, answer = post(app, path, operation)
        child = body_child(answer)
        assert status.startswith("200") and child is not None
        assert not all_contracts()[FAMILY[path]].schema.validate(child)
