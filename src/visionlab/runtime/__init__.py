"""What every model stage runs on: image datasets and loaders, one preprocessing, seeds, device and
precision choice, batched inference and the featurize stage's cache format.

Below ``training``, ``evaluation`` and ``explanations``: they all read images and run networks
the same way, and none of them needs the training loop to do it.
"""
