"""mock-jwt: mints Twitch extension JWTs signed with the extension key.

Configuration (every variable optional, so `ASPNETCORE_URLS` alone starts it):
    Twitch__ExtensionSecret     base64 extension secret; unset means the reference (and
                                real) backend's Development key, SHA-256 of
                                `mgm-dev-extension-secret-change-me`
    Twitch__ExtensionClientId   when set, tokens carry it as `aud`
    Twitch__BroadcasterUserId   the `channel_id` claim (any string); default `1971641`
"""
