"""gembus domain model: plain Python value objects and rules, free of persistence and SOAP."""
