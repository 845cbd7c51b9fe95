"""Offline bundle: one archive with every image and pinned upstream file the labs need, for a
classroom without internet. `save` on a machine that has them; `load` on each student machine,
then svclab preloads the images into its nodes as usual and reads the files from the mirror.

Layout of the archive (a plain tar):

    bundle.json                  what is inside, with sha256 of every pinned file
    images.tar                   `docker save` of the images
    mirror/<host>/<path>         pinned upstream files, laid out as the mirror folder expects
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import subprocess
import tarfile
from pathlib import Path

from .config import Settings, pins
from .errors import PrerequisiteError, SvclabError, UsageError
from .mirror import fetch, mirror_path

__all__ = ["bundle_images", "pinned_files", "save_bundle", "load_bundle"]

FORMAT = 1


def pinned_files() -> list[tuple[str, str]]:
    """(url, sha256) of every pinned upstream file."""
    p = pins()
    files = [(p["metallb"]["manifest_url"], p["metallb"]["manifest_sha256"]),
             (p["kube_vip"]["cloud_provider_manifest_url"], p["kube_vip"]["cloud_provider_manifest_sha256"])]
    files += [(f["url"], f["sha256"]) for f in p["gateway_api"]["files"]]
    return files


def bundle_images(settings: Settings) -> list[str]:
    p = pins()
    images = [p["agnhost"]["image"], p["metallb"]["controller_image"], p["metallb"]["speaker_image"],
              p["kube_vip"]["image"], p["kube_vip"]["cloud_provider_image"], p["traefik"]["image"]]
    if settings.node_image:
        images.append(settings.node_image)
    return images


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))


def save_bundle(settings: Settings, output: Path) -> dict:
    images = bundle_images(settings)
    files = {url: fetch(url, sha, cache_dir=settings.cache_dir, mirror=settings.mirror) for url, sha in pinned_files()}
    tmp = output.with_name(output.name + ".partial")
    try:
        with tarfile.open(tmp, "w") as tar:
            saved = subprocess.Popen(["docker", "save", *images], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            images_tar = output.with_name(output.name + ".images.partial")
            with images_tar.open("wb") as f:
                for chunk in iter(lambda: saved.stdout.read(1 << 20), b""):
                    f.write(chunk)
            if saved.wait() != 0:
                images_tar.unlink(missing_ok=True)
                raise PrerequisiteError(f"docker save failed: {saved.stderr.read().decode().strip()[:200]}",
                                        hint="the images must be in local Docker: pull them (`docker pull IMAGE`) or load a bundle (`svclab images.load`)")
            tar.add(images_tar, arcname="images.tar")
            images_tar.unlink()
            for url, data in files.items():
                _add_bytes(tar, str(mirror_path(Path("mirror"), url)), data)
            manifest = {"format": FORMAT, "images": images,
                        "files": [{"url": u, "sha256": s} for u, s in pinned_files()]}
            _add_bytes(tar, "bundle.json", json.dumps(manifest, indent=2).encode())
        tmp.replace(output)
    finally:
        tmp.unlink(missing_ok=True)
    return manifest


def load_bundle(settings: Settings, archive: Path, mirror_dir: Path) -> dict:
    if not archive.is_file():
        raise UsageError(f"{archive} does not exist", hint="give the file `svclab images.save` wrote")
    try:
        tar = tarfile.open(archive, "r")
    except tarfile.TarError:
        raise UsageError(f"{archive} is not a svclab bundle (not a tar archive)") from None
    with tar:
        try:
            manifest = json.load(tar.extractfile("bundle.json"))
        except (KeyError, ValueError):
            raise UsageError(f"{archive} is not a svclab bundle (no bundle.json)") from None
        if manifest.get("format") != FORMAT:
            raise UsageError(f"{archive} has bundle format {manifest.get('format')}, this svclab reads {FORMAT}")
        expected = dict(pinned_files())
        for item in manifest["files"]:
            if expected.get(item["url"]) != item["sha256"]:
                raise SvclabError(f"{archive}: {item['url']} is not the file this svclab pins",
                                  hint="make the bundle with the same svclab version")
            member = tar.extractfile(str(mirror_path(Path("mirror"), item["url"])))
            data = member.read() if member else b""
            if hashlib.sha256(data).hexdigest() != item["sha256"]:
                raise SvclabError(f"{archive}: {item['url']} fails its sha256 check; refusing the bundle")
            dest = mirror_path(mirror_dir, item["url"])
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(data)
        images = tar.extractfile("images.tar")
        if images is None:
            raise UsageError(f"{archive} is not a svclab bundle (no images.tar)")
        loader = subprocess.Popen(["docker", "load"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE)
        try:
            shutil.copyfileobj(images, loader.stdin, 1 << 20)
        except BrokenPipeError:
            pass
        loader.stdin.close()
        if loader.wait() != 0:
            raise PrerequisiteError(f"docker load failed: {loader.stderr.read().decode().strip()[:200]}",
                                    hint="start Docker (or check DOCKER_HOST and `docker context ls`); `svclab doctor` says more")
    return manifest
