"""spyne services, one package per WSDL family: decode -> domain use case -> encode."""
