"""Evidence stage: what a run leaves (artifacts, manifest, outcome, history, reports)."""
