"""Atomic file output: write to a temporary file beside the target, then rename.

A killed process or an exception leaves either the old file or nothing, never a
half-written output.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

__all__ = ["atomic_paths"]


@contextlib.contextmanager
def atomic_paths(targets: Sequence[str | Path]) -> Iterator[list[Path]]:
    """Temporary paths for ``targets``, renamed onto them only if the block succeeds.

    Parameters
    ----------
    targets : sequence of path
        Final file names. Their folders must exist.

    Yields
    ------
    list of Path
        One temporary path per target, in the same folder (so the rename is atomic)
        and with the same suffixes (so writers that look at the extension work).
    """
    targets = [Path(t) for t in targets]
    temps: list[Path] = []
    try:
        for t in targets:
            if not t.parent.is_dir():
                raise FileNotFoundError(f"output folder does not exist: {t.parent}")
            fd, name = tempfile.mkstemp(
                prefix=f".{t.name.split('.')[0]}-", suffix="".join(t.suffixes), dir=t.parent
            )
            os.close(fd)
            temps.append(Path(name))
        yield temps
        # mkstemp creates 0600 files: give outputs the usual permissions (0666 & ~umask)
        umask = os.umask(0)
        os.umask(umask)
        for tmp, t in zip(temps, targets, strict=True):
            os.chmod(tmp, 0o666 & ~umask)
            os.replace(tmp, t)
        temps = []
    finally:
        for tmp in temps:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
