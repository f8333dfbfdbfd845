"""edge-ser: speech emotion recognition runtime for companion robots."""
__version__ = "0.1.0"
