"""Serves wsdl/marketplace.wsdl (messages from xsd/marketplace.xsd)."""
