"""What operators and agents use, beside the receiver: the admin API and its OpenAPI
description, the web chat simulator (with its page and replay recordings), and the
sandbox Graph API. ``webhook.create_app`` imports each part only when it is on.
"""
