"""Optional CPU speed-ups for training, behind one setting; results are the same without them."""
