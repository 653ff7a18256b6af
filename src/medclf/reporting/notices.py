"""The synthetic-data warning, worded once: the figure label, the table note, the report banner, notebook notices.

Everything made from the generated demo data carries one warning so a demo result can never be mistaken for
a real one. Only reporting shows it (notebooks through :func:`medclf.reporting.artifacts.show_synthetic_notice`),
so it lives in the lowest layer that needs it; whether a data set is synthetic is the data-set registry's
(:mod:`medclf.config.datasets`).
"""

from __future__ import annotations

#: The warning itself.
SYNTHETIC = "SYNTHETIC DATA — demo only"
#: The red label stamped above every saved figure.
SYNTHETIC_LABEL = SYNTHETIC
#: The first line of every saved Markdown table.
SYNTHETIC_TABLE_NOTE = f"> **{SYNTHETIC}**: generated images, not a real result."
#: The banner of every HTML report page.
SYNTHETIC_BANNER = f"{SYNTHETIC}, not a medical result"

#: What follows the warning in a notebook, by what the notebook shows.
_NOTEBOOK_TAIL = {
    "images": "These images are generated to exercise the pipeline; nothing below describes real patients. "
              "Every figure and table saved from this run is labelled as synthetic.",
    "numbers": "The numbers below exercise the pipeline; they say nothing about medicine.",
    "pictures": "The pictures below exercise the pipeline; they say nothing about medicine.",
}


def notebook_notice(subject: str = "numbers") -> str:
    """The Markdown warning a notebook shows under its parameters; ``subject`` is what the notebook shows:
    ``"images"`` (EDA), ``"numbers"`` (training and comparison) or ``"pictures"`` (explanations)."""
    if subject not in _NOTEBOOK_TAIL:
        raise ValueError(f"subject must be one of {sorted(_NOTEBOOK_TAIL)}; got {subject!r}")
    return f"> ⚠️ **{SYNTHETIC}.** {_NOTEBOOK_TAIL[subject]}"
