"""Rich progress bars shared by the long stages (train steps, detect images)."""
import sys


def _rich():
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                               TimeElapsedColumn, TimeRemainingColumn)
    return Progress, BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn


class StepProgress(object):
    """step i/N, loss, steps/s, elapsed, ETA. Rate excludes the first step (graph build)."""

    def __init__(self, total, start=0, description="train", enabled=True):
        Progress, Bar, MofN, Text, Elapsed, Remaining = _rich()
        self.enabled = enabled
        self.progress = Progress(
            Text("[bold]{task.description}"), Bar(), MofN(),
            Text("loss {task.fields[loss]}"), Text("{task.fields[rate]} steps/s"),
            Elapsed(), Text("ETA"), Remaining(),
            disable=not enabled, transient=False, refresh_per_second=4)
        self.task = self.progress.add_task(description, total=total, completed=start, loss="-", rate="-")
        self.first = None
        self.start = start

    def __enter__(self):
        self.progress.__enter__()
        return self

    def __exit__(self, *exc):
        return self.progress.__exit__(*exc)

    def update(self, step, losses):
        import time
        now = time.time()
        if self.first is None:
            self.first = (step, now)
        rate = "-"
        if step > self.first[0]:
            rate = "{:.2f}".format((step - self.first[0]) / (now - self.first[1]))
        loss = losses.get("Loss/total_loss", losses.get("loss"))
        self.progress.update(self.task, completed=step, rate=rate,
                             loss="{:.3f}".format(loss) if loss is not None else "-")


class ItemProgress(object):
    """n/N items, rate, elapsed, ETA; `advance(n)` after each batch."""

    def __init__(self, total, description, enabled=True):
        Progress, Bar, MofN, Text, Elapsed, Remaining = _rich()
        self.progress = Progress(Text("[bold]{task.description}"), Bar(), MofN(), Elapsed(), Text("ETA"),
                                 Remaining(), disable=not enabled)
        self.task = self.progress.add_task(description, total=total)

    def __enter__(self):
        self.progress.__enter__()
        return self

    def __exit__(self, *exc):
        return self.progress.__exit__(*exc)

    def advance(self, n=1):
        self.progress.advance(self.task, n)


def enabled(args):
    return not getattr(args, "json", False) and not getattr(args, "quiet", False)
