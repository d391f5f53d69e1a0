"""Exports read through fsspec URLs give exactly what the local reader gives."""

from __future__ import annotations

import pickle
import shutil
import zipfile
from pathlib import Path

import fsspec
import numpy as np
import pytest

from plankton_store.io import ExportError, _zip, _zipdir, is_url, read_export


@pytest.fixture
def memory_fs():
    fs = fsspec.filesystem("memory")
    yield fs
    fs.rm("/url-tests", recursive=True) if fs.exists("/url-tests") else None


def assert_same_export(remote, local) -> None:
    assert remote.layout == local.layout
    assert remote.fingerprint == local.fingerprint
    assert remote.rows_read == local.rows_read
    assert remote.table.equals(local.table)
    assert remote.rejects.equals(local.rejects)
    assert sorted(remote.features) == sorted(local.features)
    for name, frame in remote.features.items():
        assert frame.equals(local.features[name])
    for ref in local.table["image"][:5]:
        assert remote.fetcher.fetch(ref) == local.fetcher.fetch(ref)


def test_is_url():
    assert is_url("s3://bucket/export") and is_url("memory://x") and is_url("simplecache::s3://b")
    assert not is_url("/data/export") and not is_url("file:///data/export")
    assert not is_url(Path("relative/export"))


def test_flowcam_export_with_zip_from_a_url(small_export, memory_fs):
    memory_fs.put(str(small_export), "/url-tests/zip", recursive=True)
    remote = read_export("memory://url-tests/zip")
    assert remote.root == "memory://url-tests/zip"
    assert_same_export(remote, read_export(small_export))
    fetcher = pickle.loads(pickle.dumps(remote.fetcher))  # no open handle travels
    with pytest.raises(FileNotFoundError, match="no image 'imgs/1.jpg'"):
        fetcher.fetch("imgs/1.jpg")


def test_flowcam_export_with_an_image_folder_and_image_folder_layout(
    small_export, memory_fs, tmp_path
):
    local = tmp_path / "export"
    with zipfile.ZipFile(small_export / "imgs.zip") as zf:
        zf.extractall(local)
    shutil.copy(small_export / "meta.csv", local / "meta.csv")
    memory_fs.put(str(local), "/url-tests/folder", recursive=True)
    assert_same_export(read_export("memory://url-tests/folder"), read_export(local))
    # The same images as one class folder: the image-folder layout.
    memory_fs.put(str(local / "imgs"), "/url-tests/classes/copepod", recursive=True)
    shutil.copytree(local / "imgs", tmp_path / "classes" / "copepod")
    remote = read_export("memory://url-tests/classes")
    assert remote.layout == "image-folder"
    assert_same_export(remote, read_export(tmp_path / "classes"))


def test_file_url_takes_the_local_path(small_export):
    export = read_export(f"file://{small_export}")
    assert export.root == str(small_export) and not is_url(export.root)


def test_missing_url_folder_is_an_export_error(memory_fs):
    with pytest.raises(ExportError, match="memory://url-tests/none: no such folder"):
        read_export("memory://url-tests/none")


@pytest.mark.parametrize("layout", ["zip", "folder"])
def test_batch_fetch_equals_fetch(small_export, memory_fs, tmp_path, layout):
    local = small_export
    if layout == "folder":
        local = tmp_path / "export"
        with zipfile.ZipFile(small_export / "imgs.zip") as zf:
            zf.extractall(local)
        shutil.copy(small_export / "meta.csv", local / "meta.csv")
    memory_fs.put(str(local), f"/url-tests/{layout}", recursive=True)
    remote = read_export(f"memory://url-tests/{layout}")
    refs = remote.table["image"].tolist()[::-1]  # not in zip order
    refs += refs[:3] + ["imgs/1.jpg"]  # duplicates (augmented copies) and a missing image
    fetch = pickle.loads(pickle.dumps(remote.fetcher.batch(refs)))
    expected = read_export(local).fetcher
    for ref in refs[:-1]:
        assert fetch(ref) == expected.fetch(ref)
    with pytest.raises(FileNotFoundError, match="no image 'imgs/1.jpg'"):
        fetch("imgs/1.jpg")
    # A reference outside the batch is fetched alone.
    assert remote.fetcher.batch(refs[:1])(refs[1]) == remote.fetcher.fetch(refs[1])


def test_a_batch_carries_its_zip_entries_so_a_worker_never_reads_the_directory(
    small_export, monkeypatch
):
    """The client read the zip's central directory; a block task ships its images' entries,
    so a worker reads just those members (the directory is 243,610 entries at full scale)."""
    fetcher = read_export(small_export).fetcher
    refs = list(read_export(small_export).table["image"][:20])
    expected = {ref: fetcher.fetch(ref) for ref in refs}
    shipped = pickle.loads(pickle.dumps(fetcher.batch(refs[:10])))  # as sent to a worker
    # One array of entries, not a tuple per image (each would be pickled three times).
    assert shipped.zip_entries.shape == (10, 5) and shipped.zip_entries.dtype == np.int64
    monkeypatch.setattr(_zip, "_ZIP_CACHE", {})  # a fresh worker process

    def no_directory(*args, **kwargs):
        raise AssertionError("the worker read the zip's central directory")

    with monkeypatch.context() as patched:
        patched.setattr(zipfile, "ZipFile", no_directory)
        assert [shipped(ref) for ref in refs[:10]] == [expected[ref] for ref in refs[:10]]
    assert shipped._found is None  # a local export is read image by image, not prefetched
    # An image outside the batch still reads, through the directory, read once then.
    assert shipped(refs[15]) == expected[refs[15]]
    with pytest.raises(FileNotFoundError, match="no image"):
        shipped("imgs/no-such-image.jpg")
    # The batch keeps this process's reader (an open file), which is never pickled.
    assert shipped._zip is not None
    again = pickle.loads(pickle.dumps(shipped))
    assert again._zip is None and again(refs[3]) == expected[refs[3]]


def test_listing_entries_of_a_repeated_name_are_its_last_ones():
    """A zip may hold one name twice; as in zipfile and a dict, the last entry wins, and a
    name the listing lacks gets the sentinel row."""
    entries = np.arange(20, dtype=np.int64).reshape(4, 5)
    listing = _zipdir._ListingMembers(["a", "b", "a", "c"], entries)
    got = listing.entries_of(["a", "x", "c", "b", "a"])
    expected = entries[[2, 0, 3, 1, 2]]
    expected[1] = _zipdir._NO_ENTRY
    np.testing.assert_array_equal(got, expected)
    assert listing["a"] == tuple(entries[2].tolist())
    assert listing.entries_of([]).shape == (0, 5)


def test_zip_entries_from_the_listing_match_zipfile_and_a_reader_of_some_members(small_export):
    """The client takes a batch's entries from its listing's arrays; they are zipfile's
    entries, a reader that knows only some members (as a worker does) gives the same rows,
    and both give a sentinel row for a name the zip lacks."""
    fetcher = read_export(small_export).fetcher
    names = [*read_export(small_export).table["image"][:7], "imgs/no-such-image.jpg"]
    client_zip = _zip._open_zip(fetcher._zip_path())
    assert isinstance(client_zip.members, _zipdir._ListingMembers)
    with zipfile.ZipFile(fetcher._zip_path()) as zf:
        infos = [zf.getinfo(n) for n in names[:-1]]
    expected = [
        [i.header_offset, i.compress_size, i.compress_type, i.CRC, len(i.extra)] for i in infos
    ]
    some = {n: client_zip.members[n] for n in names[:-1]}
    partial_zip = _zip._LocalZip(fetcher._zip_path(), some)
    assert not partial_zip.complete and isinstance(partial_zip.members, dict)
    from_listing, from_members = client_zip.entries_of(names), partial_zip.entries_of(names)
    np.testing.assert_array_equal(from_listing, from_members)
    assert from_listing[:-1].tolist() == expected
    assert [list(client_zip.member(n)) for n in names[:-1]] == expected
    assert tuple(from_listing[-1]) == _zipdir._NO_ENTRY
    assert names[-1] not in client_zip.members and len(client_zip.members) > len(some)
    shipped = pickle.loads(pickle.dumps(fetcher.batch(names)))
    assert shipped(names[0]) == fetcher.fetch(names[0])
    with pytest.raises(FileNotFoundError, match="no image"):
        shipped(names[-1])


def test_a_folder_export_is_fetched_image_by_image(small_export, tmp_path):
    folder = tmp_path / "folder-export"
    shutil.copytree(small_export, folder, ignore=shutil.ignore_patterns("imgs.zip"))
    with zipfile.ZipFile(small_export / "imgs.zip") as zf:
        zf.extractall(folder)
    fetcher = read_export(folder).fetcher
    assert fetcher.zip_name is None and fetcher.batch(["imgs/1000.jpg"]) == fetcher.fetch
