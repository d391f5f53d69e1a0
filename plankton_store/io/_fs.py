"""Where an export lies: a local folder or an fsspec URL, and the few file operations readers need.

An export may be a local folder or an fsspec URL (``s3://bucket/export``, ``gs://...``,
``file:///...``). Local paths and ``file://`` URLs take a fast path through the OS; any
other URL is read through fsspec, whose endpoint and credentials come from the usual fsspec
configuration (``FSSPEC_S3_*`` environment variables, ``~/.config/fsspec/``, ``AWS_*``
variables for s3fs) or from ``storage_options``. :class:`_Folder` hides the difference from
the readers.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, BinaryIO

__all__ = ["is_url"]


def is_url(path: str | os.PathLike[str]) -> bool:
    """True for an fsspec URL read through fsspec; False for a local path or ``file://``."""
    text = os.fspath(path)
    return isinstance(text, str) and ("://" in text or "::" in text) and not _local_url(text)


def _local_url(text: str) -> bool:
    return text.startswith(("file://", "local://"))


def _local_path(text: str) -> str:
    """A plain path from a path or a ``file://`` / ``local://`` URL."""
    return text.split("://", 1)[1] if _local_url(text) else text


def _options_key(storage_options: dict[str, Any] | None) -> str:
    if not storage_options:  # the common case, on the per-image path: skip the JSON
        return ""
    return json.dumps(storage_options, sort_keys=True, default=str)


def _filesystem(url: str, storage_options: dict[str, Any] | None) -> tuple[Any, str]:
    import fsspec

    return fsspec.core.url_to_fs(url, **(storage_options or {}))


def _join(root: str, name: str) -> str:
    return root.rstrip("/") + "/" + name if is_url(root) else os.path.join(root, name)


def _walk_files(top: Path, rel_to: Path) -> list[tuple[str, int]]:
    """``(posix path relative to rel_to, size)`` of every file under ``top``, sorted."""
    out: list[tuple[str, int]] = []
    for dirpath, _dirnames, filenames in os.walk(top):
        rel_dir = Path(dirpath).relative_to(rel_to)
        for name in filenames:
            full = os.path.join(dirpath, name)
            try:
                size = os.stat(full).st_size
            except OSError:  # a dangling symlink: still listed, it becomes a reject later
                size = -1
            out.append(((rel_dir / name).as_posix(), size))
    out.sort()
    return out


class _Folder:
    """An export folder: local (pathlib and os, the fast path) or on an fsspec filesystem.

    ``root`` is what messages and the fetcher use: the absolute local path, or the URL.
    """

    def __init__(
        self, path: str | os.PathLike[str], storage_options: dict[str, Any] | None = None
    ) -> None:
        text = os.fspath(path)
        self.storage_options = storage_options
        if is_url(text):
            self.fs, self.path = _filesystem(text, storage_options)
            self.path = self.path.rstrip("/")
            self.root = text.rstrip("/")
        else:
            self.fs = None
            self.path = str(Path(_local_path(text)).absolute())
            self.root = self.path

    def join(self, name: str) -> str:
        return _join(self.root, name)

    def _fs_path(self, name: str) -> str:
        return f"{self.path}/{name}" if name else self.path

    def is_dir(self, name: str = "") -> bool:
        if self.fs is None:
            return os.path.isdir(os.path.join(self.path, name))
        return self.fs.isdir(self._fs_path(name))

    def is_file(self, name: str) -> bool:
        if self.fs is None:
            return os.path.isfile(os.path.join(self.path, name))
        return self.fs.isfile(self._fs_path(name))

    def size(self, name: str) -> int:
        if self.fs is None:
            return os.path.getsize(os.path.join(self.path, name))
        return int(self.fs.size(self._fs_path(name)))

    def read_bytes(self, name: str) -> bytes:
        if self.fs is None:
            return Path(self.path, name).read_bytes()
        return self.fs.cat_file(self._fs_path(name))

    def open(self, name: str) -> BinaryIO:
        """The file opened for reading, seekable (local or remote)."""
        if self.fs is None:
            return open(os.path.join(self.path, name), "rb")
        return self.fs.open(self._fs_path(name), "rb")

    def children(self) -> list[tuple[str, bool]]:
        """``(name, is_dir)`` of every entry directly in the folder, sorted by name."""
        if self.fs is None:
            return sorted((e.name, e.is_dir()) for e in os.scandir(self.path))
        entries = self.fs.ls(self.path, detail=True)
        return sorted(
            (e["name"].rstrip("/").rsplit("/", 1)[-1], e["type"] == "directory") for e in entries
        )

    def walk_files(self, sub: str = "") -> list[tuple[str, int]]:
        """``(posix path relative to the folder, size)`` of every file under ``sub``, sorted."""
        if self.fs is None:
            return _walk_files(Path(self.path, sub), Path(self.path))
        found = self.fs.find(self._fs_path(sub), detail=True)
        prefix = self.path + "/"
        return sorted(
            (name[len(prefix) :], int(info.get("size") or 0))
            for name, info in found.items()
            if info.get("type") != "directory" and name.startswith(prefix)
        )
