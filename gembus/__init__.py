"""gembus: the Green eMotion electromobility marketplace as a SOAP/WSDL service bus."""

__version__ = "0.1.0"
