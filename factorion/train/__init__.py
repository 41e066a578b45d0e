"""The training layer (torch): behaviour cloning (Lightning) and PPO (Fabric)."""
