"""Evaluation: the studies' classification report, confusion matrices and learning curves, and the
review of a data set's least typical images (it needs a model, so it sits here, above training).
"""
