"""Evaluation: the studies' classification report, confusion matrices and learning curves."""
