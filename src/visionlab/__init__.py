"""visionlab: reproducible image-classification experiments."""
