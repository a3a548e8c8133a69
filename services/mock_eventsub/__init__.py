"""mock-eventsub: signs and delivers Twitch EventSub webhooks to the backend; relays signed ones.

Configuration (every variable optional, so `ASPNETCORE_URLS` alone starts it):
    Backend__BaseUrl            where to deliver; default `http://127.0.0.1:8080`
                                (`/api/twitch/eventsub` is appended)
    Twitch__EventSubSecret      the HMAC secret; default the demo secret
                                `demo-eventsub-secret-0001` (envkit's demo value)
    Twitch__BroadcasterUserId   the broadcaster id in built events (any string);
                                default `1971641`
"""
