"""One MIME view for every layer: the message is parsed once per message (``ctx.mime``)."""
