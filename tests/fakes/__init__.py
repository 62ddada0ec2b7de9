"""Fakes of partner systems for the end-to-end tests.

Each fake is a real spyne service speaking the real canonical contract (``wsdl/`` and
``xsd/``), so a gembus gateway can forward raw SOAP bytes to it and every byte it answers
can be validated against the canonical XSD. See :mod:`tests.fakes.clm`; what every fake
shares (serving, processes, request and effect logs, faults) is in :mod:`tests.fakes.common`.
"""
