"""One batch ahead: a background thread prepares (gathers, converts, fetches) the next batch
while the caller trains on the current one.

Sharing the cores: the kernels' OpenMP threads run while the training thread holds no GIL, and
the preparing thread mostly runs NumPy copies that release it too, so the two overlap; on a
machine with as many OpenMP threads as cores, the preparing thread takes its time from theirs
(the OS shares the cores), which costs about the preparing time rather than hiding it. At most
``DEPTH`` prepared batches wait, so the sources' buffers are reused in a ring of ``RING``.
"""
import queue
import threading

DEPTH = 1  # prepared batches waiting for the caller
# Batches alive at once: the caller's, the waiting ones and the one being prepared; a source
# that fills buffers reuses each after this many batches.
RING = DEPTH + 2
_END = object()
_POLL_SECONDS = 0.1  # how often a blocked thread checks whether the other side has stopped


class _Failure:
    def __init__(self, error):
        self.error = error


class Prefetcher:
    """Iterate ``prepare(item)`` for the items of ``source`` (an iterator), each made on a
    background thread one batch ahead. An exception in ``source`` or ``prepare`` is raised by
    the caller's ``next`` at that item; ``close`` (or leaving a ``with`` block) stops the thread
    without waiting for the source to end, so an endless generator never hangs a fit."""

    def __init__(self, source, prepare):
        self._queue = queue.Queue(maxsize=DEPTH)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(source, prepare),
                                        name="fastcnn-prefetch", daemon=True)
        self._done = False
        self._thread.start()

    def _put(self, item):
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=_POLL_SECONDS)
                return True
            except queue.Full:
                continue
        return False

    def _run(self, source, prepare):
        try:
            for item in source:
                if self._stop.is_set() or not self._put(prepare(item)):
                    return
        except BaseException as error:  # handed to the caller, who raises it
            self._put(_Failure(error))
            return
        self._put(_END)

    def __iter__(self):
        return self

    def __next__(self):
        if self._done:
            raise StopIteration
        while True:
            try:
                item = self._queue.get(timeout=_POLL_SECONDS)
                break
            except queue.Empty:
                if not self._thread.is_alive() and self._queue.empty():
                    self._done = True
                    raise StopIteration from None
        if item is _END:
            self._done = True
            raise StopIteration
        if isinstance(item, _Failure):
            self._done = True
            raise item.error
        return item

    def close(self):
        self._stop.set()
        self._done = True
        self._thread.join()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
