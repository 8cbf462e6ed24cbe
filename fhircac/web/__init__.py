"""The HTTP layer: a Flask app factory around the clinical core."""
