"""SoulSeer config package."""
