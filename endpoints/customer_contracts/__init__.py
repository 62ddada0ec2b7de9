"""Customer contracts (wsdl/customer_contracts.wsdl): EVSPs upload and read them back."""
