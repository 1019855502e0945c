"""Where inputs and runs live: local paths, or object stores through fsspec (``s3://``, ``gs://``, ``hf://``...).

The one module that imports fsspec (DESIGN.md, "Storage"). Readers ask it to
open, size, list and fingerprint input files; the runner asks it to mirror a
run between a local staging directory and an object store.

Credentials and endpoints come from the usual environment and configuration
of the filesystem library (for S3: ``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_ENDPOINT_URL`` for S3-compatible stores,
``~/.aws/config``); curator never writes them into a run. See docs/cluster.md,
"Object stores".
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

from curator.errors import ConfigError

#: files of a run that are never mirrored: the local lock, temporary files, the mirror's own record
_PRIVATE = (".curator.lock", ".curator-synced.json")


def is_remote(path: str | os.PathLike[str]) -> bool:
    """True for a URL an fsspec filesystem serves (``s3://bucket/key``), False for a local path."""
    text = str(path)
    return "://" in text and not text.startswith("file://")


def _filesystem(url: str) -> tuple[Any, str]:
    """(fsspec filesystem, path without the protocol) for a URL."""
    try:
        import fsspec
    except ImportError:
        raise ConfigError(f"{url}: reading object stores needs fsspec and its driver: pip install 'corpus-curator[s3]'") from None
    try:
        fs, path = fsspec.core.url_to_fs(url)
    except (ImportError, ValueError) as exc:
        raise ConfigError(f"{url}: no filesystem for this URL ({exc}); for s3:// pip install s3fs, for gs:// gcsfs") from None
    return fs, path


def _url(fs: Any, path: str) -> str:
    """A path the filesystem returned, as a URL again (``bucket/key`` -> ``s3://bucket/key``)."""
    protocol = fs.protocol[0] if isinstance(fs.protocol, (tuple, list)) else fs.protocol
    return f"{protocol}://{path}"


def split_url(url: str) -> tuple[str, str]:
    """``s3://bucket/a/b.parquet`` -> (``s3://``, ``bucket/a/b.parquet``)."""
    scheme, rest = url.split("://", 1)
    return f"{scheme}://", rest


def glob(pattern: str) -> list[str]:
    """The files a remote pattern matches, as URLs (a prefix ending in / means everything under it)."""
    fs, path = _filesystem(pattern)
    if path.endswith("/") or (not any(c in path for c in "*?[") and fs.isdir(path)):
        matches = [p for p in fs.find(path.rstrip("/")) if not posixpath.basename(p).startswith(".")]
    else:
        matches = [p for p in fs.glob(path) if fs.isfile(p)]
    return sorted(_url(fs, p) for p in matches)


def open_input(path: str, mode: str = "rb") -> IO[bytes]:
    """A file object for reading an input, local or remote."""
    if not is_remote(path):
        return open(path, mode)  # noqa: SIM115 - the caller closes it
    fs, key = _filesystem(path)
    # read-ahead blocks: Parquet readers seek, JSONL readers stream
    return fs.open(key, mode, block_size=8 << 20, cache_type="readahead")


def size(path: str) -> int:
    if not is_remote(path):
        return os.path.getsize(path)
    fs, key = _filesystem(path)
    return int(fs.size(key))


def fingerprint(path: str, mode: str) -> dict[str, Any] | None:
    """A remote object's size and modification time, or (``hash``) its ETag: the store's content hash."""
    fs, key = _filesystem(path)
    try:
        fs.invalidate_cache(key)  # a listing cached earlier in this process may be stale
        info = fs.info(key)
    except (OSError, FileNotFoundError):
        return None
    out: dict[str, Any] = {"size": int(info.get("size") or 0)}
    if mode == "hash":
        out["etag"] = str(info.get("ETag") or info.get("etag") or info.get("md5Hash") or info.get("sha256") or "")
    else:
        modified = info.get("LastModified") or info.get("mtime") or info.get("updated")
        out["modified"] = str(modified)
    return out


# --------------------------------------------------------------------------- runs in an object store


def staging_dir(url: str) -> Path:
    """The local directory a remote run is written in and mirrored from (CURATOR_STAGING_DIR, else ~/.cache)."""
    root = Path(os.environ.get("CURATOR_STAGING_DIR") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "curator" / "staging")
    name = hashlib.sha256(url.rstrip("/").encode()).hexdigest()[:16]
    return root / name


class RunMirror:
    """A run directory kept in an object store, written through a local staging directory.

    * :meth:`pull` copies what the store holds into the staging directory
      (only files missing or different there), so a run resumes on any
      machine: its markers say which units are done.
    * :meth:`push` uploads the files of one finished unit, its marker last,
      so a marker in the store means the unit's shards are there too.
    * :meth:`push_all` uploads whatever changed and deletes from the store
      what the run deleted (a redone unit's extra chunks, pruned units).
    """

    def __init__(self, url: str, local: Path) -> None:
        self.url = url.rstrip("/")
        self.local = Path(local)
        self.fs, self.root = _filesystem(self.url)
        self._record_path = self.local / ".curator-synced.json"

    # what the store holds, by relative path: size (a cheap listing, no download)
    def _remote(self) -> dict[str, int]:
        try:
            found = self.fs.find(self.root, detail=True)
        except FileNotFoundError:
            return {}
        out = {}
        for key, info in found.items():
            if info.get("type", "file") == "file":
                out[posixpath.relpath(key, self.root)] = int(info.get("size") or 0)
        return out

    def _local(self) -> dict[str, tuple[int, int]]:
        out = {}
        for path in self.local.rglob("*"):
            if path.is_file() and path.name not in _PRIVATE and not path.name.endswith(".tmp"):
                st = path.stat()
                out[path.relative_to(self.local).as_posix()] = (st.st_size, st.st_mtime_ns)
        return out

    def _record(self) -> dict[str, list[int]]:
        try:
            return json.loads(self._record_path.read_text())
        except (OSError, ValueError):
            return {}

    def _save_record(self, record: dict[str, Any]) -> None:
        self._record_path.write_text(json.dumps(record))

    def exists(self) -> bool:
        return bool(self.fs.exists(posixpath.join(self.root, "manifest.json")))

    def pull(self) -> int:
        """Copy the store's files that the staging directory lacks (or holds in another size); returns how many."""
        self.local.mkdir(parents=True, exist_ok=True)
        remote = self._remote()
        local = self._local()
        record = self._record()
        fetched = 0
        for rel, nbytes in sorted(remote.items()):
            here = local.get(rel)
            if here is not None and here[0] == nbytes:
                continue
            target = self.local / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.tmp")
            self.fs.get_file(posixpath.join(self.root, rel), str(tmp))
            os.replace(tmp, target)
            st = target.stat()
            record[rel] = [st.st_size, st.st_mtime_ns]
            fetched += 1
        # local files the store does not have came from an attempt that never reached it: keep them,
        # the run's markers decide what is done (a local marker without its shards does not exist)
        self._save_record(record)
        return fetched

    def push(self, paths: Iterable[Path]) -> None:
        """Upload these staging files now, in order (put a unit's marker last)."""
        record = self._record()
        for path in paths:
            if not path.is_file():
                continue
            rel = path.relative_to(self.local).as_posix()
            self.fs.put_file(str(path), posixpath.join(self.root, rel))
            st = path.stat()
            record[rel] = [st.st_size, st.st_mtime_ns]
        self._save_record(record)

    def push_all(self) -> None:
        """Make the store hold exactly the staging directory: upload what changed, delete what is gone."""
        record = self._record()
        local = self._local()
        remote = self._remote()
        # markers after shards, the manifest last: the store never shows a unit done before its rows
        order = sorted(local, key=lambda rel: (rel == "manifest.json", "/_done/" in rel, rel))
        for rel in order:
            if record.get(rel) == list(local[rel]) and rel in remote:
                continue
            self.fs.put_file(str(self.local / rel), posixpath.join(self.root, rel))
            record[rel] = list(local[rel])
        gone = [rel for rel in remote if rel not in local]
        if gone:
            self.fs.rm([posixpath.join(self.root, rel) for rel in gone])
        for rel in gone:
            record.pop(rel, None)
        self._save_record(record)

    def clear(self) -> None:
        """Delete the run from the store (``--overwrite``)."""
        remote = self._remote()
        if remote:
            self.fs.rm([posixpath.join(self.root, rel) for rel in remote])
        self._save_record({})


def local_run(run: str) -> Path:
    """A run directory to read: the path itself, or the local mirror of a run in an object store, brought up to date."""
    if not is_remote(run):
        return Path(run)
    mirror = RunMirror(run, staging_dir(run))
    if not mirror.exists():
        raise ConfigError(f"{run}: no curator run there (no manifest.json)")
    mirror.pull()
    return mirror.local
