"""mock-eventsub: signs and delivers Twitch EventSub webhooks to the backend."""
