"""OAuth2 (RFC 6749, 7009, 7662): the token endpoint's form, clients, revocation, introspection."""
