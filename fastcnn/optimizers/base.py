"""The optimizer base class: the learning rate and its schedule, the step count, per-weight state,
and the options every Keras 3 optimizer takes (gradient clipping, decoupled weight decay, the
weights' moving average, gradient accumulation), around a subclass's update rule."""
import math
import numbers

import numpy as np

from .. import schedules
from .._ops import optim, regularization
from ..arguments import finite_float
from ..serialization import checked_config

_KEYWORDS = ("weight_decay", "clipnorm", "clipvalue", "global_clipnorm", "use_ema",
             "ema_momentum", "ema_overwrite_frequency", "gradient_accumulation_steps")


class Optimizer:
    """Holds per-weight state (slots) created on the first update, and the step count.

    A subclass names its rule's slots in ``rule_slots`` and applies its rule in ``_update``. On
    top of the rule, as in Keras 3:

    - ``clipnorm`` scales each weight's gradient down to that L2 norm, ``global_clipnorm`` all
      gradients together to that joint norm, ``clipvalue`` clips each element to
      [-clipvalue, clipvalue]; at most one of them.
    - ``weight_decay`` shrinks each weight by w -= learning_rate * weight_decay * w before the
      rule (decoupled decay), every weight unless ``exclude_from_weight_decay`` names it.
    - ``use_ema`` keeps the weights' moving average (slot "average") with ``ema_momentum``;
      every ``ema_overwrite_frequency`` steps, and in ``finalize_variable_values``, the weights
      take the average's values.
    - ``gradient_accumulation_steps`` = n sums the gradients of n calls of ``apply`` (slot
      "gradient_accumulator") and updates the weights with their mean at every n-th call.
      ``iterations`` counts those updates; a schedule sees the calls, as Keras's does.
    """

    rule_slots = ()
    # slot name -> the value it starts at (zeros when not listed)
    slot_fill = {}

    def __init__(self, learning_rate, weight_decay=None, clipnorm=None, clipvalue=None,
                 global_clipnorm=None, use_ema=False, ema_momentum=0.99,
                 ema_overwrite_frequency=None, gradient_accumulation_steps=None, name=None):
        self._learning_rate = None
        self.learning_rate = learning_rate
        self.name = name or type(self).__name__.lower()
        # Calls of apply; with gradient accumulation, iterations counts the updates among them.
        self._iterations = 0
        self.weight_decay = _optional_number(weight_decay, "weight_decay", allow_zero=True)
        clips = {"clipnorm": clipnorm, "clipvalue": clipvalue, "global_clipnorm": global_clipnorm}
        given = {k: v for k, v in clips.items() if v is not None}
        if len(given) > 1:
            raise ValueError(f"Expected at most one of clipnorm, clipvalue and global_clipnorm, "
                             f"received {given}")
        for key, value in clips.items():
            setattr(self, key, _optional_number(value, key))
        self.use_ema = bool(use_ema)
        if finite_float(ema_momentum) is None or not 0 <= ema_momentum <= 1:
            raise ValueError(f"Expected ema_momentum in [0, 1], received "
                             f"ema_momentum={ema_momentum!r}")
        self.ema_momentum = float(ema_momentum)
        self.ema_overwrite_frequency = _optional_int(ema_overwrite_frequency,
                                                     "ema_overwrite_frequency", 1)
        self.gradient_accumulation_steps = _optional_int(gradient_accumulation_steps,
                                                         "gradient_accumulation_steps", 2)
        # id -> weight, of the weights left out of weight decay (held, so no id is reused)
        self._excluded = {}
        # id(weight) -> (weight, its slots): keyed by the array, as PyTorch keys state by the
        # parameter, so that a change of the trainable set between fits (a layer frozen or
        # unfrozen) leaves every weight with its own state. The entry holds the weight, so its
        # id is not reused.
        self._state = {}
        # The checked operands of the last call of each kernel, reused while the arrays are
        # the same ones.
        self._operands = optim.UpdateOperands()
        self._accumulate_operands = optim.UpdateOperands()
        self._average_operands = optim.UpdateOperands()

    # -- the learning rate and the step count ----------------------------------------------
    @property
    def learning_rate(self):
        """The rate of the next update, a float, also under a schedule.

        Assigning a number sets a constant rate; assigning a schedule (a LearningRateSchedule,
        or any callable of the number of ``apply`` calls done) makes the optimizer follow it.
        As in Keras, an optimizer that follows a schedule refuses a number (TypeError)."""
        return self.current_learning_rate()

    @learning_rate.setter
    def learning_rate(self, value):
        if not callable(value):
            if callable(self._learning_rate):
                raise TypeError(f"Expected to set learning_rate of an optimizer created with a "
                                f"number, but it follows the schedule {self._learning_rate!r}; "
                                "create the optimizer with a float learning_rate to set it")
            number = finite_float(value)
            if number is None or not number > 0:
                raise ValueError(f"Expected learning_rate > 0, received learning_rate={value!r}")
            value = number
        self._learning_rate = value

    @property
    def schedule(self):
        """The schedule the optimizer follows, or None for a constant rate."""
        return self._learning_rate if callable(self._learning_rate) else None

    def current_learning_rate(self):
        """The rate for the next update. A schedule gets the number of apply calls done so
        far, 0 for the first, as in Keras."""
        if not callable(self._learning_rate):
            return self._learning_rate
        value = self._learning_rate(self._iterations)
        number = finite_float(value)
        if number is None or number < 0:
            raise ValueError(f"Expected the learning-rate schedule {self._learning_rate!r} to "
                             f"give a finite rate >= 0, received {value!r} at step "
                             f"{self._iterations}")
        return number

    @property
    def iterations(self):
        """The number of updates applied (with gradient accumulation: of its complete cycles)."""
        return self._iterations // (self.gradient_accumulation_steps or 1)

    @iterations.setter
    def iterations(self, value):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
            raise ValueError(f"Expected iterations to be an int >= 0, received "
                             f"iterations={value!r}")
        self._iterations = int(value) * (self.gradient_accumulation_steps or 1)

    # -- state ------------------------------------------------------------------------------
    @property
    def slot_names(self):
        """The rule's slots, then "average" with use_ema and "gradient_accumulator" with
        gradient accumulation."""
        return (tuple(self.rule_slots) + (("average",) if self.use_ema else ())
                + (("gradient_accumulator",) if self.gradient_accumulation_steps else ()))

    def _new_slot(self, name, weight):
        if name == "average":  # from the weight, so that a weight that joins late is not pulled to 0
            return np.array(weight, order="C")
        slot = np.zeros_like(weight, order="C")
        if self.slot_fill.get(name):
            slot.fill(self.slot_fill[name])
        return slot

    def _slots_of(self, weight):
        """The weight's slots, one per slot name, created on its first update."""
        entry = self._state.get(id(weight))
        if entry is None:
            entry = self._state[id(weight)] = (weight, [self._new_slot(name, weight)
                                                        for name in self.slot_names])
        return entry[1]

    def has_slots(self, weights):
        """Whether any of weights has been updated (has state) by this optimizer."""
        return any(id(w) in self._state for w in _weight_list(weights))

    def slots_for(self, weights):
        """The slots of weights: one list per slot name, aligned with weights (a weight not yet
        updated gets its initial slots now)."""
        slots = [self._slots_of(w) for w in _weight_list(weights)]
        return [[s[k] for s in slots] for k in range(len(self.slot_names))]

    def set_slots(self, weights, slots):
        """Gives weights the state slots_for(weights) returned (copies, C-contiguous: the kernels
        update them in place)."""
        for k, weight in enumerate(_weight_list(weights)):
            self._state[id(weight)] = (weight, [np.array(values[k], weight.dtype, order="C")
                                                for values in slots])

    def exclude_from_weight_decay(self, var_list=None, var_names=None):
        """Leave the weights in var_list (arrays, by identity) out of weight decay. fastcnn's
        weights are arrays without names, so var_names is refused."""
        if var_names:
            raise ValueError("Expected var_list (the weight arrays) to exclude from weight "
                             f"decay; fastcnn's weights have no names, received "
                             f"var_names={var_names!r}")
        self._excluded = {id(w): w for w in _weight_list(list(var_list or []))}

    # -- one step ---------------------------------------------------------------------------
    def apply(self, weights, grads):
        """One call: with gradient accumulation, the gradients are summed and every n-th call
        updates the weights; otherwise every call updates every weight, in one kernel call."""
        weights = _weight_list(weights)
        if len({id(w) for w in weights}) != len(weights):
            raise ValueError("Expected every weight once, received one listed twice")
        grads = _array_list(grads, "grads")
        if len(grads) != len(weights):
            raise ValueError(f"Expected one gradient per weight ({len(weights)}), received "
                             f"{len(grads)}")
        slots = dict(zip(self.slot_names, self.slots_for(weights)))
        steps = self.gradient_accumulation_steps
        update = True
        if steps:
            phase = self._iterations % steps
            update = phase == steps - 1
            mode = 2 if update else (0 if phase == 0 else 1)
            optim.accumulate_gradients(slots["gradient_accumulator"], grads, mode, steps,
                                       operands=self._accumulate_operands)
            grads = slots["gradient_accumulator"]
        if update:
            lr = self.current_learning_rate()
            self._update(weights, grads, [slots[name] for name in self.rule_slots], lr,
                         self.iterations + 1, grad_scale=self._grad_scale(grads),
                         clip_value=self.clipvalue or 0.0, decay=self._decay(weights, lr))
        if self.use_ema:
            momentum = self.ema_momentum if self.iterations else 0.0
            optim.moving_average(slots["average"], weights, momentum,
                                 operands=self._average_operands)
            frequency = self.ema_overwrite_frequency
            if frequency and (self.iterations + 1) % frequency == 0:
                for weight, average in zip(weights, slots["average"]):
                    np.copyto(weight, average)
        self._iterations += 1

    def _grad_scale(self, grads):
        """The clipping norms' factor of each gradient, or None without them."""
        if self.clipnorm:
            return [_clip_factor(math.sqrt(regularization.sum_of_squares(g)), self.clipnorm)
                    for g in grads]
        if self.global_clipnorm:
            # summed in the weights' order, so that the norm is the same for any thread count
            norm = math.sqrt(sum(regularization.sum_of_squares(g) for g in grads))
            factor = _clip_factor(norm, self.global_clipnorm) if math.isfinite(norm) else math.nan
            return [factor] * len(grads)
        return None

    def _decay(self, weights, learning_rate):
        """Each weight's decoupled decay factor learning_rate * weight_decay, or None."""
        if not self.weight_decay:
            return None
        factor = learning_rate * self.weight_decay
        return [0.0 if id(w) in self._excluded else factor for w in weights]

    def _update(self, weights, grads, slots, learning_rate, step, **transforms):
        """The rule: one kernel call for every weight, with the rule's slots (aligned with
        rule_slots), the update's step number (from 1) and the gradient transforms."""
        raise NotImplementedError(f"{type(self).__name__} has no update rule: a subclass of "
                                  "Optimizer defines _update")

    def finalize_variable_values(self, weights):
        """With use_ema, give the weights their moving averages' values (fit calls this at its
        end, as Keras's does)."""
        if not self.use_ema:
            return
        weights = [w for w in _weight_list(weights) if id(w) in self._state]
        for weight, average in zip(weights, self.slots_for(weights)[self.slot_names.index("average")]):
            np.copyto(weight, average)

    # -- config -----------------------------------------------------------------------------
    def get_config(self):
        lr = self._learning_rate
        if isinstance(lr, schedules.LearningRateSchedule):
            lr = schedules.serialize(lr)
        elif callable(lr):
            lr = None
        return {"name": self.name, "learning_rate": lr,
                **{key: getattr(self, key) for key in _KEYWORDS}}

    @classmethod
    def from_config(cls, config):
        if isinstance(checked_config(config, cls.__name__).get("learning_rate"), dict):
            config = {**config, "learning_rate": schedules.deserialize(config["learning_rate"])}
        return cls(**config)


def _clip_factor(norm, clip):
    """The factor that scales a gradient of L2 norm ``norm`` to at most ``clip`` (NaN for a NaN
    norm, 0 for an infinite one)."""
    return clip / max(norm, clip)


def _optional_number(value, name, allow_zero=False):
    """None, or a finite float > 0 (>= 0 with allow_zero)."""
    if value is None:
        return None
    number = finite_float(value)
    if number is None or number < 0 or (number == 0 and not allow_zero):
        relation = ">=" if allow_zero else ">"
        raise ValueError(f"Expected {name} {relation} 0 or None, received {name}={value!r}")
    return number


def _optional_int(value, name, lower):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < lower:
        raise ValueError(f"Expected {name} to be an int >= {lower} or None, received "
                         f"{name}={value!r}")
    return int(value)


def _array_list(values, name):
    """``values``, a list or tuple, as a list. An array is refused: iterated, it would be one
    weight (or gradient) per row."""
    if not isinstance(values, (list, tuple)):
        raise TypeError(f"Expected {name} to be a list of arrays, received "
                        f"{type(values).__name__}")
    return list(values)


def _weight_list(weights):
    """``weights`` as a list of arrays."""
    weights = _array_list(weights, "weights")
    if not all(isinstance(w, np.ndarray) for w in weights):
        raise TypeError(f"Expected weights to be a list of arrays, received a list of "
                        f"{sorted({type(w).__name__ for w in weights})}")
    return list(weights)


def check_rate(value, name, low=0.0, high=1.0, high_open=True):
    """``value`` as a float in [low, high) (or [low, high] when not high_open)."""
    number = finite_float(value)
    if number is None or not low <= number <= high or (high_open and number == high):
        bracket = ")" if high_open else "]"
        raise ValueError(f"Expected {name} in [{low:g}, {high:g}{bracket}, received "
                         f"{name}={value!r}")
    return number


def check_epsilon(value):
    if not (finite_float(value) or 0) > 0:
        raise ValueError(f"Expected epsilon > 0, received epsilon={value!r}")
    return float(value)
