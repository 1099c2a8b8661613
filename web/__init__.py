"""SoulSeer web package."""
