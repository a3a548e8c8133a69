"""The MGM stack's own Python: its settings model, its scenario and its triage.

`compose/tier-b.toml` names them (`settings = "mgm_stack.settings:MgmSettings"`,
`scenario = "mgm_stack.scenario"`); envkit imports them with `compose/` on
`sys.path`, so nothing here is part of envkit.
"""
