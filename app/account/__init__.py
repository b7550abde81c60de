"""The signed-in user's own account: /users/me, its sessions, its activity, deleting it."""
