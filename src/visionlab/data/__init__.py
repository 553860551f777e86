"""Data: fetching archives, safe extraction, image cleaning, splitting and offline augmentation."""
