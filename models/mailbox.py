"""An IMAP mailbox we poll, with its checkpoint and health."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, CheckConstraint, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, UTCDateTime, utcnow


class Mailbox(Base):
    """An IMAP account and folder; the password is stored encrypted (Fernet, SECRET_KEY)."""

    __tablename__ = "mailboxes"
    __table_args__ = (CheckConstraint("security IN ('ssl', 'starttls', 'none')", name="security"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    host: Mapped[str] = mapped_column(String(253))
    port: Mapped[int | None] = mapped_column(Integer)
    security: Mapped[str] = mapped_column(String(10), default="ssl")
    username: Mapped[str] = mapped_column(String(320))
    password_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary)
    folder: Mapped[str] = mapped_column(String(200), default="INBOX")
    processed_folder: Mapped[str | None] = mapped_column(String(200))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    uidvalidity: Mapped[int | None] = mapped_column(BigInteger)
    last_uid: Mapped[int | None] = mapped_column(BigInteger)
    # after commit, \Seen/move done up to here (crash between commit and flag: < last_uid)
    acked_uid: Mapped[int | None] = mapped_column(BigInteger)
    # UIDs up to here predate the poller's first look at this UIDVALIDITY: since-filtered, deduped
    resync_until_uid: Mapped[int | None] = mapped_column(BigInteger)
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    last_error_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
