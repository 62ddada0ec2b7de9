"""Roaming authorization (wsdl/authorization.wsdl): AuthorizeRoaming, purchased services, audit."""
