"""Lifecycle stage: the running environment, from network and containers to teardown."""
