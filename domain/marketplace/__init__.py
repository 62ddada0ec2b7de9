"""Marketplace use cases (GeM Business Services): partners first, services and contracts next."""
