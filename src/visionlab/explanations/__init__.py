"""Explanations of trained models: Grad-CAM heatmaps and overlays."""
