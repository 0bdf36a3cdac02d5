"""Training: the step (`step`: loss scaling, overflow check, update), the loop behind train.py (`loop`), what runs
around the steps (`hooks`: logs, metrics, checkpoints, evaluation), and its parts: loss, optimizer, LR schedules,
resume. Import the modules themselves; this package imports nothing so that `common.data` can use `loss` alone."""
