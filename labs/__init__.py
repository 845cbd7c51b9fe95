"""The package svclab.builtin.labs: this folder, installed with svclab (see svclab/resources.py)."""
