"""The demo's job file and sandbox profile, shipped with the package."""
