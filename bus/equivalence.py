"""Contract equivalence: what two WSDLs promise a client, compared field by field.

Used at registration time (a provider's endpoint must serve the canonical contract of the
family it claims) and by the conformance tests (served WSDL == canonical). xmlschema is slow
but thorough, which is right for this: it never runs on the request hot path.

A signature is built from the WSDL's operations (name, soapAction, input/output/fault element
QNames) and, for every element they reach, the XSD structure a code generator sees: child
element QNames in order, their type names and occurrences, recursively, plus simple-type
facets. Two WSDLs are equivalent when their signatures are equal; the address may differ.
"""

from __future__ import annotations

from typing import Any

import xmlschema
from lxml import etree

WSDL = "http://schemas.xmlsoap.org/wsdl/"
SOAP11 = "http://schemas.xmlsoap.org/wsdl/soap/"
SOAP12 = "http://schemas.xmlsoap.org/wsdl/soap12/"
XS = "http://www.w3.org/2001/XMLSchema"

Signature = dict[str, Any]


def signature(wsdl_bytes: bytes, base_url: str) -> Signature:
    """The signature of a WSDL document whose relative imports resolve against ``base_url``."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    root = etree.fromstring(wsdl_bytes, parser)
    locations = [
        (imp.get("namespace"), _join(base_url, imp.get("schemaLocation", "")))
        for imp in root.iterfind(f"{{{WSDL}}}types/{{{XS}}}schema/{{{XS}}}import")
    ]
    schemas = [xmlschema.XMLSchema(location, timeout=10) for _, location in locations]
    elements = {}
    for schema in schemas:
        for name, element in schema.maps.elements.items():
            elements[name] = element
    operations = _operations(root)
    reached = {e for op in operations.values() for e in op["elements"]}
    return {
        "targetNamespace": root.get("targetNamespace"),
        "operations": operations,
        "bindings": _bindings(root),
        "types": {name: _element(elements[name], set()) for name in sorted(reached)},
    }


def _join(base: str, relative: str) -> str:
    from urllib.parse import urljoin

    return urljoin(base, relative)


def _qname(element: etree._Element, prefixed: str) -> str:
    prefix, _, local = prefixed.rpartition(":")
    return f"{{{element.nsmap.get(prefix or None, '')}}}{local}"


def _operations(root: etree._Element) -> dict[str, Any]:
    parts = {
        m.get("name"): [
            (_qname(p, p.get("element", "")), p.get("name")) for p in m.iterfind(f"{{{WSDL}}}part")
        ]
        for m in root.iterfind(f"{{{WSDL}}}message")
    }
    operations: dict[str, Any] = {}
    for op in root.iterfind(f"{{{WSDL}}}portType/{{{WSDL}}}operation"):
        found: dict[str, Any] = {"elements": []}
        for kind in ("input", "output", "fault"):
            for node in op.iterfind(f"{{{WSDL}}}{kind}"):
                message = parts[node.get("message", "").rpartition(":")[2]]
                found.setdefault(kind, []).append((node.get("name"), message))
                found["elements"] += [qname for qname, _ in message]
        operations[op.get("name", "")] = found
    return operations


def _bindings(root: etree._Element) -> list[Any]:
    result = []
    for binding in root.iterfind(f"{{{WSDL}}}binding"):
        for op in binding.iterfind(f"{{{WSDL}}}operation"):
            for ns in (SOAP11, SOAP12):
                soap_op = op.find(f"{{{ns}}}operation")
                if soap_op is not None:
                    bodies = [b.get("use") for b in op.iter(f"{{{ns}}}body")]
                    result.append(
                        (
                            binding.get("name"),
                            ns,
                            op.get("name"),
                            soap_op.get("soapAction"),
                            soap_op.get("style"),
                            tuple(bodies),
                        )
                    )
    return sorted(result)


def _element(element: Any, seen: set[str]) -> Any:
    return {
        "type": str(element.type.name),
        "min": element.min_occurs,
        "max": element.max_occurs,
        "nillable": element.nillable,
        "content": _type(element.type, seen),
    }


def _type(xsd_type: Any, seen: set[str]) -> Any:
    name = str(xsd_type.name)
    if xsd_type.name and name in seen:
        return f"<{name}>"
    seen = seen | ({name} if xsd_type.name else set())
    if xsd_type.is_simple():
        facets = sorted(
            (str(k), repr(getattr(v, "value", None)))
            for k, v in getattr(xsd_type, "facets", {}).items()
            if hasattr(v, "value")
        )
        patterns = list(getattr(getattr(xsd_type, "patterns", None), "regexps", None) or [])
        enums = list(getattr(xsd_type, "enumeration", None) or [])
        return {
            "base": str(getattr(xsd_type.base_type, "name", None)),
            "facets": facets,
            "patterns": patterns,
            "enum": enums,
        }
    children = []
    if xsd_type.has_complex_content():
        for child in xsd_type.content.iter_elements():
            children.append((child.name, _element(child, seen)))
    attributes = sorted((str(k), str(v.type.name), v.use) for k, v in xsd_type.attributes.items())
    simple = _type(xsd_type.content, seen) if xsd_type.has_simple_content() else None
    return {"children": children, "attributes": attributes, "simple": simple}


def differences(left: Signature, right: Signature, path: str = "") -> list[str]:
    """Readable list of where two signatures differ (empty when equivalent)."""
    if isinstance(left, dict) and isinstance(right, dict):
        out = []
        for key in sorted(set(left) | set(right), key=str):
            if key not in left or key not in right:
                out.append(f"{path}/{key}: only in {'served' if key in right else 'canonical'}")
            else:
                out += differences(left[key], right[key], f"{path}/{key}")
        return out
    return [] if left == right else [f"{path}: {left!r} != {right!r}"]
