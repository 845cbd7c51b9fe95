"""Running other programs: argument lists only, never a shell; failures keep command and output."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Mapping, Sequence

from .errors import CommandError

__all__ = ["run"]

Echo = Callable[[str], None]


def run(argv: Sequence[str], *, env: Mapping[str, str] | None = None, input: str | None = None,
        timeout: float | None = None, check: bool = True, echo: Echo | None = None) -> subprocess.CompletedProcess[str]:
    """Runs ARGV, returning its result with stdout and stderr as text.

    Raises CommandError when it exits non-zero (and ``check``), or runs past ``timeout`` seconds.
    """
    argv = [str(a) for a in argv]
    if echo:
        echo("$ " + " ".join(argv))
    try:
        proc = subprocess.run(
            argv, input=input, capture_output=True, text=True, timeout=timeout,
            env={**os.environ, **env} if env else None,
        )
    except subprocess.TimeoutExpired as e:
        output = (e.stdout or "") + (e.stderr or "") if isinstance(e.stdout, str) else ""
        raise CommandError(argv, -1, output + f"\ntimed out after {timeout:.0f}s") from None
    if check and proc.returncode != 0:
        raise CommandError(argv, proc.returncode, proc.stdout + proc.stderr)
    return proc
