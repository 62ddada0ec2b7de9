"""The canonical contracts, loaded once per process from ``wsdl/`` and ``xsd/``.

A :class:`Contract` is what the bus needs from one WSDL family at run time: its operations
keyed by the Body child's QName (for dispatch and the SOAPAction check) and one compiled
``lxml.etree.XMLSchema`` for inbound validation. xmlschema is ~50-100x slower, so it is used
for conformance tests only, never here.

Versions: a family's version N > 1 is its own file ``wsdl/<family>_v<N>.wsdl`` with namespace
``urn:gembus:<family-with-dashes>:v<N>`` (CONTRIBUTING.md, "Contracts"). The registry below is
keyed by the file stem (``reservation``, ``reservation_v2``: the contract *key*, also the name
in ``/services/<key>`` and ``/gateway/<key>``), while a provider's service names the pair the
marketplace knows, ``InterfaceRef(family="reservation", version=2)``. :func:`contract_key` maps
the pair to the key and :attr:`Contract.family_name` / :attr:`Contract.version` map back.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from pathlib import Path

from lxml import etree

from gembus.settings import PROJECT_ROOT

WSDL_DIR = PROJECT_ROOT / "wsdl"
XSD_DIR = PROJECT_ROOT / "xsd"
WSDL_NS = "http://schemas.xmlsoap.org/wsdl/"
SOAP11_BINDING_NS = "http://schemas.xmlsoap.org/wsdl/soap/"
SOAP12_BINDING_NS = "http://schemas.xmlsoap.org/wsdl/soap12/"
XS_NS = "http://www.w3.org/2001/XMLSchema"

#: Families whose WSDL partners implement and gembus only calls: published for partners to
#: build against, but gembus exposes no endpoint of its own for them.
PARTNER_IMPLEMENTED = frozenset(
    {
        "evse_masterdata",
        "evse_status",
        "sdr_receiver",
        "power_modulation",
        "charge_for_free",
        "notification",
    }
)

#: One parser for our own contract files: never resolves entities, never touches the network.
_SAFE_PARSER = etree.XMLParser(
    resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False
)


_VERSIONED_NS = re.compile(r"urn:gembus:(?P<family>[a-z][a-z0-9-]*):v(?P<version>[1-9][0-9]*)")


def contract_key(family: str, version: int) -> str:
    """The registry key (WSDL file stem) of ``family`` in ``version``: v1 is the bare name."""
    return family if version == 1 else f"{family}_v{version}"


@dataclass(frozen=True)
class Operation:
    """One WSDL operation as the bus sees it."""

    name: str
    soap_action: str
    input_element: str  # Clark notation {ns}local
    output_element: str
    documentation: str


@dataclass
class Contract:
    """One service family: its WSDL file, namespace, operations and compiled schema."""

    family: str
    wsdl_path: Path
    target_namespace: str
    service_name: str
    operations: dict[str, Operation] = field(default_factory=dict)  # by input element QName
    schema_imports: tuple[tuple[str, Path], ...] = ()

    @property
    def family_name(self) -> str:
        """The family as the marketplace names it (``reservation`` for ``reservation_v2``)."""
        match = _VERSIONED_NS.fullmatch(self.target_namespace)
        return match["family"].replace("-", "_") if match else self.family

    @property
    def version(self) -> int:
        """The major version N of ``urn:gembus:<family>:vN``."""
        match = _VERSIONED_NS.fullmatch(self.target_namespace)
        return int(match["version"]) if match else 1

    @property
    def served_by_gembus(self) -> bool:
        return self.family not in PARTNER_IMPLEMENTED

    @property
    def endpoint_path(self) -> str:
        return f"/services/{self.family}"

    @functools.cached_property
    def schema(self) -> etree.XMLSchema:
        """The compiled schema of every namespace the WSDL imports, built on first use."""
        return compile_schema(self.schema_imports)

    def operation_for(self, element_tag: str) -> Operation | None:
        return self.operations.get(element_tag)

    def operation_named(self, name: str) -> Operation:
        for operation in self.operations.values():
            if operation.name == name:
                return operation
        raise KeyError(name)


def compile_schema(imports: tuple[tuple[str, Path], ...]) -> etree.XMLSchema:
    """Compile one XMLSchema that imports each (namespace, file) pair."""
    root = etree.Element(f"{{{XS_NS}}}schema", nsmap={"xs": XS_NS})
    for namespace, path in imports:
        imp = etree.SubElement(root, f"{{{XS_NS}}}import")
        imp.set("namespace", namespace)
        imp.set("schemaLocation", path.resolve().as_uri())
    return etree.XMLSchema(etree.ElementTree(root))


def load_contract(wsdl_path: Path) -> Contract:
    """Read one canonical WSDL into a :class:`Contract`."""
    tree = etree.parse(str(wsdl_path), _SAFE_PARSER)
    definitions = tree.getroot()
    tns = definitions.get("targetNamespace", "")
    service = definitions.find(f"{{{WSDL_NS}}}service")
    contract = Contract(
        family=wsdl_path.stem,
        wsdl_path=wsdl_path,
        target_namespace=tns,
        service_name=service.get("name", "") if service is not None else "",
        schema_imports=_schema_imports(definitions, wsdl_path),
    )
    for operation in _operations(definitions, tns):
        contract.operations[operation.input_element] = operation
    return contract


def _schema_imports(definitions: etree._Element, wsdl_path: Path) -> tuple[tuple[str, Path], ...]:
    found = []
    for imp in definitions.iterfind(f"{{{WSDL_NS}}}types/{{{XS_NS}}}schema/{{{XS_NS}}}import"):
        location = imp.get("schemaLocation")
        if location:
            found.append((imp.get("namespace", ""), (wsdl_path.parent / location).resolve()))
    return tuple(found)


def _qname(element: etree._Element, prefixed: str) -> str:
    prefix, _, local = prefixed.rpartition(":")
    return f"{{{element.nsmap.get(prefix or None, '')}}}{local}"


def _operations(definitions: etree._Element, tns: str) -> list[Operation]:
    messages = {
        m.get("name"): m.find(f"{{{WSDL_NS}}}part")
        for m in definitions.iterfind(f"{{{WSDL_NS}}}message")
    }
    actions = _soap_actions(definitions)
    operations = []
    for op in definitions.iterfind(f"{{{WSDL_NS}}}portType/{{{WSDL_NS}}}operation"):
        name = op.get("name", "")
        in_part = _part(messages, op, "input")
        out_part = _part(messages, op, "output")
        doc = op.findtext(f"{{{WSDL_NS}}}documentation") or ""
        operations.append(
            Operation(
                name=name,
                soap_action=actions.get(name, ""),
                input_element=_qname(in_part, in_part.get("element", "")),
                output_element=_qname(out_part, out_part.get("element", "")),
                documentation=" ".join(doc.split()),
            )
        )
    return operations


def _part(
    messages: dict[str | None, etree._Element | None], op: etree._Element, direction: str
) -> etree._Element:
    """The single part of the operation's input or output message (WS-I: exactly one)."""
    io = op.find(f"{{{WSDL_NS}}}{direction}")
    part = messages.get(_local(io.get("message", ""))) if io is not None else None
    if part is None:
        raise ValueError(f"operation {op.get('name')} has no {direction} message part")
    return part


def _soap_actions(definitions: etree._Element) -> dict[str, str]:
    actions: dict[str, str] = {}
    for op in definitions.iterfind(f"{{{WSDL_NS}}}binding/{{{WSDL_NS}}}operation"):
        for ns in (SOAP11_BINDING_NS, SOAP12_BINDING_NS):
            soap_op = op.find(f"{{{ns}}}operation")
            if soap_op is not None and soap_op.get("soapAction"):
                actions.setdefault(op.get("name", ""), soap_op.get("soapAction", ""))
    return actions


def _local(prefixed: str) -> str:
    return prefixed.rpartition(":")[2]


@functools.cache
def all_contracts() -> dict[str, Contract]:
    """Every canonical family, keyed by family name (the WSDL file's stem)."""
    return {p.stem: load_contract(p) for p in sorted(WSDL_DIR.glob("*.wsdl"))}


def contract_for_interface(family: str, version: int) -> Contract | None:
    """The canonical contract of a marketplace interface (family, version), if gembus has it.

    Only the one spelling is accepted: ``("reservation", 2)``, never ``("reservation_v2", 1)``.
    """
    contract = all_contracts().get(contract_key(family, version))
    if contract is None or (contract.family_name, contract.version) != (family, version):
        return None
    return contract


def served_wsdl(contract: Contract, endpoint_url: str) -> bytes:
    """The canonical WSDL with every soap:address rewritten to this server's endpoint.

    Only the ``location`` attributes change; everything else is byte-for-byte the file, which
    the conformance test proves by comparing the served document with the canonical one.
    """
    tree = etree.parse(str(contract.wsdl_path), _SAFE_PARSER)
    for ns in (SOAP11_BINDING_NS, SOAP12_BINDING_NS):
        for address in tree.iter(f"{{{ns}}}address"):
            address.set("location", endpoint_url)
    return bytes(etree.tostring(tree, xml_declaration=True, encoding="utf-8"))
