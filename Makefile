# The two entry points of the README. Each installs what it needs first.
VENV ?= .venv
export ODSTACK_VENV := $(VENV)

.PHONY: demo test test-all setup setup-system lint bench

setup:
	scripts/setup.sh

setup-system:
	scripts/setup.sh --system

## demo: the end-to-end demo (synthetic data -> convert -> train -> eval -> export -> detect)
demo: setup
	$(VENV)/bin/odrun demo

## test: the whole test suite (as root it also installs docker.io/debootstrap and starts dockerd)
test: setup-system
	$(VENV)/bin/python -m pytest tests

## test-all: the default suite plus the tests marked `long`
test-all: setup-system
	$(VENV)/bin/python -m pytest tests -m ''

## bench: every benchmark (side by side with a peer), one table of ratios, bench/results.json
bench: setup-system
	$(VENV)/bin/python bench/run_all.py
