"""SoulSeer api package."""
