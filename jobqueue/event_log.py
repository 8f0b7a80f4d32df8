"""The event hub's log: one sequence of entries kept in two bounded views, with no opinion on what goes in.

- `recent` holds every entry, the last `max_recent` of them (trimmed in steps, so appending stays
  amortised O(1)): a reader whose position is still in it can read every entry after it;
- `latest` holds the newest entry of each key (a task id, a batch message's key, the counts, the
  stats), in the order of their last change, at most `max_pending` of them: a reader behind the
  recent log can still read each key's newest entry; `forgotten` says how far that reaches.

A task's entries are chained newest first (`prev`) while they are in the recent log, so a reader of
one task can walk back through its states. What is recorded, and who is woken, is jobqueue/events.py's
business; how readers read it, jobqueue/event_reads.py's.
"""

from __future__ import annotations

import json
from collections import OrderedDict, deque

from jobqueue.models import Task

COUNTS_KEY = ""  # no task has an empty id
STATS_KEY = "stats"  # task ids are 26 characters
DELETED = "deleted"  # the status of a deletion's entry
MAX_BATCH_KEYS = 64  # batch messages a dashboard's view looks through


class Entry:
    """One recorded message: a task's state (`status` set, `prev` its previous state), or the newest batch,
    counts or stats message of its key (`status` empty). `message` is a Task until first read, then its JSON;
    None when nobody listened."""

    __slots__ = ("in_commit_order", "key", "message", "order", "prev", "seq", "status")

    def __init__(self, seq: int, key: str, message: str | Task | None, order: tuple[float, int], status: str,
                 prev: Entry | None, in_commit_order: bool = False) -> None:
        self.seq = seq
        self.key = key
        self.message = message
        self.order = order
        self.status = status
        self.prev = prev
        self.in_commit_order = in_commit_order  # recorded from the store's feed, in its commit order

    def had_state(self, order: tuple[float, int]) -> bool:
        """Whether a state of this order is this one or one of its task's states still in the recent log."""
        walked: Entry | None = self
        while walked is not None:
            if walked.order == order:
                return True
            walked = walked.prev
        return False


class EventLog:
    """Bounded views of one sequence of entries: every recent entry, and the latest entry per key."""

    def __init__(self, max_pending: int, max_recent: int) -> None:
        self.max_pending = max_pending
        self.max_recent = max_recent
        self.latest: OrderedDict[str, Entry] = OrderedDict()  # the latest entry per key, oldest change first
        self.recent: list[Entry] = []  # every entry from sequence number recent_base on
        self.recent_base = 1
        self.created: deque[str] = deque(maxlen=max_pending)  # task ids in the order they were first recorded
        self.batch_keys: OrderedDict[str, None] = OrderedDict()  # keys of recent batch (and url.changed) messages
        self.seq = 0
        self.forgotten = 0  # highest sequence number pushed out of the latest log

    def append(self, key: str, message: str | Task | None, order: tuple[float, int], status: str,
               in_commit_order: bool = False) -> None:
        """Record an entry as the newest of its key, and of the whole log."""
        self.seq += 1
        previous = self.latest.get(key)
        entry = Entry(self.seq, key, message, order, status,
                      previous if status and previous is not None and previous.status else None, in_commit_order)
        self.latest[key] = entry
        self.latest.move_to_end(key)
        if len(self.latest) > self.max_pending:
            _, oldest = self.latest.popitem(last=False)
            self.forgotten = max(self.forgotten, oldest.seq)
        recent = self.recent
        recent.append(entry)
        if len(recent) > self.max_recent + self.max_recent // 8:  # trimmed in steps: amortised O(1) per entry
            cut = len(recent) - self.max_recent
            for old in recent[:cut]:
                old.prev = None  # a state out of the recent log keeps no older one alive
            del recent[:cut]
            self.recent_base += cut

    def append_batch_message(self, key: str, message: str) -> None:
        """Record a batch's (or a url.changed) message, among the few recent ones a dashboard's view looks through."""
        self.append(key, message, (0.0, 0), "")
        self.batch_keys[key] = None
        self.batch_keys.move_to_end(key)
        if len(self.batch_keys) > MAX_BATCH_KEYS:
            self.batch_keys.popitem(last=False)

    def forget_recent(self) -> None:
        """Make every position read so far unreadable: a reader at any of them is behind everything kept."""
        self.seq += 1  # a position no current reader has reached, and nothing to read at it
        self.forgotten = self.seq
        self.recent_base = self.seq + 1
        for entry in self.recent:
            entry.prev = None
        self.recent = []

    def count_after(self, cursor: int) -> int:
        """How many keys of the latest log changed after `cursor`."""
        count = 0
        for entry in reversed(self.latest.values()):
            if entry.seq <= cursor:
                break
            count += 1
        return count


def serialised(entry: Entry) -> str:
    """The entry's message as JSON, made on first read and kept for the other readers."""
    message = entry.message
    if isinstance(message, Task):
        message = json.dumps({"type": "task", "task": message.to_json()}, separators=(",", ":"))
        entry.message = message
    assert message is not None
    return message
