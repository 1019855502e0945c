"""curator's built-in plugins; each module registers through the `curator` entry point group."""
