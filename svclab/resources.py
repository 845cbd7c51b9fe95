"""Where svclab's built-in files are: the labs, the claims table, svclab's own manifests and the
pinned versions. Everything svclab reads from its own distribution at run time is found here, and
read through ``importlib.resources``, so it is found the same way wherever svclab is installed.

In the source tree the files keep their top-level folders::

    labs/<id>/lab.yaml, README.md, ...   one folder per lab     -> package svclab.builtin.labs
    labs/claims.yaml                     the claims table       -> package svclab.builtin.labs
    manifests/*.yaml                     svclab's own manifests -> package svclab.builtin.manifests
    svclab/pins.toml                     pinned versions        -> package svclab

pyproject.toml maps labs/ and manifests/ onto the sub-packages ``svclab.builtin.labs`` and
``svclab.builtin.manifests`` (setuptools ``package-dir``), so a wheel, or an sdist built into one,
installs them inside the package, while an editable install (``pip install -e .``, as the
checkout's .venv and its tests use) points the same package names at the checkout's folders.
A mapping keeps the folders at the top level, where labs are written, with no copy step at build
time; each mapped folder has an ``__init__.py`` because editable installs map only regular
packages onto folders elsewhere.

Each function returns an ``importlib.resources.abc.Traversable``: join names with ``/`` and use
``is_file()``, ``iterdir()``, ``read_text()`` or ``open()``.
"""

from __future__ import annotations

from importlib.resources import files
from importlib.resources.abc import Traversable

__all__ = ["labs_dir", "manifests_dir", "claims_file", "pins_file"]


def labs_dir() -> Traversable:
    """The labs: one folder per lab (``<id>/lab.yaml`` and the lab's manifests), and claims.yaml."""
    return files("svclab.builtin.labs")


def manifests_dir() -> Traversable:
    """svclab's own manifests: the client pod, Traefik, kube-vip, and the workloads labs share."""
    return files("svclab.builtin.manifests")


def claims_file() -> Traversable:
    """The claims table: claim id -> the claim, in the order reports list them."""
    return labs_dir() / "claims.yaml"


def pins_file() -> Traversable:
    """Pinned versions, digests and upstream files (TOML)."""
    return files("svclab") / "pins.toml"
