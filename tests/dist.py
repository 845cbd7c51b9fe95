"""Building svclab's wheel and sdist the way a release would: with `python -m build` (the sdist
first, then the wheel from the sdist) from a copy of the files git knows about, committed or not
yet, as they are in the working tree. Used by the packaging unit tests and by the e2e tests that
run the installed wheel."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def tree_files() -> list[str]:
    """The tree's files as `git ls-files` sees them: tracked ones and new ones not ignored."""
    out = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                         capture_output=True, check=True).stdout.decode()
    return sorted(f for f in set(out.split("\0")) if f and (ROOT / f).is_file())


def build_dists(work: Path, files: list[str] | None = None, *, timeout: float = 900) -> dict[str, Path]:
    """{"wheel": ..., "sdist": ...} built under WORK from FILES (default: the tree's)."""
    src = work / "src"
    for name in files if files is not None else tree_files():
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, src / name)
    out = work / "dist"
    proc = subprocess.run([sys.executable, "-m", "build", "--outdir", str(out), str(src)], capture_output=True,
                          text=True, timeout=timeout)
    assert proc.returncode == 0, f"python -m build exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    wheels, sdists = list(out.glob("*.whl")), list(out.glob("*.tar.gz"))
    assert len(wheels) == 1 and len(sdists) == 1, list(out.iterdir())
    return {"wheel": wheels[0], "sdist": sdists[0]}
