"""JSON Schemas for request bodies and batch lines."""
