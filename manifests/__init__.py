"""The package svclab.builtin.manifests: this folder, installed with svclab (see svclab/resources.py)."""
