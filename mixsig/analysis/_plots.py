"""What every section's figures share: matplotlib (Agg backend, imported on first use), PNG bytes, colours."""

from __future__ import annotations

import io

CATEGORY_COLOURS = {"agreement": "#9aa5b1", "rescued": "#2b8a3e", "misled": "#c92a2a", "disagree_wrong": "#e67700"}


def pyplot():
    """``matplotlib.pyplot`` on the Agg backend."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def png(fig) -> bytes:
    """The figure as PNG bytes (80 dpi, tight bounding box); closes it."""
    plt = pyplot()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()
