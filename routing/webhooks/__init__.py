"""Webhooks (SPEC §11): events written to the outbox with their decision, signed and delivered.

* :mod:`routing.webhooks.signing`: secrets (``whsec_…``) and Standard Webhooks signatures;
* :mod:`routing.webhooks.events`: the event bodies and the INSERT … SELECT that writes one
  delivery per subscribed, enabled webhook in the transaction of the event;
* :mod:`routing.webhooks.targets`: which URLs may be called (http(s), no private addresses
  unless ``TICKETPOST_WEBHOOKS_ALLOW_PRIVATE``), checked on save and again at delivery time;
* :mod:`routing.webhooks.delivery`: the sender (httpx, per-endpoint in-flight caps), the
  outbox dispatcher's ``webhook`` handler and retry policy, and the webhook runner.
"""
