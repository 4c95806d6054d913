"""Downloads over HTTP(S): parallel ranged GETs, resume after a broken connection, sha256 while streaming.

One probe (``Range: bytes=0-0``) tells whether the server serves ranges and how large the object is.
With ranges, the object is split into parts that worker threads write in place (``os.pwrite``) while the
calling thread hashes the parts in order as soon as each is complete, so hashing overlaps the transfer.
A part whose connection drops resumes from its last byte (``Range`` again, guarded by ``If-Range`` so a
changed object is detected). Without ranges the one stream is hashed inline, and a drop restarts it.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace

from modelyard_runtime.loader.errors import FetchError, LoaderError, UnsafeContentError
from modelyard_runtime.loader.net import NetPolicy, Response, Signer, open_url
from modelyard_runtime.loader.progress import Progress
from modelyard_runtime.loader.uri import origin, redact

CHUNK = 1 << 20
MIN_PART = 8 << 20
MAX_PART = 32 << 20
RETRIES = 5
TRANSIENT = (OSError, http.client.HTTPException)


class TooLargeError(UnsafeContentError):
    reason = "SizeLimitExceeded"


@dataclass
class Downloaded:
    sha256: str
    size: int


@dataclass
class DownloadOptions:
    policy: NetPolicy
    max_bytes: int
    parallel: int = 4
    signer: Signer | None = None
    label: str = ""
    progress: bool = True


def _content_range_total(value: str | None) -> int | None:
    # "bytes 0-0/12345"
    if not value or "/" not in value:
        return None
    total = value.rsplit("/", 1)[1].strip()
    return int(total) if total.isdigit() else None


def _status_error(url: str, resp: Response) -> LoaderError:
    return FetchError(f"{redact(url)}: HTTP {resp.status} {resp.raw.reason}")


def _retryable(status: int) -> bool:
    return status in (408, 429) or status >= 500


def download(url: str, path: str, opts: DownloadOptions) -> Downloaded:
    """Fetch ``url`` into the file ``path`` (created); return its sha256 and size."""
    label = opts.label or redact(url)
    resp = _open_retrying(url, opts, {"Range": "bytes=0-0"})
    total: int | None
    if resp.status == 206:
        total = _content_range_total(resp.headers.get("Content-Range"))
        validator = resp.headers.get("ETag") or resp.headers.get("Last-Modified")
        final = resp.url
        resp.read()
        resp.close()
        if total is None:
            raise FetchError(f"{redact(url)}: 206 response without a usable Content-Range")
        _check_size(url, total, opts.max_bytes)
        progress = Progress(label, total) if opts.progress else None
        with open(path, "wb") as f:
            f.truncate(total)
        if total == 0:
            return Downloaded(hashlib.sha256().hexdigest(), 0)
        if origin(final) != origin(url):  # redirected elsewhere: the signer's credentials stay with the origin
            opts = replace(opts, signer=None)
        result = _ranged(final, path, total, validator, opts, progress)
    elif resp.status == 200:
        length = resp.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        if total is not None:
            _check_size(url, total, opts.max_bytes)
        progress = Progress(label, total) if opts.progress else None
        result = _single_stream(url, path, resp, total, opts, progress)
    elif resp.status == 416:  # empty object: no byte 0 to serve
        resp.close()
        with open(path, "wb"):
            pass
        return Downloaded(hashlib.sha256().hexdigest(), 0)
    else:
        err = _status_error(url, resp)
        resp.close()
        raise err
    if progress:
        progress.finish()
    return result


def _check_size(url: str, size: int, limit: int) -> None:
    if size > limit:
        raise TooLargeError(f"{redact(url)}: {size} bytes exceed the size limit of {limit} bytes (--max-bytes)")


def _open_retrying(url: str, opts: DownloadOptions, headers: dict[str, str]) -> Response:
    delay = 0.2
    for attempt in range(RETRIES):
        try:
            resp = open_url("GET", url, opts.policy, headers, signer=opts.signer)
        except FetchError:
            if attempt == RETRIES - 1:
                raise
        else:
            if not _retryable(resp.status) or attempt == RETRIES - 1:
                return resp
            resp.close()
        time.sleep(delay)
        delay *= 2
    raise AssertionError("unreachable")


def _single_stream(
    url: str, path: str, resp: Response, total: int | None, opts: DownloadOptions, progress: Progress | None
) -> Downloaded:
    """No ranges: one stream hashed inline; a dropped connection restarts from byte 0."""
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    for attempt in range(RETRIES):
        digest = hashlib.sha256()
        size = 0
        if progress:
            progress.reset()
        try:
            with open(path, "wb") as f:
                while True:
                    n = resp.readinto(view)
                    if not n:
                        break
                    size += n
                    if size > opts.max_bytes:
                        _check_size(url, size, opts.max_bytes)
                    digest.update(view[:n])
                    f.write(view[:n])
                    if progress:
                        progress.add(n)
            if total is not None and size != total:
                raise http.client.IncompleteRead(b"", total - size)
            resp.close()
            return Downloaded(digest.hexdigest(), size)
        except TRANSIENT:
            resp.close()
            if attempt == RETRIES - 1:
                raise FetchError(f"{redact(url)}: connection broken {RETRIES} times; giving up") from None
            time.sleep(0.2 * 2**attempt)
            resp = _open_retrying(url, opts, {})
            if resp.status != 200:
                err = _status_error(url, resp)
                resp.close()
                raise err from None
    raise AssertionError("unreachable")


class _Written:
    """How many bytes of each part are on disk (contiguous from the part's start): workers report after each
    write, the hashing thread waits for the next bytes in order, so hashing trails the transfer closely."""

    def __init__(self, count: int) -> None:
        self.cv = threading.Condition()
        self.bytes = [0] * count

    def add(self, index: int, n: int) -> None:
        with self.cv:
            self.bytes[index] += n
            self.cv.notify_all()

    def wake(self) -> None:
        with self.cv:
            self.cv.notify_all()


def _ranged(
    url: str, path: str, total: int, validator: str | None, opts: DownloadOptions, progress: Progress | None
) -> Downloaded:
    parallel = max(1, opts.parallel)
    part = min(MAX_PART, max(MIN_PART, -(-total // (parallel * 4))))
    parts = [(start, min(start + part, total)) for start in range(0, total, part)]
    fd = os.open(path, os.O_WRONLY)
    stop = threading.Event()
    written = _Written(len(parts))
    try:
        with ThreadPoolExecutor(max_workers=min(parallel, len(parts)), thread_name_prefix="fetch") as pool:
            futures = [
                pool.submit(_fetch_part, url, fd, i, s, e, validator, opts, progress, stop, written)
                for i, (s, e) in enumerate(parts)
            ]
            for fut in futures:
                fut.add_done_callback(lambda _f: written.wake())
            try:
                digest = _hash_in_order(path, parts, futures, written)
            except BaseException:
                stop.set()
                for fut in futures:
                    fut.cancel()
                raise
    finally:
        os.close(fd)
    return Downloaded(digest, total)


def _hash_in_order(path: str, parts: list[tuple[int, int]], futures: list[Future[None]], written: _Written) -> str:
    digest = hashlib.sha256()
    buf = bytearray(4 * CHUNK)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as f:
        for index, ((start, end), fut) in enumerate(zip(parts, futures, strict=True)):
            hashed = 0
            while hashed < end - start:
                with written.cv:
                    while written.bytes[index] == hashed and not fut.done():
                        written.cv.wait(0.5)
                    available = written.bytes[index]
                if available == hashed:  # the part finished (or failed) without more bytes
                    fut.result()
                    raise FetchError(f"{path}: part at byte {start} ended early")
                f.seek(start + hashed)
                while hashed < available:
                    n = f.readinto(view[: min(len(buf), available - hashed)])
                    if not n:
                        raise FetchError(f"{path}: short read while hashing")
                    digest.update(view[:n])
                    hashed += n
            fut.result()
    return digest.hexdigest()


def _fetch_part(
    url: str,
    fd: int,
    index: int,
    start: int,
    end: int,
    validator: str | None,
    opts: DownloadOptions,
    progress: Progress | None,
    stop: threading.Event,
    written: _Written,
) -> None:
    """Fetch bytes [start, end) into ``fd``; resume from the last byte written when the connection drops."""
    pos = start
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    failures = 0
    while pos < end:
        if stop.is_set():
            return
        headers = {"Range": f"bytes={pos}-{end - 1}"}
        if validator:
            headers["If-Range"] = validator
        attempt_start = pos
        try:
            resp = open_url("GET", url, opts.policy, headers, signer=opts.signer)
        except FetchError:
            failures += 1
            if failures >= RETRIES:
                raise
            time.sleep(0.2 * 2**failures)
            continue
        try:
            if resp.status != 206:
                if _retryable(resp.status) and failures < RETRIES - 1:
                    failures += 1
                    time.sleep(0.2 * 2**failures)
                    continue
                if resp.status == 200:
                    raise FetchError(f"{redact(url)}: the object changed during the download (range ignored)")
                raise _status_error(url, resp)
            got = resp.headers.get("Content-Range", "")
            if not got.startswith(f"bytes {pos}-"):
                raise FetchError(f"{redact(url)}: asked for bytes {pos}-, got {got!r}")
            while pos < end:
                n = resp.readinto(view[: min(CHUNK, end - pos)])
                if not n:
                    raise http.client.IncompleteRead(b"", end - pos)
                os.pwrite(fd, view[:n], pos)
                pos += n
                written.add(index, n)
                if progress:
                    progress.add(n)
        except TRANSIENT:
            failures = 1 if pos > attempt_start else failures + 1  # a drop after progress starts counting anew
            if failures >= RETRIES:
                raise FetchError(f"{redact(url)}: connection broken {RETRIES} times at byte {pos}; giving up") from None
            time.sleep(0.1 * 2**failures)
        finally:
            resp.close()
