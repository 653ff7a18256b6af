"""Model definitions: layer blocks, builders, transfer backbones and the registry of named specs."""
