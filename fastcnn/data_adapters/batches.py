"""What one batch of a generator or PyDataset may be, as Keras reads it: x alone, or a tuple
(x,), (x, y) or (x, y, sample_weight); a list is read as such a tuple."""


def unpack_batch(batch, step, name):
    """(x, y, sample_weight) of one batch, None for the parts it does not hold."""
    if isinstance(batch, list):
        batch = tuple(batch)
    if not isinstance(batch, tuple):
        return batch, None, None
    if not 1 <= len(batch) <= 3:
        raise ValueError(f"Expected each batch of {name} to be x, (x,), (x, y) or (x, y, "
                         f"sample_weight), received a tuple of {len(batch)} items at step {step}")
    return batch + (None,) * (3 - len(batch))


class StepError(RuntimeError):
    """The data source failed while producing one batch; the message names the step."""


def at_step(error, step, epoch, name):
    """``error``, raised while making batch ``step`` of ``epoch``, as an error that says so:
    a ValueError or TypeError keeps its type (with the step in its message), anything else
    becomes a StepError whose cause is the original."""
    where = f"at step {step} of epoch {epoch + 1}"
    if isinstance(error, (ValueError, TypeError)) and not isinstance(error, StepError):
        wrapped = type(error)(f"{error} ({name}, {where})")
    else:
        wrapped = StepError(f"{name} raised {type(error).__name__}: {error} ({where})")
    return wrapped.with_traceback(None)
