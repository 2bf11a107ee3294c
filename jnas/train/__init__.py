"""Real training: TFDS data, augmentation, optax loops, sharding, checkpoints."""
