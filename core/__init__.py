"""The bottom layer: settings and telemetry hooks; every package may import it, it imports none of them."""
