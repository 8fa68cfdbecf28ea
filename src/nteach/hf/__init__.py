"""Teaching inside Hugging Face ``Trainer.train()``: ``TeachingCallback`` for any Trainer (TRL's included),
``TeachingTrainer`` for a plain one, and the per-example losses the teacher observes."""

from nteach.hf.callback import TEACHING_STATE, TeachingCallback
from nteach.hf.losses import (
                              ExampleLosses,
                              causal_lm_example_losses,
                              classification_example_losses,
                              default_example_losses,
                              padded_causal_lm_example_losses,
)
from nteach.hf.trainer import TeachingTrainer

__all__ = ["TEACHING_STATE", "ExampleLosses", "TeachingCallback", "TeachingTrainer",
           "causal_lm_example_losses",
           "classification_example_losses", "default_example_losses", "padded_causal_lm_example_losses"]
