"""Serves wsdl/contract_validation.wsdl (SRV 1967), messages from xsd/contract_validation.xsd."""
