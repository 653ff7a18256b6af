"""What the notebooks write and show: figures/tables on disk, notebook text, HTML reports."""
