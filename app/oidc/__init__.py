"""The OpenID Provider (OpenID Connect Core 1.0, RFC 6749, RFC 7636, RFC 9207, RP-Initiated
Logout 1.0): authorization requests, codes and consent, ID tokens, userinfo, end session."""
