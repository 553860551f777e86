"""DVC stage `augment@<dataset>`: multiply one data set's training split offline."""

from visionlab.data.augment import augment_dataset
from visionlab.stage import stage_command

main = stage_command(augment_dataset, "dataset")

if __name__ == "__main__":
    main()
