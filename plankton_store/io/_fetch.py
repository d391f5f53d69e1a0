"""The picklable image fetcher that block tasks carry: one image's raw bytes by reference.

An :class:`ImageFetcher` reads from an export's ``imgs.zip`` (through the readers of
:mod:`plankton_store.io._zip`) or from image files under its root, local or behind an
fsspec URL; :meth:`ImageFetcher.batch` gives a block task's fetch function. No image is
decoded here; that is the workers' job.
"""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from plankton_store.io._fs import _filesystem, _join, _local_path, is_url
from plankton_store.io._zip import _IndexedZip, _open_zip, _read_member

__all__ = ["ImageFetcher"]


def _is_unsafe(ref: str) -> bool:
    parts = re.split(r"[/\\]", ref)
    return ref.startswith(("/", "\\")) or bool(re.match(r"[A-Za-z]:", ref)) or ".." in parts


@dataclass(frozen=True)
class ImageFetcher:
    """Picklable, cheap: fetches one image's raw bytes by its reference.

    Each process opens the zip (or the remote filesystem) itself, lazily, once (the cache
    is keyed on ``(zip path, storage options, os.getpid())``), and reads its central
    directory only for a member that no :meth:`batch` brought along; no file handle is ever
    pickled. Concurrent calls from threads of one process are safe (positioned reads, no
    shared file offset).

    Parameters
    ----------
    root : str
        Absolute path or fsspec URL of the export folder or image-folder root.
    zip_name : str or None
        ``"imgs.zip"`` when the images are in a zip inside ``root``, else ``None`` (the
        images are files under ``root``).
    storage_options : dict or None
        fsspec options of a URL ``root`` (endpoint, credentials...); None uses the fsspec
        configuration of each process (environment, config files).
    """

    root: str
    zip_name: str | None = None
    storage_options: dict[str, Any] | None = field(default=None, hash=False)

    def fetch(self, ref: str) -> bytes:
        """Return the raw (encoded) bytes of one image.

        Parameters
        ----------
        ref : str
            The ``image`` value of a table row: a zip member name, or a posix path
            relative to ``root``.

        Returns
        -------
        bytes
            The file's bytes, not decoded.

        Raises
        ------
        FileNotFoundError
            No image with this reference (or the reference leaves ``root``).
        OSError
            The zip member is corrupt (bad CRC, bad header, undecompressable).
        """
        if self.zip_name is not None:
            zip_path = self._zip_path()
            return _read_member(_open_zip(zip_path, self.storage_options), ref, zip_path)
        if _is_unsafe(ref):
            raise FileNotFoundError(f"refusing to read {ref!r}: it leaves {self.root}")
        if is_url(self.root):
            fs, fs_path = _filesystem(self.root, self.storage_options)
            try:
                return fs.cat_file(fs_path.rstrip("/") + "/" + ref)
            except (FileNotFoundError, IsADirectoryError):
                raise FileNotFoundError(f"no image {ref!r} under {self.root}") from None
        path = os.path.join(_local_path(self.root), ref)
        try:
            with open(path, "rb") as f:
                return f.read()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise FileNotFoundError(f"no image {ref!r} under {self.root}") from None

    def batch(self, refs: Sequence[str]) -> Callable[[str], bytes]:
        """A fetch function for a known batch of references (one block task's images).

        Called where the export was read (the client): for a zip it carries the batch's
        entries of the zip's central directory, which the client has read, so that a worker
        never reads and parses the whole directory itself. For an export behind a URL it
        fetches the whole batch on its first call, with few concurrent requests, since one
        request per image would make a build wait on object-store latency; a local export is
        read image by image.
        """
        entries = None
        if self.zip_name is not None:
            entries = _open_zip(self._zip_path(), self.storage_options).entries_of(refs)
        elif not is_url(self.root):
            return self.fetch
        return _BatchFetch(self, tuple(refs), entries)

    def _zip_path(self) -> str:
        assert self.zip_name is not None
        return _join(self.root, self.zip_name)

    def fetch_many(self, refs: Sequence[str]) -> dict[str, bytes | Exception]:
        """Each distinct reference's bytes, or the exception :meth:`fetch` would raise."""
        if self.zip_name is not None and is_url(self.root):
            zip_path = self._zip_path()
            found = _open_zip(zip_path, self.storage_options).read_many(list(refs))
            return {
                ref: FileNotFoundError(f"no image {ref!r} in {zip_path}")
                if isinstance(v, KeyError)
                else v
                for ref, v in found.items()
            }
        if self.zip_name is None and is_url(self.root):
            fs, fs_path = _filesystem(self.root, self.storage_options)
            out: dict[str, bytes | Exception] = {}
            paths = {}
            for ref in dict.fromkeys(refs):
                if _is_unsafe(ref):
                    out[ref] = FileNotFoundError(f"refusing to read {ref!r}: it leaves {self.root}")
                else:
                    paths[fs_path.rstrip("/") + "/" + ref] = ref
            for path, value in fs.cat(list(paths), on_error="return").items():
                ref = paths.get(path) or paths[path.split("://", 1)[-1]]
                if isinstance(value, (FileNotFoundError, IsADirectoryError)):
                    value = FileNotFoundError(f"no image {ref!r} under {self.root}")
                out[ref] = value
            return out
        out = {}
        for ref in dict.fromkeys(refs):
            try:
                out[ref] = self.fetch(ref)
            except FileNotFoundError as exc:
                out[ref] = exc
        return out


@dataclass
class _BatchFetch:
    """``fetch`` for one batch of references, filled by one :meth:`ImageFetcher.fetch_many`."""

    fetcher: ImageFetcher
    refs: tuple[str, ...]
    zip_entries: np.ndarray | None = field(default=None, repr=False)  # see entries_of
    _found: dict[str, bytes | Exception] | None = field(default=None, repr=False)
    # This process's reader of a local zip and its path: never pickled (an open file).
    _zip: tuple[_IndexedZip, str] | None = field(default=None, repr=False)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_zip": None}

    def __call__(self, ref: str) -> bytes:
        if self.zip_entries is not None:  # first call in this process: index the zip
            known = (self.zip_entries[:, 0] >= 0).tolist()
            members = dict(
                zip(
                    itertools.compress(self.refs, known),
                    zip(*self.zip_entries[known].T.tolist(), strict=True),
                    strict=True,
                )
            )
            zip_path = self.fetcher._zip_path()
            zf = _open_zip(zip_path, self.fetcher.storage_options, members)
            self.zip_entries = None
            if not is_url(self.fetcher.root):
                # Kept for the batch: looking the reader up per image costs ~3 us.
                self._zip = (zf, zip_path)
        if self._zip is not None:  # a local zip, already indexed: the usual case
            zf, zip_path = self._zip
            return _read_member(zf, ref, zip_path)
        if not is_url(self.fetcher.root):
            return self.fetcher.fetch(ref)
        if self._found is None:
            self._found = self.fetcher.fetch_many(self.refs)
        value = self._found.get(ref)
        if value is None:  # not in the batch: fetch it alone
            return self.fetcher.fetch(ref)
        if isinstance(value, Exception):
            raise value
        return value
