# The two entry points of the README. Each installs what it needs first.
VENV ?= .venv
export ODSTACK_VENV := $(VENV)

# `make test` runs every test (none skipped or deselected under CI=true) on 3 xdist workers: the
# suite's Slurm, Docker and debootstrap tests mostly wait on subprocesses while TF trainings use the
# CPUs; --dist loadfile keeps each module (its fixtures, its daemons) on one worker, tests/durations.yaml
# queues the longest first. N=0 runs them in one process.
N ?= 3
XDIST = -n $(N) --dist loadfile --no-loadscope-reorder
QUICK = not tf and not docker and not ansible and not slurm and not slow and not long

.PHONY: demo test test-all test-quick setup setup-system lint bench

setup:
	scripts/setup.sh

setup-system:
	scripts/setup.sh --system

## demo: the end-to-end demo (synthetic data -> convert -> train -> eval -> export -> detect)
demo: setup
	$(VENV)/bin/odrun demo

## test: every test (as root it also installs docker.io/debootstrap and starts dockerd); the 25 slowest at the end
test: setup-system
	$(VENV)/bin/python -m pytest tests $(XDIST) --durations=25

## test-all: the same as test (kept for old habits)
test-all: test

## test-quick: the edit loop: everything that trains no TF model, builds no image and starts no Slurm (< 3 min)
test-quick: setup
	$(VENV)/bin/python -m pytest tests -n 2 -m "$(QUICK)" --durations=10

## bench: every benchmark (side by side with a peer), one table of ratios, bench/results.json
bench: setup-system
	$(VENV)/bin/python bench/run_all.py
