"""SoulSeer relay package."""
