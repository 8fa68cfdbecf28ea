"""Progress bars: live on a terminal; in a log file or pipe, one line at most every 30 seconds."""

from __future__ import annotations

import sys

from tqdm.auto import tqdm

LOG_INTERVAL = 30.0  # seconds between redraws when the output is not a terminal


def progress_bar(iterable=None, show: bool = True, **options) -> tqdm:
    """``tqdm(iterable, **options)``, off unless ``show``, slowed down where nobody watches it live."""
    if not sys.stderr.isatty():
        options.setdefault("mininterval", LOG_INTERVAL)
    return tqdm(iterable, disable=not show, dynamic_ncols=True, **options)
