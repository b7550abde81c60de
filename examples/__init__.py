"""Examples of services that use authsvc's tokens."""
