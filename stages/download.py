"""DVC stage `download@<dataset>`: fetch, verify and safely extract one data set's archive."""

from visionlab.stage import stage_command

# Imported once params.yaml validates: a bad param is reported before torch loads.
main = stage_command("visionlab.data.download:download_dataset", "dataset")

if __name__ == "__main__":
    main()
