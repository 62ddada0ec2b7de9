"""Version transforms: let a requester and a provider speak different versions of one family.

A family's version N is its own contract (``wsdl/<family>_v<N>.wsdl``, namespace
``urn:gembus:<family>:v<N>``; see bus/contracts.py). When the gateway routes a requester that
speaks version A to a provider whose service implements version B, it converts the request's
Body child from A to B before forwarding and the provider's reply from B back to A
(bus/gateway.py). Same-version traffic never comes here: it stays pass-through bytes.

The registry is keyed by ``(family, from_version, to_version)``; one transform converts every
message of the family in that direction, requests and responses alike (their Body children
are different elements, so one stylesheet holds the templates for both). A transform is

- an XSLT 1.0 stylesheet ``bus/xslt/<family>_v<A>_to_v<B>.xsl``, found by its file name,
  parsed with a safe parser (no network, no DTD, no entities) and compiled ONCE per process
  with ``lxml.etree.XSLT`` under ``XSLTAccessControl.DENY_ALL`` (no ``document()``, no file or
  network access); or
- a plain function ``element -> element`` registered with :meth:`TransformRegistry.register`,
  for a contract pair where Python is clearer than XSLT.

Faults pass through untouched: their detail, ``cmn:gembusFault``, is in the common namespace
and the same for every version. A stylesheet refuses a message it cannot express in the target
version with ``<xsl:message terminate="yes">code|field|message</xsl:message>``, which becomes
the gembus fault of that code (:class:`TransformRefusedError`), e.g.
``Client.InvalidReservationPeriod``. Any other failure is gembus's: ``Server.TransformFailed``.

Envelopes: only the Body child is transformed; :func:`rewrap` rebuilds the envelope around it
in the same SOAP version and keeps the original SOAP Header (the requester's wsse:Security goes
on to the provider, which may authenticate gembus's callers itself).

Stylesheets are applied to the Body child in place (no copy). They must therefore never
modify their input: no ``xsl:strip-space`` (libxslt strips the source tree in place, which on
a subtree lxml later frees ends in a double free); drop whitespace with a template instead.

Cost (timeit, one core): ~34 µs for the XSLT of a 1.3 KB ReserveEvse request, ~68 µs with the
validation against the target schema and the new envelope (what the gateway does per
converted request); ~18 µs for the reply. Next to ~1-2 ms for the HTTP hop to the provider.
"""

from __future__ import annotations

import copy
import functools
import re
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from lxml import etree

from bus.soap import SOAP11_ENV, SOAP12_ENV
from gembus.errors import GembusError, ServerError

XSLT_DIR = Path(__file__).resolve().parent / "xslt"
_XSLT_NAME = re.compile(r"(?P<family>[a-z][a-z0-9_]*?)_v(?P<a>[1-9][0-9]*)_to_v(?P<b>[1-9][0-9]*)")

#: For our own stylesheets and for providers' replies: never entities, DTDs or the network.
_SAFE_PARSER = etree.XMLParser(
    resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False
)

#: No document(), no file or network access at all (lxml-stubs lack the DENY_ALL constant).
_DENY_ALL: etree.XSLTAccessControl = etree.XSLTAccessControl.DENY_ALL  # type: ignore[attr-defined]

#: Converts one Body child (request or response) from one version of a family to another.
ElementTransform = Callable[[etree._Element], etree._Element]
TransformKey = tuple[str, int, int]  # (family, from_version, to_version)


class TransformFailedError(ServerError):
    """A transform broke or produced something the target contract rejects: gembus's bug."""

    fault_code = "Server.TransformFailed"
    default_message = "the message could not be converted between contract versions"


class TransformRefusedError(GembusError):
    """The message cannot be expressed in the other version; the stylesheet names the fault."""

    def __init__(self, code: str, message: str, *, field: str | None = None) -> None:
        super().__init__(message, field=field)
        self.fault_code = code


class XsltTransform:
    """One stylesheet, compiled once; callable on a Body child.

    lxml lets one compiled XSLT be applied from several threads; gembus's sync gunicorn
    workers use it from one.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        document = etree.parse(str(path), _SAFE_PARSER)
        self._xslt = etree.XSLT(document, access_control=_DENY_ALL)

    def __call__(self, element: etree._Element) -> etree._Element:
        try:
            result = self._xslt(element)
        except etree.XSLTApplyError as exc:
            log: etree._ListErrorLog = self._xslt.error_log  # type: ignore[attr-defined]
            raise _refusal(log, self.path) from exc
        root = result.getroot()
        if root is None:
            raise TransformFailedError(f"{self.path.name} produced no element")
        return root

    def __repr__(self) -> str:
        return f"XsltTransform({self.path.name})"


def _refusal(log: etree._ListErrorLog, path: Path) -> GembusError:
    """The ``code|field|message`` of a terminating xsl:message, or a Server fault."""
    for entry in log:
        code, sep, rest = entry.message.strip().partition("|")
        if sep and re.fullmatch(r"(Client|Server)(\.[A-Za-z]+)+", code):
            field, _, message = rest.partition("|")
            return TransformRefusedError(code, message or code, field=field or None)
    last = log.last_error
    return TransformFailedError(f"{path.name}: {last.message if last else 'failed'}")


class TransformRegistry:
    """Transforms by ``(family, from_version, to_version)``."""

    def __init__(self) -> None:
        self._transforms: dict[TransformKey, ElementTransform] = {}
        self._lock = threading.Lock()

    def register(
        self, family: str, from_version: int, to_version: int, transform: ElementTransform
    ) -> None:
        """Add a transform (an XsltTransform or a plain function); one per key."""
        if from_version == to_version:
            raise ValueError("same-version messages are passed through, never transformed")
        key = (family, from_version, to_version)
        with self._lock:
            if key in self._transforms:
                raise ValueError(f"a transform for {family} v{from_version}->v{to_version} exists")
            self._transforms[key] = transform

    def register_directory(self, directory: Path) -> None:
        """Compile and register every ``<family>_v<A>_to_v<B>.xsl`` in ``directory``."""
        for path in sorted(directory.glob("*.xsl")):
            match = _XSLT_NAME.fullmatch(path.stem)
            if match is None:
                raise ValueError(f"{path.name}: expected <family>_v<A>_to_v<B>.xsl")
            self.register(match["family"], int(match["a"]), int(match["b"]), XsltTransform(path))

    def get(self, family: str, from_version: int, to_version: int) -> ElementTransform | None:
        return self._transforms.get((family, from_version, to_version))

    def bridges(self, family: str, version_a: int, version_b: int) -> bool:
        """True if messages can go both ways between the two versions (request and reply)."""
        return version_a == version_b or (
            (family, version_a, version_b) in self._transforms
            and (family, version_b, version_a) in self._transforms
        )

    def apply(
        self, family: str, from_version: int, to_version: int, element: etree._Element
    ) -> etree._Element:
        """``element`` (a Body child of ``family`` v``from_version``) in v``to_version``."""
        transform = self.get(family, from_version, to_version)
        if transform is None:
            raise TransformFailedError(
                f"gembus cannot convert {family} v{from_version} messages to v{to_version}"
            )
        return transform(element)

    def __iter__(self) -> Iterator[TransformKey]:
        return iter(sorted(self._transforms))


@functools.cache
def default_registry() -> TransformRegistry:
    """The process's registry: every stylesheet in bus/xslt/, compiled on first use, once."""
    registry = TransformRegistry()
    registry.register_directory(XSLT_DIR)
    return registry


def rewrap(envelope: etree._Element, body_child: etree._Element) -> bytes:
    """A new envelope of ``envelope``'s SOAP version around ``body_child``, keeping its Header.

    The original tree is not changed (the Header is copied), so the caller can still log or
    re-read the message it received.
    """
    ns = etree.QName(envelope).namespace
    prefix = envelope.prefix or "soapenv"
    root = etree.Element(f"{{{ns}}}Envelope", nsmap={prefix: ns})
    header = envelope.find(f"{{{ns}}}Header")
    if header is not None:
        root.append(copy.deepcopy(header))
    body = etree.SubElement(root, f"{{{ns}}}Body")
    body.append(body_child)
    return bytes(etree.tostring(root, xml_declaration=True, encoding="utf-8"))


def parse_envelope(data: bytes) -> tuple[etree._Element, etree._Element | None]:
    """A provider's reply: its envelope and Body child (None when the Body is empty).

    Raises TransformFailedError when the reply is not a SOAP envelope at all.
    """
    try:
        root = etree.fromstring(data, _SAFE_PARSER)
    except etree.XMLSyntaxError as exc:
        raise TransformFailedError(f"the provider's reply is not XML: {exc}") from exc
    ns = etree.QName(root).namespace
    if etree.QName(root).localname != "Envelope" or ns not in (SOAP11_ENV, SOAP12_ENV):
        raise TransformFailedError("the provider's reply is not a SOAP envelope")
    body = root.find(f"{{{ns}}}Body")
    if body is None:
        raise TransformFailedError("the provider's reply has no SOAP Body")
    child = next(iter(body.iterchildren(tag=etree.Element)), None)
    return root, child


def is_fault(element: etree._Element) -> bool:
    return element.tag in (f"{{{SOAP11_ENV}}}Fault", f"{{{SOAP12_ENV}}}Fault")
