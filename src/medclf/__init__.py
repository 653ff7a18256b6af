"""medclf: a reproducible workspace for medical image classification (chest X-ray, malaria)."""

__version__ = "0.1.0"
