"""perfkit's version, in a module of its own so that subpackages never import the package root."""
__version__ = "0.1.0"
