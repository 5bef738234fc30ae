"""The rule engine (``engine``), its rules by family, and the product's list (``library``)."""
