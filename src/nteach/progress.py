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


def show_status(bar: tqdm, text: str) -> None:
    """Set the text after the bar: drawn at once on a terminal; in a log or pipe, with the bar's next timed
    line (tqdm redraws on every postfix by default, which would write a line per evaluation)."""
    bar.set_postfix_str(text, refresh=sys.stderr.isatty())
