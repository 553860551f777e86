"""DVC stage `prepare@<dataset>`: clean one data set and split it into manifests."""

from visionlab.stage import stage_command

# Imported once params.yaml validates: a bad param is reported before torch loads.
main = stage_command("visionlab.data.prepare:prepare_dataset", "dataset")

if __name__ == "__main__":
    main()
