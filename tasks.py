"""invoke tasks for a checkout of svclab (`invoke --list`): the product's tasks, the same as the
installed `svclab` command, plus the test-bed tasks, which exist only here (scripts/testbed/)."""

import sys
from pathlib import Path

from invoke import Collection, Exit, task

from svclab.cli import namespace

sys.path.insert(0, str(Path(__file__).resolve().parent / "scripts" / "testbed"))
import builder  # noqa: E402  (the test-bed builder, scripts/testbed/builder.py)


@task
def build(c):
    """Build (or reuse) every image the test bed needs, from Debian packages and Go modules."""
    if builder.main(["build"]) != 0:
        raise Exit(code=4)


@task
def status(c):
    """List the cached test-bed images."""
    builder.main(["status"])


@task(help={"all": "also remove the Go, root file system and download caches"})
def clean(c, all=False):
    """Remove the test-bed images (--all: also the build caches)."""
    builder.main(["clean", *(["--all"] if all else [])])


ns = namespace
ns.add_collection(Collection("testbed", build, status, clean))
