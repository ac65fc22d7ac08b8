"""provision: the host side of odstack (compatibility matrix, doctor, explain, Ansible host set-up, images)."""
__version__ = "0.1.0"
