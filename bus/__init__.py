"""The gembus service bus: guard, SOAP envelopes and faults, identity, the mediator pipeline."""
