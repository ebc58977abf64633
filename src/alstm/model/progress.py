"""Training progress on the terminal (rich): epochs with ETA, batches of the current pass."""

from __future__ import annotations

from types import TracebackType

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class TrainingProgress:
    """An epoch bar (its ETA assumes no early stop) and a bar for the current pass's batches, with
    one line per finished epoch; does nothing when not ``enabled``."""

    def __init__(self, enabled: bool, n_epochs: int, done: int) -> None:
        self._bars = (
            Progress(
                TextColumn("{task.description:<12}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
            )
            if enabled
            else None
        )
        self._n_epochs, self._done = n_epochs, done
        self._epochs: TaskID | None = None
        self._pass: TaskID | None = None

    def __enter__(self) -> TrainingProgress:
        if self._bars is not None:
            self._bars.start()
            self._epochs = self._bars.add_task("epochs", total=self._n_epochs, completed=self._done)
        return self

    def __exit__(
        self, exc: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._bars is not None:
            self._bars.stop()

    def phase(self, name: str, n_batches: int) -> None:
        """Start a pass (``"train"``, ``"eval train"``, ``"eval valid"``) of ``n_batches``."""
        if self._bars is not None:
            if self._pass is not None:
                self._bars.remove_task(self._pass)
            self._pass = self._bars.add_task(name, total=n_batches)

    def tick(self) -> None:
        """One batch of the current pass is done."""
        if self._bars is not None and self._pass is not None:
            self._bars.advance(self._pass)

    def epoch_done(
        self, epoch: int, loss: float, train: float | None, valid: float, best_epoch: int
    ) -> None:
        """Log epoch ``epoch`` (0-based): mean train loss, train (None: not scored) and valid
        scores, best so far."""
        if self._bars is not None and self._epochs is not None:
            scored = "" if train is None else f"train {train:.6f}  "
            self._bars.console.print(
                f"epoch {epoch:>3}  loss {loss:.6f}  {scored}valid {valid:.6f}  best {best_epoch}",
                highlight=False,
            )
            self._bars.advance(self._epochs)
