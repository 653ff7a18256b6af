"""Figures: each function draws on the axes it is given and returns the figure; nothing is saved."""
