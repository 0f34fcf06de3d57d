"""A Keras-style progress bar: redraws in place on a terminal, one line per epoch otherwise.

Without a stream (``sys.stdout`` is None under pythonw and some services) the bar is silent."""
import sys
import time

BAR_WIDTH = 20
REDRAW_INTERVAL = 0.05  # seconds; redrawing every step of a fast epoch would cost real time


def _format_time(seconds):
    if seconds >= 3600:
        return f"{int(seconds // 3600)}:{int(seconds % 3600 // 60):02d}:{int(seconds % 60):02d}"
    if seconds >= 60:
        return f"{int(seconds // 60)}:{int(seconds % 60):02d}"
    return f"{int(round(seconds))}s"


def _format_values(values):
    return "".join(f" - {k}: {v:.4f}" for k, v in values.items())


class Progbar:
    """``update(step, values)`` after each of ``total`` steps; ``finish(values)`` at the end."""

    def __init__(self, total, stream=None):
        self.total = total
        self.stream = stream if stream is not None else sys.stdout
        self.interactive = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.start = time.perf_counter()
        self._last_draw = 0.0
        self._last_len = 0

    def _line(self, step, values, done):
        elapsed = time.perf_counter() - self.start
        filled = int(BAR_WIDTH * step / self.total) if self.total else BAR_WIDTH
        bar = "━" * filled + "─" * (BAR_WIDTH - filled)
        per_step = elapsed / max(step, 1)
        timing = (f"{_format_time(elapsed)} {per_step * 1000:.0f}ms/step" if done
                  else f"ETA {_format_time(per_step * (self.total - step))}")
        return f"{step}/{self.total} {bar} {timing}{_format_values(values)}"

    def update(self, step, values):
        if not self.interactive:
            return
        now = time.perf_counter()
        if now - self._last_draw < REDRAW_INTERVAL and step < self.total:
            return
        self._last_draw = now
        line = self._line(step, values, done=False)
        self.write("\r" + line + " " * max(self._last_len - len(line), 0))
        self._last_len = len(line)

    def finish(self, values):
        line = self._line(self.total, values, done=True)
        prefix = "\r" if self.interactive else ""
        self.write(prefix + line + " " * max(self._last_len - len(line), 0) + "\n")

    def write(self, text):
        """Write ``text`` to the stream, if there is one."""
        if self.stream is not None:
            self.stream.write(text)
            self.stream.flush()
