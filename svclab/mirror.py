"""Pinned upstream files (manifests): downloaded once from their pinned URL or read from a local
mirror folder, always checked against their sha256, then kept in a content-addressed cache.

A mirror folder holds each file at ``<mirror>/<host>/<path of the URL>``, so a classroom without
internet can copy one folder and set ``SVCLAB_MIRROR``.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from urllib.parse import urlsplit

import requests

from .errors import PrerequisiteError, SvclabError

__all__ = ["fetch", "mirror_path"]


def mirror_path(mirror: Path, url: str) -> Path:
    parts = urlsplit(url)
    return mirror / parts.netloc / parts.path.lstrip("/")


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def fetch(url: str, sha256: str, *, cache_dir: Path, mirror: Path | None, timeout: float = 30.0) -> bytes:
    """Returns the bytes of URL, whose sha256 must be SHA256."""
    cached = cache_dir / "downloads" / sha256
    if cached.exists():
        data = cached.read_bytes()
        if _sha256(data) == sha256:
            return data
        cached.unlink()
    if mirror is not None:
        local = mirror_path(mirror, url)
        try:
            data = local.read_bytes()
        except FileNotFoundError:
            raise PrerequisiteError(f"{url} is not in the mirror folder",
                                    hint=f"put it at {local} or unset SVCLAB_MIRROR") from None
        source = str(local)
    else:
        try:
            response = requests.get(url, timeout=timeout)
            response.raise_for_status()
        except requests.RequestException as e:
            raise PrerequisiteError(f"cannot download {url} ({type(e).__name__})",
                                    hint="check the network, or set SVCLAB_MIRROR to a folder holding it") from None
        data = response.content
        source = url
    got = _sha256(data)
    if got != sha256:
        raise SvclabError(f"{source} has sha256 {got}, expected {sha256}",
                          hint="the file changed upstream or in the mirror; refusing to use it")
    cached.parent.mkdir(parents=True, exist_ok=True)
    tmp = cached.with_suffix(".tmp")
    tmp.write_bytes(data)
    tmp.replace(cached)
    return data
