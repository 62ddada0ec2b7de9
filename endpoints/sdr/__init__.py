"""The sdr service family: SDR forwarding through the clearing house (wsdl/sdr.wsdl)."""
