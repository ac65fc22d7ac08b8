"""Run and export directories: file names, identity, damage."""
