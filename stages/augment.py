"""DVC stage `augment@<dataset>`: multiply one data set's training split offline."""

from visionlab.stage import stage_command

# Imported once params.yaml validates: a bad param is reported before torch loads.
main = stage_command("visionlab.data.augment:augment_dataset", "dataset")

if __name__ == "__main__":
    main()
