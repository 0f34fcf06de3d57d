"""Callbacks with Keras's hooks: History, the progress bar, and the base class for your own;
checkpoints, backups to resume from, early stopping, learning-rate schedules, CSV logs and
TensorBoard's event files."""
from .backup_and_restore import BackupAndRestore
from .base import Callback, CallbackList, History, LambdaCallback, ProgbarLogger
from .checkpoint import ModelCheckpoint
from .csv_logger import CSVLogger
from .monitor import EarlyStopping, LearningRateScheduler, ReduceLROnPlateau, TerminateOnNaN
from .tensorboard import TensorBoard

__all__ = ["BackupAndRestore", "CSVLogger", "Callback", "CallbackList", "EarlyStopping",
           "History", "LambdaCallback", "LearningRateScheduler", "ModelCheckpoint",
           "ProgbarLogger", "ReduceLROnPlateau", "TensorBoard", "TerminateOnNaN"]
