"""Writing a file so that it is either complete or not there at all (exports, the mail outbox)."""

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import BinaryIO


@contextmanager
def atomic_output(path: str | Path) -> Iterator[BinaryIO]:
    """Yield a binary stream whose content replaces ``path`` only if the block succeeds.

    The stream is a hidden temporary file in the same directory (``.<name>.<random>.part``),
    flushed to disk and then renamed over ``path`` with ``os.replace`` (atomic on one file
    system). When the block raises, including on Ctrl-C, the temporary file is removed and
    ``path`` is left as it was: no partial export is ever left behind. The file is created
    readable by its owner only (0600): it holds personal data.

    Raises:
        OSError: the directory does not exist or cannot be written.
    """
    path = Path(path)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.",
                                             suffix=".part")
    try:
        with os.fdopen(descriptor, "wb") as stream:
            yield stream
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        with suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
