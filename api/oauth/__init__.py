"""OAuth 2.0 endpoints (/oauth/token, /oauth/authorize and its consent API) and the admin API of clients."""
