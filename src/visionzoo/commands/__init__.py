"""The CLI's commands beyond train/eval/bench: each module adds its parser and runs it (see `visionzoo.cli`)."""
