"""Explanations of trained models.

- :mod:`~visionlab.explanations.gradcam`: Grad-CAM and Grad-CAM++ heatmaps and overlays
- :mod:`~visionlab.explanations.guided`: guided backpropagation and guided Grad-CAM, for every rectifier
- :mod:`~visionlab.explanations.feature_maps`: every conv layer's output for one image
- :mod:`~visionlab.explanations.filters`: the first conv layer's kernels
- :mod:`~visionlab.explanations.patches`: the test-set patches that drive a class or unit most
- :mod:`~visionlab.explanations.gallery`: the HTML page of an explain folder
- :mod:`~visionlab.explanations.artifact_index`: index.json's list of every picture, and the thumbnail order
- :mod:`~visionlab.explanations.predict`: classify image files, optionally with a Grad-CAM each
- :mod:`~visionlab.explanations.photo_notes`: predict's note on a heavily compressed photo
- :mod:`~visionlab.explanations.explain_stage`: the DVC stage that writes all of the above
"""
