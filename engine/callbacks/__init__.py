"""engine.callbacks: hooks into fit/evaluate/predict, with Keras 3's names."""
from .backup_and_restore import BackupAndRestore
from .base import Callback, CallbackList, History, ProgbarLogger
from .csv_logger import CSVLogger
from .early_stopping import EarlyStopping
from .lambda_callback import LambdaCallback
from .model_checkpoint import ModelCheckpoint
from .reduce_lr_on_plateau import ReduceLROnPlateau
from .terminate_on_nan import TerminateOnNaN

__all__ = ["Callback", "CallbackList", "History", "ProgbarLogger", "BackupAndRestore", "CSVLogger", "EarlyStopping",
           "LambdaCallback", "ModelCheckpoint", "ReduceLROnPlateau", "TerminateOnNaN"]
