"""Signing in: the sign-in flow, its methods (app.signin.methods) and its JSON routes."""
