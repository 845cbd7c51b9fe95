"""invoke tasks for svclab: `invoke --list` shows them. The same tasks are installed as `svclab`."""

from svclab.cli import namespace

ns = namespace
