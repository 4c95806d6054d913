"""Modelyard data plane: inference server, artifact loader, backends."""

__version__ = "0.1.0"
