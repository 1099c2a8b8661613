"""SoulSeer billing package."""
