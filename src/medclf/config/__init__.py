"""Where things live and what a run is told: paths, parameters, the data-set registry."""
