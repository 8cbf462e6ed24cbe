"""FHIR R4 adapters around the clinical core: codes, reading, writing (and later the REST client)."""
