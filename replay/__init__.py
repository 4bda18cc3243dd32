"""Replay: the chunk wire format, the frame ring and the shard actor that serves samples."""
