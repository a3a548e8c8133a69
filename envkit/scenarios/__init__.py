"""Scenarios: the steps a stack's end-to-end run performs (named by the stack file)."""
