"""Progress bars: shown on a terminal and in an interactive JupyterLab session, silent in executed notebooks.

Every loop of the library draws its bar through :func:`progress_bar`. A caller hides one bar with ``show=False``; the
pipeline hides them all by running papermill with ``TQDM_DISABLE=1`` in the environment (``dvc.yaml``): tqdm
reads ``TQDM_<ARGUMENT>`` variables as defaults for arguments the call does not pass, so ``progress_bar`` must leave
``disable`` unset when the caller wants a bar.
"""

from __future__ import annotations

from collections.abc import Iterable

from tqdm import tqdm


def progress_bar(iterable: Iterable | None = None, show: bool = True, **kwargs) -> tqdm:
    """A tqdm bar over ``iterable`` (or a manual one with ``total=``); ``show=False`` hides it."""
    # Set ``disable`` only to hide: passing disable=False would override TQDM_DISABLE=1 from the environment.
    if not show:
        kwargs["disable"] = True
    return tqdm(iterable, **kwargs)
