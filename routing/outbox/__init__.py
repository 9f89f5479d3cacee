"""Answering safely (SPEC §10): the outbox, its dispatcher, the transports and the mail it sends.

* :mod:`routing.outbox.answer` decides, inside routing's transaction, whether an outcome is
  answered (acknowledgement, notice of refusal) and writes the outbox row with the outcome;
* :mod:`routing.outbox.dispatcher` sends due rows (a dramatiq actor plus a poller), with retries
  and exponential backoff, and records how each ended;
* :mod:`routing.outbox.transport` is ``TICKETPOST_OUTBOUND_URL`` (SMTP, SMTPS, Graph);
* :mod:`routing.outbox.compose` and :mod:`routing.outbox.templates` build the mail itself.
"""
