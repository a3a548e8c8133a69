"""Spec stage: settings, stack file and scenario file, validated before anything starts."""
