"""Test helpers shared by several test packages (the stub Graph API lives here)."""
