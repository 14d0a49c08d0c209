"""gppscale benchmarks: every stage against a floor measured in the same run, peers side by side, scaling.

Run ``python -m bench --help``. Results go to ``bench/results/<date>-<preset>.{json,md,png}``. Nothing here
is a timed test: the numbers are reported, never asserted.
"""
