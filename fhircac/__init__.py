"""fhircac: FHIR R4 interoperability and clinical decision support for coronary artery calcium scores."""

__version__ = "0.1.0"
