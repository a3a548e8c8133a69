"""mock-jwt: mints Twitch extension JWTs signed with the extension secret."""
