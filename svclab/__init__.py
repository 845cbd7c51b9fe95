"""svclab: a Kubernetes Service networking lab on one machine, every claim observed live."""

__version__ = "0.1.0"
