"""CDS Hooks 2.0: fhircac's services, their cards, client JWT verification and feedback.

HTTP lives in ``fhircac.web.cds``; this package knows the protocol, not Flask.
"""
