"""greenmotor's release, in a module of its own: ``client`` names it in the handshake and
``setup.cfg`` reads it without importing the package."""

version = "0.1.0"
