"""Teaching attention learners (ViTs, encoders, causal LMs): data, losses, loops, HF integration."""
