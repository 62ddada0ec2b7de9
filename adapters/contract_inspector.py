"""Checks a provider's endpoint against the canonical contract of the family it claims.

At service registration gembus fetches ``<endpoint>?wsdl`` with zeep (strict, no DTDs, no
entities), makes sure zeep can load it, and compares its signature with the canonical
WSDL's (bus/equivalence.py). Network and parse failures are differences too: a provider
whose WSDL cannot be read cannot be registered.

An interface is the marketplace's (family, version) pair; version N > 1 of a family is the file
``wsdl/<family>_v<N>.wsdl`` (bus.contracts.contract_for_interface), e.g. reservation v2 is
``wsdl/reservation_v2.wsdl``.
"""

from __future__ import annotations

from pathlib import Path

import requests
from zeep import Client, Settings
from zeep.exceptions import Error as ZeepError
from zeep.transports import Transport

from bus.contracts import contract_for_interface
from bus.equivalence import differences, signature
from domain.marketplace.model import InterfaceRef

_SETTINGS = Settings(strict=True, forbid_dtd=True, forbid_entities=True, xml_huge_tree=False)


class ZeepContractInspector:
    """Implements domain.marketplace.catalogue.ContractInspector."""

    def __init__(self, timeout_s: float = 10.0) -> None:
        self.timeout_s = timeout_s

    def known(self, interface: InterfaceRef) -> bool:
        return contract_for_interface(interface.family, interface.version) is not None

    def differences(self, endpoint_url: str, interface: InterfaceRef) -> list[str]:
        url = endpoint_url + ("&wsdl" if "?" in endpoint_url else "?wsdl")
        transport = Transport(timeout=self.timeout_s, operation_timeout=self.timeout_s)  # type: ignore[no-untyped-call]
        try:
            served = transport.load(url)  # type: ignore[no-untyped-call]
            Client(url, transport=transport, settings=_SETTINGS)  # type: ignore[no-untyped-call]
            found = signature(served, url)
        except (requests.RequestException, ZeepError, OSError, ValueError) as exc:
            return [f"cannot load {url}: {type(exc).__name__}: {str(exc)[:200]}"]
        except (
            Exception
        ) as exc:  # any schema error of a partner's WSDL is a difference, not a crash
            return [f"cannot read the contract at {url}: {type(exc).__name__}: {str(exc)[:200]}"]
        canonical_path = self._canonical(interface)
        canonical = signature(canonical_path.read_bytes(), canonical_path.as_uri())
        return differences(canonical, found)

    @staticmethod
    def _canonical(interface: InterfaceRef) -> Path:
        contract = contract_for_interface(interface.family, interface.version)
        if contract is None:
            raise KeyError(f"no canonical contract {interface.family} v{interface.version}")
        return contract.wsdl_path
