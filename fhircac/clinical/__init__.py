"""The pure clinical core: typed facts in, an Assessment out. No FHIR, no Flask, no I/O.

Everything else in fhircac (CLI, FHIR mapping, CDS Hooks, worker) is an adapter around
``assess(record, policy, as_of)``.
"""
