"""Uploaded files are bounded while they are received, not after: Django's own handler writes
every byte of a multipart file to a temporary file before any view runs (uploaded files do not
count toward DATA_UPLOAD_MAX_MEMORY_SIZE), so a view's size check came after the disk had taken
whatever was sent. The bound is the largest upload a page takes (the Bayes training's)."""

from __future__ import annotations

from typing import Any

from django.core.files.uploadhandler import TemporaryFileUploadHandler


def max_upload() -> int:
    """Bytes of uploaded files one request may have kept on disk, all files together."""
    from webadmin.training import MAX_UPLOAD

    return MAX_UPLOAD


class BoundedTemporaryFileUploadHandler(TemporaryFileUploadHandler):
    """Django's temporary-file handler keeping at most max_upload() + 1 bytes a request; the
    rest is read and dropped. A file not kept whole reports a size over the bound, so every
    view's size check refuses it (it never sees a cut file as a complete one)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._room = max_upload() + 1
        self._cut = False

    def new_file(self, *args: Any, **kwargs: Any) -> None:
        super().new_file(*args, **kwargs)
        self._cut = False

    def receive_data_chunk(self, raw_data: bytes, start: int) -> None:
        keep = raw_data[:max(0, self._room)]
        if len(keep) < len(raw_data):
            self._cut = True
        if keep:
            self.file.write(keep)
            self._room -= len(keep)

    def file_complete(self, file_size: int) -> Any:
        f = super().file_complete(file_size)
        if self._cut:
            f.size = max(file_size, max_upload() + 1)
        return f
