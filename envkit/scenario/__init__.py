"""Scenario stage: running a scenario's steps against a started stack."""
