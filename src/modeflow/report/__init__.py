"""Report items that read every stage's outputs (run health), rather than one stage's."""
