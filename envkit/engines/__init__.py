"""Engines stage: the container engine, and the images a stack runs on it."""
