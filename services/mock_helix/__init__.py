"""mock-helix: stands in for the Helix API root, journals every request, injects faults."""
