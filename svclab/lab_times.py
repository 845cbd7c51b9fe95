"""How long each lab took the last time it ran on a cluster, so that lab.all starts the longest first.

The labs run side by side a few at a time (labs.run_labs): a long lab that happens to start last
(the pending lab's watch, a lab that waits out a no-answer) would end the whole run late, while
started first it runs beside all the short ones. The times are kept in the cluster's own folder
(``lab-seconds.json``: lab id -> seconds, rounded to a tenth), which `cluster.down` removes with the
cluster; a lab never timed there counts as the longest, so a first run keeps the labs' own order.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["FILE_NAME", "folder_of", "load", "longest_first", "save"]

FILE_NAME = "lab-seconds.json"


def folder_of(env) -> Path | None:
    """Where ENV's cluster keeps its lab times: its own folder on a cluster svclab made; none on
    one it did not (svclab keeps nothing of a user's cluster)."""
    return None if env.target is not None else env.settings.cluster_dir


def load(folder: Path | None) -> dict[str, float]:
    """The times kept in FOLDER (none: no folder, no file, or one that does not read as times)."""
    if folder is None:
        return {}
    try:
        data = json.loads((Path(folder) / FILE_NAME).read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {k: float(v) for k, v in data.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= 0}


def save(folder: Path | None, took: Mapping[str, float]) -> None:
    """Keeps TOOK in FOLDER, over the times of the same labs kept before (other labs' stay). A
    folder that is gone (the cluster was deleted meanwhile) or cannot be written keeps nothing."""
    if folder is None or not took or not Path(folder).is_dir():
        return
    times = load(folder) | {lab_id: round(seconds, 1) for lab_id, seconds in took.items()}
    path = Path(folder) / FILE_NAME
    part = path.with_name(f".{FILE_NAME}.{os.getpid()}")
    try:
        part.write_text(json.dumps(times, indent=1, sort_keys=True) + "\n")
        part.replace(path)
    except OSError:
        part.unlink(missing_ok=True)


def longest_first(labs: Sequence[Any], times: Mapping[str, float]) -> list[Any]:
    """LABS (each with an .id) in the order to start them: the longest by TIMES first, the ones
    TIMES does not know before all of them; ties keep their order."""
    return sorted(labs, key=lambda lab: -times.get(lab.id, math.inf))
