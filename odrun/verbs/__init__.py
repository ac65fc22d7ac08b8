"""Verbs that belong to no single task, and the steps every verb's parser and run() share (a verb
imports this package, never another verb)."""

from odrun import tasks


def finish(p, verb, run):
    """The end of a verb's parser, after its last flag: the defaults of odrun/data/defaults.yaml
    (tasks.record_defaults) and the verb's run(); -> the parser."""
    tasks.record_defaults(p, verb)
    p.set_defaults(func=run)
    return p


def run_on_run_dir(verb, args):
    """run() of `odrun eval` / `odrun export`: the task is the one RUN_DIR was trained for (run.json)."""
    return tasks.run_verb(verb, args, task=tasks.task_of_run(args.workdir))
